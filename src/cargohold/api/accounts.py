"""Accounts API (``/api/v1``): users, API keys, who am I, and sign-in sessions.

Handlers translate HTTP to :class:`AccountService` and :class:`SessionService`
calls; the services decide who may do what.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cargohold.api.audit import note
from cargohold.api.auth import principal
from cargohold.api.context import SERVICES
from cargohold.api.inputs import bool_field, int_field, json_body, string_field, time_field
from cargohold.api.native import API, Route, json_response
from cargohold.domain.model import ApiKey, User
from cargohold.errors import InvalidArgument
from cargohold.service.accounts import UNSET, AccountService
from cargohold.service.sessions import Session, SessionService


def _accounts(request: web.Request) -> AccountService:
    return request.app[SERVICES].accounts


def _sessions(request: web.Request) -> SessionService:
    return request.app[SERVICES].sessions


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


async def create_user(request: web.Request) -> web.Response:
    body = await json_body(request)
    user = await _accounts(request).create_user(
        principal(request),
        body.get("name"),  # type: ignore[arg-type]  # validated by the service
        body.get("password"),
        role=body.get("role", "user"),
        quota_bytes=int_field(body, "quota_bytes"),
    )
    return json_response(user_json(user), status=201)


async def list_users(request: web.Request) -> web.Response:
    users = await _accounts(request).list_users(principal(request))
    return json_response({"users": [user_json(u) for u in users]})


async def get_user(request: web.Request) -> web.Response:
    user = await _accounts(request).get_user(principal(request), request.match_info["name"])
    return json_response(user_json(user))


_USER_CHANGES = frozenset({"disabled", "role", "quota_bytes", "password"})


async def update_user(request: web.Request) -> web.Response:
    body = await json_body(request)
    unknown = sorted(set(body) - _USER_CHANGES)
    if unknown:
        raise InvalidArgument(
            f"unknown field(s): {', '.join(unknown)}; give {', '.join(sorted(_USER_CHANGES))}"
        )
    user = await _accounts(request).update_user(
        principal(request),
        request.match_info["name"],
        disabled=body.get("disabled"),
        role=body.get("role"),
        quota_bytes=int_field(body, "quota_bytes") if "quota_bytes" in body else UNSET,
        password=body.get("password"),
    )
    # Field names only, never the password itself.
    note(request, detail={"user": user.name, "changed": sorted(body)})
    return json_response(user_json(user))


async def delete_user(request: web.Request) -> web.Response:
    removed = await _accounts(request).delete_user(principal(request), request.match_info["name"])
    note(request, detail={"user": removed.name})
    return web.Response(status=204)


async def whoami(request: web.Request) -> web.Response:
    who = principal(request)
    user = await _accounts(request).get_user(who, who.name)
    return json_response({**user_json(user), "key_id": who.key_id, "session": who.session})


async def create_key(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = string_field(body, "name", max_length=200)
    if name == "":
        raise InvalidArgument("name must be a string of 1-200 characters", field="name")
    for_user = string_field(body, "user", max_length=64)
    key, token = await _accounts(request).create_key(
        principal(request), name or "api key", expires_at=time_field(body, "expires_at"), for_user=for_user
    )
    return json_response({**key_json(key), "token": token}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    keys = await _accounts(request).list_keys(principal(request), request.query.get("user"))
    return json_response({"keys": [key_json(k) for k in keys]})


async def revoke_key(request: web.Request) -> web.Response:
    key = await _accounts(request).revoke_key(principal(request), request.match_info["key_id"])
    return json_response(key_json(key))


def session_json(session: Session) -> dict[str, Any]:
    return {
        "access_token": session.access_token,
        "token_type": "Bearer",
        "expires_in": session.expires_in,
        "refresh_token": session.refresh_token,
        "refresh_expires_at": session.refresh_expires_at.isoformat(),
        "family_id": session.family_id,
        "user": user_json(session.user),
    }


async def login(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = body.get("name")
    if isinstance(name, str):
        note(request, user_name=name[:64])
    session = await _sessions(request).login(name, body.get("password"), request.remote)
    note(request, user_id=session.user.id)
    return json_response(session_json(session))


async def refresh(request: web.Request) -> web.Response:
    body = await json_body(request)
    session = await _sessions(request).refresh(body.get("refresh_token"))
    note(request, user_id=session.user.id, user_name=session.user.name)
    return json_response(session_json(session))


async def logout(request: web.Request) -> web.Response:
    body = await json_body(request)
    everything = bool_field(body, "all")
    ended = await _sessions(request).logout(principal(request), body.get("refresh_token"), everything)
    return json_response({"revoked_families": ended})


async def change_password(request: web.Request) -> web.Response:
    body = await json_body(request)
    user = await _sessions(request).change_password(
        principal(request), body.get("current_password"), body.get("new_password"), request.remote
    )
    return json_response(user_json(user))


USERS = API + "/users"
AUTH = API + "/auth"
KEYS = API + "/keys"
ROUTES: tuple[Route, ...] = (
    Route("POST", USERS, create_user, "Create a user (admin)", "users", action="user.create"),
    Route("GET", USERS, list_users, "List users (admin)", "users", action="user.list"),
    Route("GET", USERS + "/{name}", get_user, "A user (admin, or yourself)", "users", action="user.read"),
    Route(
        "PATCH",
        USERS + "/{name}",
        update_user,
        "Change a user (admin): disabled, role, quota_bytes, password",
        "users",
        action="user.update",
    ),
    Route(
        "DELETE",
        USERS + "/{name}",
        delete_user,
        "Delete a user (admin); refused while they own buckets",
        "users",
        action="user.delete",
    ),
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
    Route(
        "POST",
        AUTH + "/login",
        login,
        "Sign in with a user name and password: an access token and a refresh token",
        "auth",
        action="auth.login",
    ),
    Route(
        "POST",
        AUTH + "/refresh",
        refresh,
        "Trade a refresh token for a new access token and refresh token",
        "auth",
        action="auth.refresh",
    ),
    Route(
        "POST",
        AUTH + "/logout",
        logout,
        "End this session (or the refresh token's, or all of yours)",
        "auth",
        action="auth.logout",
    ),
    Route(
        "POST",
        AUTH + "/password",
        change_password,
        "Change your own password (ends your other sessions)",
        "auth",
        action="auth.password",
    ),
)
