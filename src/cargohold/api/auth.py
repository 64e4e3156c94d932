"""Authentication middleware: every API call carries a valid key, except public routes."""

from __future__ import annotations

from aiohttp import web

from cargohold.errors import Forbidden
from cargohold.problems import Handler
from cargohold.service.auth import AuthService

PUBLIC_PATHS = frozenset({"/", "/healthz", "/openapi.json", "/docs"})

AUTH = web.AppKey("auth", AuthService)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in PUBLIC_PATHS and request.method != "OPTIONS":
        request["key"] = await request.app[AUTH].authenticate(request.headers.get("Authorization"))
    return await handler(request)


def require_admin(request: web.Request) -> None:
    if request["key"].role != "admin":
        raise Forbidden("this call needs an admin key")
