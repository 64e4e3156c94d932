"""The action history over HTTP: the middleware that records every call, and ``GET /api/v1/history``.

Recording is one middleware for every route rather than code in each
handler: a route's ``action`` (``Route.action_for``) says what a call is,
and routes without one (health, docs, OPTIONS) record nothing. The
middleware must be the outermost one, so that it sees the status a client
really got, including the problem responses rendered further in and the
401s raised by authentication; the error code comes from
``audit.error_code_middleware`` (see ``api/audit.py``).

Recording costs no metadata round trip: the event goes to
:class:`~cargohold.service.history.HistoryService`'s queue and is stored
in batches (at most ~0.2 s of history can be lost if the gateway crashes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from cargohold.aborts import aborted
from cargohold.api import schemas
from cargohold.api.audit import error_code, noted
from cargohold.api.auth import effective_method, principal
from cargohold.api.context import SERVICES
from cargohold.api.native import API, Route, json_response
from cargohold.domain.history import (
    ACTION_PATTERN,
    CURSOR_PATTERN,
    MAX_ACTION,
    MAX_BUCKET_FILTER,
    MAX_PREFIX_FILTER,
    OK,
    HistoryEvent,
    parse_query,
)
from cargohold.domain.model import Principal
from cargohold.problems import Handler, http_error_code

log = logging.getLogger(__name__)

#: nginx's status for "the client went away before the answer was complete".
CLIENT_CLOSED = 499
USER_AGENT_MAX = 255

# Where a successful data call's size comes from when the handler did not note one:
# the body received (writes) or the body sent (reads; for HEAD the object's length).
_SIZE_OF_REQUEST = frozenset({"object.create", "upload.part", "upload.append"})
_SIZE_OF_RESPONSE = frozenset({"object.read", "object.stat"})


# -- recording ------------------------------------------------------------------


def route_index(routes: Iterable[Route]) -> dict[tuple[Any, str], Route]:
    """Our :class:`Route` of each handler as the router registered it (handler, method)."""
    return {(route.handler, route.method): route for route in routes}


def _action(request: web.Request, index: dict[tuple[Any, str], Route]) -> str:
    matched = request.match_info.route
    route = index.get((matched.handler, matched.method))
    if route is None:  # unknown path or method: aiohttp's own answer, nothing was done
        return ""
    if route.action_of is not None:
        return route.action_of(request)
    return route.action_for(effective_method(request))


def history_middleware(routes: Iterable[Route]) -> Middleware:
    """The recording middleware for ``routes`` (the app's whole table); install it outermost."""
    index = route_index(routes)

    @web.middleware
    async def record_history(request: web.Request, handler: Handler) -> web.StreamResponse:
        action = _action(request, index)
        if not action:
            return await handler(request)
        at = datetime.now(UTC)
        response: web.StreamResponse | None = None
        status = 500  # an exception nobody turned into a response
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            status = CLIENT_CLOSED
            raise
        finally:
            result = _result(status, error_code(request), aborted(request))
            _record(request, _event(request, action, at, status, result, response))

    return record_history


def _result(status: int, raised: str | None, aborted: bool = False) -> str:
    """OK, or the code of the error the call failed with (also for errors nobody raised as ours).

    A response aborted after its first byte keeps its 2xx status (that is what
    the client saw start) but is no success: its result is the error's code.
    """
    if aborted:
        return raised or "internal_error"
    if status < 400:
        return OK
    if status == CLIENT_CLOSED:
        return "client_closed"
    if raised:
        return raised
    return "internal_error" if status == 500 else http_error_code(status)


def _record(request: web.Request, event: HistoryEvent | None) -> None:
    services = request.app.get(SERVICES)
    if services is not None and event is not None:
        services.history.record(event)


def _size(action: str, status: int, request: web.Request, response: web.StreamResponse | None) -> int | None:
    if not 200 <= status < 300:
        return None
    if action in _SIZE_OF_REQUEST:
        return request.content_length
    if action in _SIZE_OF_RESPONSE and response is not None:
        return response.content_length
    return None


def _event(
    request: web.Request,
    action: str,
    at: datetime,
    status: int,
    result: str,
    response: web.StreamResponse | None,
) -> HistoryEvent | None:
    """The row for this call; None (and a log line) rather than failing the call over its record."""
    try:
        extra = noted(request)
        who: Principal | None = request.get("principal")
        size = extra.get("size")
        return HistoryEvent(
            action=action,
            at=at,
            status=status,
            result=result,
            user_id=who.user_id if who else extra.get("user_id"),
            user_name=who.name if who else extra.get("user_name"),
            bucket_id=extra.get("bucket_id"),
            bucket=extra.get("bucket") or request.match_info.get("bucket"),
            key=extra.get("key") or request.match_info.get("key"),
            version_id=extra.get("version_id") or request.query.get("version_id"),
            size=size if size is not None else _size(action, status, request, response),
            client=request.remote,
            user_agent=request.headers.get("User-Agent", "")[:USER_AGENT_MAX] or None,
            detail=extra.get("detail"),
        )
    except Exception:
        log.exception("history: cannot record %s %s", request.method, request.path)
        return None


# -- reading --------------------------------------------------------------------


def event_json(event: HistoryEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "user": event.user_name,
        "action": event.action,
        "bucket": event.bucket,
        "key": event.key,
        "version_id": event.version_id,
        "size": event.size,
        "client": event.client,
        "user_agent": event.user_agent,
        "result": event.result,
        "status": event.status,
        "detail": event.detail,
    }


async def list_history(request: web.Request) -> web.Response:
    query = parse_query(request.query)
    page = await request.app[SERVICES].history.search(principal(request), query)
    return json_response({"events": [event_json(e) for e in page.events], "next_cursor": page.next_cursor})


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        API + "/history",
        list_history,
        "The action history, newest first (?user, bucket, prefix, action, since, until, limit, cursor);"
        " admins see every call, users their own and those on buckets they own",
        "history",
        action="history.read",
        answer=schemas.History,
        query=(
            ("user", {"type": "string", "pattern": schemas.USER_NAME_PATTERN}),
            ("bucket", {"type": "string", "maxLength": MAX_BUCKET_FILTER}),
            ("prefix", {"type": "string", "maxLength": MAX_PREFIX_FILTER}),
            (
                "action",
                {
                    "type": "string",
                    "maxLength": MAX_ACTION,
                    "pattern": ACTION_PATTERN,
                    "description": "A resource such as 'object' or an action such as 'object.read'",
                },
            ),
            ("since", {"type": "string", "format": "date-time"}),
            ("until", {"type": "string", "format": "date-time"}),
            ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ("cursor", {"type": "string", "pattern": CURSOR_PATTERN}),
        ),
    ),
)
