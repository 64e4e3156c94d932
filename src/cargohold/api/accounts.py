"""Accounts API (``/api/v1``): users, API keys, and who am I.

Handlers translate HTTP to :class:`AccountService` calls; the service decides
who may do what.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from cargohold.api.auth import principal
from cargohold.api.context import SERVICES
from cargohold.api.native import API, Route, json_body, json_response
from cargohold.domain.model import ApiKey, User
from cargohold.errors import InvalidArgument
from cargohold.service.accounts import AccountService


def _accounts(request: web.Request) -> AccountService:
    return request.app[SERVICES].accounts


def user_json(user: User) -> dict[str, Any]:
    return {
        "name": user.name,
        "role": user.role,
        "disabled": user.disabled,
        "quota_bytes": user.quota_bytes,
        "has_password": user.password_hash is not None,
        "created_at": user.created_at.isoformat(),
        "updated_at": user.updated_at.isoformat(),
    }


def key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def optional_time(body: dict[str, Any], field: str) -> datetime | None:
    """An ISO 8601 time with a zone from a JSON body, or None when absent."""
    raw = body.get(field)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise InvalidArgument(f"{field} must be an ISO 8601 time with a zone", field=field)
    return value


async def create_user(request: web.Request) -> web.Response:
    body = await json_body(request)
    user = await _accounts(request).create_user(
        principal(request),
        body.get("name"),  # type: ignore[arg-type]  # validated by the service
        body.get("password"),
        role=body.get("role", "user"),
        quota_bytes=body.get("quota_bytes"),
    )
    return json_response(user_json(user), status=201)


async def list_users(request: web.Request) -> web.Response:
    users = await _accounts(request).list_users(principal(request))
    return json_response({"users": [user_json(u) for u in users]})


async def get_user(request: web.Request) -> web.Response:
    user = await _accounts(request).get_user(principal(request), request.match_info["name"])
    return json_response(user_json(user))


async def whoami(request: web.Request) -> web.Response:
    who = principal(request)
    user = await _accounts(request).get_user(who, who.name)
    return json_response({**user_json(user), "key_id": who.key_id})


async def create_key(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = body.get("name", "api key")
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise InvalidArgument("name must be a string of 1-200 characters", field="name")
    for_user = body.get("user")
    if for_user is not None and not isinstance(for_user, str):
        raise InvalidArgument("user must be a user name", field="user")
    key, token = await _accounts(request).create_key(
        principal(request), name, expires_at=optional_time(body, "expires_at"), for_user=for_user
    )
    return json_response({**key_json(key), "token": token}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    keys = await _accounts(request).list_keys(principal(request), request.query.get("user"))
    return json_response({"keys": [key_json(k) for k in keys]})


async def revoke_key(request: web.Request) -> web.Response:
    key = await _accounts(request).revoke_key(principal(request), request.match_info["key_id"])
    return json_response(key_json(key))


USERS = API + "/users"
KEYS = API + "/keys"
ROUTES: tuple[Route, ...] = (
    Route("POST", USERS, create_user, "Create a user (admin)", "users", action="user.create"),
    Route("GET", USERS, list_users, "List users (admin)", "users", action="user.list"),
    Route("GET", USERS + "/{name}", get_user, "A user (admin, or yourself)", "users", action="user.read"),
    Route("GET", API + "/me", whoami, "Who the credentials belong to", "users", action="user.whoami"),
    Route(
        "POST",
        KEYS,
        create_key,
        "Create an API key (admin: for ?user); the token is shown once",
        "keys",
        action="key.create",
    ),
    Route("GET", KEYS, list_keys, "List your API keys (admin: ?user=)", "keys", action="key.list"),
    Route("DELETE", KEYS + "/{key_id}", revoke_key, "Revoke an API key", "keys", action="key.revoke"),
)
