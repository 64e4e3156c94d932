"""Accounts API (``/api/v1``): users, API keys, who am I, and sign-in sessions.

Handlers translate HTTP to :class:`AccountService` and :class:`SessionService`
calls; the services decide who may do what.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cargohold.api import schemas
from cargohold.api.audit import note
from cargohold.api.auth import principal
from cargohold.api.context import SERVICES
from cargohold.api.inputs import json_body, model_body, validate_body
from cargohold.api.native import API, Route, json_response
from cargohold.domain.model import ApiKey, User
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
    body = await model_body(request, schemas.CreateUser)
    user = await _accounts(request).create_user(
        principal(request), body.name, body.password, role=body.role, quota_bytes=body.quota_bytes
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
    raw = await json_body(request)
    body = validate_body(raw, schemas.UpdateUser)
    user = await _accounts(request).update_user(
        principal(request),
        request.match_info["name"],
        disabled=body.disabled,
        role=body.role,
        quota_bytes=body.quota_bytes if "quota_bytes" in body.model_fields_set else UNSET,
        password=body.password,
    )
    # Field names only, never the password itself.
    note(request, detail={"user": user.name, "changed": sorted(raw)})
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
    body = await model_body(request, schemas.CreateKey)
    key, token = await _accounts(request).create_key(
        principal(request), body.name or "api key", expires_at=body.expires_at, for_user=body.user
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
    raw = await json_body(request)
    if isinstance(raw.get("name"), str):
        note(request, user_name=raw["name"][:64])
    body = validate_body(raw, schemas.Login)
    session = await _sessions(request).login(body.name, body.password, request.remote)
    note(request, user_id=session.user.id)
    return json_response(session_json(session))


async def refresh(request: web.Request) -> web.Response:
    body = await model_body(request, schemas.Refresh)
    session = await _sessions(request).refresh(body.refresh_token)
    note(request, user_id=session.user.id, user_name=session.user.name)
    return json_response(session_json(session))


async def logout(request: web.Request) -> web.Response:
    body = await model_body(request, schemas.Logout)
    ended = await _sessions(request).logout(principal(request), body.refresh_token, body.all)
    return json_response({"revoked_families": ended})


async def change_password(request: web.Request) -> web.Response:
    body = await model_body(request, schemas.ChangePassword)
    user = await _sessions(request).change_password(
        principal(request), body.current_password, body.new_password, request.remote
    )
    return json_response(user_json(user))


USERS = API + "/users"
AUTH = API + "/auth"
KEYS = API + "/keys"
ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        USERS,
        create_user,
        "Create a user (admin)",
        "users",
        action="user.create",
        body=schemas.CreateUser,
        answer=schemas.UserOut,
        status=201,
        errors=(409,),
    ),
    Route(
        "GET", USERS, list_users, "List users (admin)", "users", action="user.list", answer=schemas.UserList
    ),
    Route(
        "GET",
        USERS + "/{name}",
        get_user,
        "A user (admin, or yourself)",
        "users",
        action="user.read",
        answer=schemas.UserOut,
    ),
    Route(
        "PATCH",
        USERS + "/{name}",
        update_user,
        "Change a user (admin): disabled, role, quota_bytes, password",
        "users",
        action="user.update",
        body=schemas.UpdateUser,
        answer=schemas.UserOut,
        errors=(409,),
    ),
    Route(
        "DELETE",
        USERS + "/{name}",
        delete_user,
        "Delete a user (admin); refused while they own buckets",
        "users",
        action="user.delete",
        status=204,
        errors=(409,),
    ),
    Route(
        "GET",
        API + "/me",
        whoami,
        "Who the credentials belong to",
        "users",
        action="user.whoami",
        answer=schemas.Me,
    ),
    Route(
        "POST",
        KEYS,
        create_key,
        "Create an API key (admin: for ?user); the token is shown once",
        "keys",
        action="key.create",
        body=schemas.CreateKey,
        answer=schemas.NewKey,
        status=201,
    ),
    Route(
        "GET",
        KEYS,
        list_keys,
        "List your API keys (admin: ?user=)",
        "keys",
        action="key.list",
        answer=schemas.KeyList,
        query=(("user", {"type": "string", "maxLength": 64}),),
    ),
    Route(
        "DELETE",
        KEYS + "/{key_id}",
        revoke_key,
        "Revoke an API key",
        "keys",
        action="key.revoke",
        answer=schemas.KeyOut,
    ),
    Route(
        "POST",
        AUTH + "/login",
        login,
        "Sign in with a user name and password: an access token and a refresh token",
        "auth",
        action="auth.login",
        body=schemas.Login,
        answer=schemas.SessionOut,
    ),
    Route(
        "POST",
        AUTH + "/refresh",
        refresh,
        "Trade a refresh token for a new access token and refresh token",
        "auth",
        action="auth.refresh",
        body=schemas.Refresh,
        answer=schemas.SessionOut,
    ),
    Route(
        "POST",
        AUTH + "/logout",
        logout,
        "End this session (or the refresh token's, or all of yours)",
        "auth",
        action="auth.logout",
        body=schemas.Logout,
        answer=schemas.LoggedOut,
        errors=(409,),
    ),
    Route(
        "POST",
        AUTH + "/password",
        change_password,
        "Change your own password (ends your other sessions)",
        "auth",
        action="auth.password",
        body=schemas.ChangePassword,
        answer=schemas.UserOut,
    ),
)
