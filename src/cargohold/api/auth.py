"""Authentication middleware: every API call carries a valid key, except public routes.

A request is authenticated as the method it acts as (:func:`effective_method`):
an ``OPTIONS`` that a method override turns into a ``DELETE`` needs the
credentials a ``DELETE`` needs.
"""

from __future__ import annotations

from aiohttp import web

from cargohold.api.websession import cookie_principal, uses_cookie
from cargohold.domain.model import Principal
from cargohold.errors import Forbidden
from cargohold.problems import Handler
from cargohold.s3.surface import is_s3
from cargohold.service.auth import AuthService

PUBLIC_PATHS = frozenset(
    {
        "/",
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/cookie/login",
        "/ui",
    }
)
#: Share links carry their own credential (the token in the path, and maybe a password);
#: the web page's files are the same for everyone (its data comes through the API).
PUBLIC_PREFIXES = ("/s/", "/ui/")


#: For clients behind proxies that pass only GET and POST (tus allows it).
METHOD_OVERRIDE = "X-HTTP-Method-Override"


def effective_method(request: web.Request) -> str:
    """The method a request acts as: its own, or the override's on routes that dispatch on it.

    Only routes registered for every method ("*", the tus routes) pick their
    handler from the method, so only there does the override mean anything;
    everywhere else it is ignored.
    """
    override = request.headers.get(METHOD_OVERRIDE)
    route = request.match_info.route
    if override is None or route.method != "*":
        return request.method
    return override.strip().upper()


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


AUTH = web.AppKey("auth", AuthService)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer credentials for the native API, or the web page's session cookie (``websession.py``).

    S3 requests authenticate themselves (``s3/auth.py``).
    """
    if is_s3(request):
        return await handler(request)
    method = effective_method(request)
    if not is_public(request.path) and method != "OPTIONS":
        auth = request.app[AUTH]
        if uses_cookie(request):
            request["principal"] = await cookie_principal(request, auth, method)
        else:
            request["principal"] = await auth.authenticate(request.headers.get("Authorization"))
    return await handler(request)


def principal(request: web.Request) -> Principal:
    """Who makes this call (set by :func:`auth_middleware`)."""
    return request["principal"]  # type: ignore[no-any-return]


def require_admin(request: web.Request) -> None:
    """System-wide operations (nodes, users) need the admin role; buckets use grants instead."""
    if not principal(request).is_admin:
        raise Forbidden("this call needs an admin")
