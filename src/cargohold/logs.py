"""Log lines for people and for collectors, each carrying the request it belongs to.

Every role logs to stderr (stdout carries the "listening on" line that
harnesses wait for). The request id lives in a context variable that the
request middleware (``serving.request_middleware``) sets for the handler's
task; tasks started from a request inherit it, so a share deleted in the
background after a failed upload still names that upload. Outside any
request the id is ``-``.

``text`` is one line per record; ``json`` is one JSON object per line with
``time``, ``level``, ``logger``, ``message``, ``request_id`` and, for an
exception, ``exception`` (its traceback as one string), which log collectors
ingest without a parsing rule.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

#: The header a response carries its request id in; a well-formed incoming one is reused.
REQUEST_ID_HEADER = "X-Request-Id"
NO_REQUEST = "-"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,64}")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("cargohold_request_id", default=NO_REQUEST)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def new_request_id(given: str | None = None) -> str:
    """``given`` if it is a well-formed id (what a proxy or a client chose), else a fresh one.

    Anything else (too long, spaces, control characters) is replaced rather
    than refused: a bad id must not cost the request, nor reach the logs.
    """
    if given is not None and _WELL_FORMED.fullmatch(given):
        return given
    return uuid.uuid4().hex


_base_factory = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.request_id = request_id.get()
    return record


def install_request_ids() -> None:
    """Stamp every log record, whichever handler gets it, with the current request id."""
    logging.setLogRecordFactory(_record_with_request_id)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; the traceback, if any, is one string field."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", NO_REQUEST),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def configure_logging(fmt: LogFormat = "text", level: int = logging.INFO) -> None:
    """Send every logger's records to stderr in ``fmt``, replacing earlier handlers."""
    install_request_ids()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's own access log is off; its server logger only speaks of what we did not catch.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
