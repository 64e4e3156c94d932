"""The one place where errors become HTTP responses, for the gateway's API and the nodes.

Domain errors carry their own status and stable code; this middleware renders
them as RFC 9457 problem+json. aiohttp's own HTTP errors (unknown route, wrong
method, body too large) get the same shape so clients parse one format.

An error raised after a response has started (see :mod:`cargohold.aborts`)
gets no problem at all: its connection is aborted, because anything written
now would land inside the body the client is already reading.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard

from aiohttp import web

from cargohold.aborts import abort, loggable_path, started
from cargohold.errors import CargoholdError, RangeNotSatisfiable, Unauthorized

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_RESERVED = frozenset({"type", "title", "status", "detail", "code"})

_HTTP_CODES = {
    404: "route_not_found",
    405: "method_not_allowed",
    411: "length_required",
    413: "payload_too_large",
    400: "bad_request",
}


def http_error_code(status: int) -> str:
    """The stable code of an HTTP error that aiohttp raised rather than a domain error."""
    return _HTTP_CODES.get(status, f"http_{status}")


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> web.Response:
    body = {
        "type": f"https://cargohold.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM_JSON)


def from_error(error: CargoholdError) -> web.Response:
    extra = {
        k: v
        for k, v in error.extra.items()
        if isinstance(v, str | int | float | list | bool) and k not in _RESERVED
    }
    response = problem(error.status, error.code, error.title, error.detail, **extra)
    if isinstance(error, RangeNotSatisfiable) and "size" in error.extra:
        response.headers["Content-Range"] = f"bytes */{error.extra['size']}"
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = error.challenge
    if error.status in (429, 503) and "retry_after" in error.extra:
        response.headers["Retry-After"] = str(error.extra["retry_after"])
    if error.extra.get("delete_marker") is True:  # a HEAD has no body to say so
        response.headers["x-delete-marker"] = "true"
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Renderer = Callable[[web.Request, CargoholdError], web.StreamResponse]

#: Request key: a surface that answers its errors in its own way (see :func:`renders_errors`).
RENDERER = web.RequestKey[Renderer]("problem_renderer")


def renders_errors(renderer: Renderer) -> Callable[[Handler], Handler]:
    """Have this route's domain errors rendered by ``renderer`` instead of :func:`from_error`.

    The error still travels out through every middleware, so those that
    record it (the history's error code) see it as they see any other.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            request[RENDERER] = renderer
            return await handler(request)

        return wrapper

    return decorate


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ConnectionResetError:
        raise  # the client went away: nobody is left to answer
    except Exception as error:
        response = started(request)
        if response is not None:
            abort(request, response, error)
            return response  # aiohttp's closing write then fails quietly on the closed transport
        if isinstance(error, CargoholdError):
            return _domain_problem(request, error)
        if _needs_problem(error):
            return _http_problem(error)
        raise


def _domain_problem(request: web.Request, error: CargoholdError) -> web.StreamResponse:
    if error.status >= 500:
        log.warning("%s %s -> %s %s", request.method, loggable_path(request), error.code, error.detail)
    render = request.get(RENDERER)
    return render(request, error) if render is not None else from_error(error)


def _needs_problem(error: Exception) -> TypeGuard[web.HTTPException]:
    """aiohttp's own 4xx/5xx that are not problem+json yet (redirects stay as they are)."""
    return isinstance(error, web.HTTPException) and error.status >= 400 and error.content_type != PROBLEM_JSON


def _http_problem(exc: web.HTTPException) -> web.Response:
    response = problem(exc.status, http_error_code(exc.status), exc.reason, exc.text or exc.reason)
    if "Allow" in exc.headers:  # 405 must say which methods the resource answers
        response.headers["Allow"] = exc.headers["Allow"]
    return response
