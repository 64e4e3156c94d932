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


def _kind(value: object, default: str = "api") -> str:
    if value is None:
        return default
    if value not in KINDS:
        raise InvalidArgument("kind must be 'api' (a bearer token) or 's3' (a SigV4 key pair)", field="kind")
    return str(value)


async def create_key(request: web.Request) -> web.Response:
    body = await json_body(request)
    kind = _kind(body.get("kind"))
    name = string_field(body, "name", max_length=200)
    if name == "":
        raise InvalidArgument("name must be a string of 1-200 characters", field="name")
    for_user = string_field(body, "user", max_length=64)
    expires_at = time_field(body, "expires_at")
    who = principal(request)
    if kind == "s3":
        s3key, secret = await request.app[SERVICES].s3keys.create(
            who, name or "s3 key", expires_at=expires_at, for_user=for_user
        )
        note(request, detail={"kind": "s3", "key_id": s3key.access_key_id})
        return json_response({**s3_key_json(s3key), "secret_access_key": secret}, status=201)
    key, token = await _accounts(request).create_key(
        who, name or "api key", expires_at=expires_at, for_user=for_user
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


_TIME = {"type": ["string", "null"], "format": "date-time"}
_KEY_FIELDS: dict[str, Any] = {
    "kind": {"type": "string", "enum": list(KINDS)},
    "key_id": {"type": "string", "description": "API key id, or the S3 access key id"},
    "access_key_id": {"type": "string", "description": "S3 keys only: the same as key_id"},
    "name": {"type": "string"},
    "created_at": {"type": "string", "format": "date-time"},
    "expires_at": _TIME,
    "revoked_at": _TIME,
}
KEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "key_id", "name", "created_at", "expires_at", "revoked_at"],
    "properties": _KEY_FIELDS,
}
NEW_KEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "key_id", "name", "created_at", "expires_at", "revoked_at"],
    "properties": {
        **_KEY_FIELDS,
        "token": {"type": "string", "description": "API keys: <key_id>.<secret>, shown only now"},
        "secret_access_key": {"type": "string", "description": "S3 keys: the secret, shown only now"},
    },
}
CREATE_KEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "kind": {
            "type": "string",
            "enum": list(KINDS),
            "default": "api",
            "description": "api: a bearer token for this API; s3: an access key id and secret for SigV4",
        },
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "expires_at": {"type": "string", "format": "date-time"},
        "user": {"type": "string", "maxLength": 64, "description": "Admins: create it for this user"},
    },
}
KEY_LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["keys"],
    "properties": {"keys": {"type": "array", "items": KEY_SCHEMA}},
}


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
        "Create an API key, or an S3 access key with {kind: s3} (admin: for user); the secret is shown once",
        "keys",
        action="key.create",
        request_schema=CREATE_KEY_SCHEMA,
        response_schema=NEW_KEY_SCHEMA,
        success=201,
    ),
    Route(
        "GET",
        KEYS,
        list_keys,
        "List your API keys, or with ?kind=s3 your S3 keys (admin: ?user=); never their secrets",
        "keys",
        action="key.list",
        response_schema=KEY_LIST_SCHEMA,
    ),
    Route(
        "DELETE",
        KEYS + "/{key_id}",
        revoke_key,
        "Revoke an API key or an S3 access key",
        "keys",
        action="key.revoke",
        response_schema=KEY_SCHEMA,
    ),
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
