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
from cargohold.domain.model import ApiKey, S3Key, User
from cargohold.errors import InvalidArgument
from cargohold.service.accounts import UNSET, AccountService, NoSuchApiKey
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
        "kind": "api",
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


def s3_key_json(key: S3Key) -> dict[str, Any]:
    """An S3 key as listed: its id, never its secret."""
    return {
        "kind": "s3",
        "key_id": key.access_key_id,
        "access_key_id": key.access_key_id,
        "name": key.name,
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


KINDS = ("api", "s3")


def _kind(value: str | None) -> str:
    """The ``?kind=`` of a key listing: API keys unless it names S3 keys."""
    if value is None:
        return "api"
    if value not in KINDS:
        raise InvalidArgument("kind must be 'api' (a bearer token) or 's3' (a SigV4 key pair)", field="kind")
    return value


async def create_key(request: web.Request) -> web.Response:
    body = await model_body(request, schemas.CreateKey)
    who = principal(request)
    if body.kind == "s3":
        s3key, secret = await request.app[SERVICES].s3keys.create(
            who, body.name or "s3 key", expires_at=body.expires_at, for_user=body.user
        )
        note(request, detail={"kind": "s3", "key_id": s3key.access_key_id})
        return json_response({**s3_key_json(s3key), "secret_access_key": secret}, status=201)
    key, token = await _accounts(request).create_key(
        who, body.name or "api key", expires_at=body.expires_at, for_user=body.user
    )
    return json_response({**key_json(key), "token": token}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    kind = _kind(request.query.get("kind"))
    who, user_name = principal(request), request.query.get("user")
    if kind == "s3":
        user_id = None if user_name is None else (await _accounts(request).get_user(who, user_name)).id
        s3keys = await request.app[SERVICES].s3keys.list_keys(who, user_id)
        return json_response({"keys": [s3_key_json(k) for k in s3keys]})
    keys = await _accounts(request).list_keys(who, user_name)
    return json_response({"keys": [key_json(k) for k in keys]})


async def revoke_key(request: web.Request) -> web.Response:
    """Revoke an API key or, when no API key has this id, an S3 key (their ids never collide)."""
    who, key_id = principal(request), request.match_info["key_id"]
    try:
        key = await _accounts(request).revoke_key(who, key_id)
    except NoSuchApiKey:
        if await request.app[SERVICES].s3keys.get(who, key_id) is None:
            raise
        return json_response(s3_key_json(await request.app[SERVICES].s3keys.revoke(who, key_id)))
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
        "Create an API key, or an S3 access key with {kind: s3} (admin: for user); the secret is shown once",
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
        "List your API keys, or with ?kind=s3 your S3 keys (admin: ?user=); never their secrets",
        "keys",
        action="key.list",
        answer=schemas.KeyList,
        query=(
            ("kind", {"type": "string", "enum": list(KINDS), "description": "api (the default) or s3"}),
            ("user", {"type": "string", "maxLength": 64}),
        ),
    ),
    Route(
        "DELETE",
        KEYS + "/{key_id}",
        revoke_key,
        "Revoke an API key or an S3 access key",
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
