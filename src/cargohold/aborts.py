"""Responses that fail after their first byte: the connection is cut, never answered twice.

Once a response's status line has gone out, an error can no longer become a
problem+json answer: writing one would put a second HTTP response inside the
first one's body, and a client counting ``Content-Length`` would then wait
for bytes that never come. So a handler that streams starts its response
with :func:`begin`, and :func:`cargohold.problems.problem_middleware` hands
any error raised after that to :func:`abort`: the transport is closed at once
(the client sees a short body or a broken chunked stream, and can retry),
one log line without a traceback says what failed, and :data:`ABORTS` counts
it for whoever exposes the gateway's figures.

Errors before :func:`begin` are answered as usual, with a status and a
problem body, so every failure that can be decided before the first byte
(missing object, unreadable first block, bad range) still is.
"""

from __future__ import annotations

import logging
from collections import Counter

from aiohttp import web

from cargohold.errors import CargoholdError

log = logging.getLogger(__name__)

#: Request key: the response this request has already started (see :func:`begin`).
STARTED = web.RequestKey("started_response", web.StreamResponse)
#: Request key: set when that response was aborted (the history records the error, not a 2xx).
ABORTED = web.RequestKey("response_aborted", bool)


class AbortCounter:
    """Responses aborted after their first byte since the process started, by error code."""

    def __init__(self) -> None:
        self._by_code: Counter[str] = Counter()

    def add(self, code: str) -> None:
        self._by_code[code] += 1

    @property
    def total(self) -> int:
        return sum(self._by_code.values())

    def by_code(self) -> dict[str, int]:
        return dict(self._by_code)


ABORTS = AbortCounter()


async def begin(request: web.Request, response: web.StreamResponse) -> None:
    """Send ``response``'s status and headers; from now on a failure can only abort it."""
    await response.prepare(request)
    request[STARTED] = response


def started(request: web.Request) -> web.StreamResponse | None:
    """The response :func:`begin` started for this request, if any."""
    return request.get(STARTED)


def loggable_path(request: web.Request) -> str:
    """The request's path for a log line, with a share link's token (a credential) left out."""
    token = request.match_info.get("token")
    return request.path.replace(token, "{token}") if token else request.path


def aborted(request: web.Request) -> bool:
    """Whether this request's response was cut short by :func:`abort`."""
    return request.get(ABORTED, False)


def error_code(error: BaseException) -> str:
    """A short, stable name for what broke a started response."""
    return error.code if isinstance(error, CargoholdError) else type(error).__name__


def abort(request: web.Request, response: web.StreamResponse, error: BaseException) -> None:
    """Cut the connection under a started ``response`` at once, log one line and count it.

    ``transport.abort()`` drops whatever is still buffered and closes the
    socket without waiting, so the client's read ends now rather than at
    some timeout. The protocol sees the connection lost and keeps no
    keep-alive state for it.
    """
    code = error_code(error)
    detail = error.detail if isinstance(error, CargoholdError) else str(error)
    log.warning(
        "%s %s -> %d aborted after %d bytes sent: %s: %s",
        request.method,
        loggable_path(request),
        response.status,
        request.writer.output_size,
        code,
        " ".join(detail.split()),  # one line, whatever the message holds
    )
    ABORTS.add(code)
    request[ABORTED] = True
    transport = request.transport
    if transport is not None:
        transport.abort()
