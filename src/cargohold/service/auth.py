"""Credentials: the check every API call goes through, and API keys.

A call is made by a :class:`Principal`: the user behind an API key or behind
an access token (JWT, see ``service/tokens.py``). Disabled users are refused
whatever they present.

A key is shown once as ``<key_id>.<secret>``; only a SHA-256 of the secret is
stored. The secret has 256 bits of entropy, so a slow password hash would add
latency to every request and no safety. Verified keys are cached for a few
seconds so small-object traffic does not pay a metadata round trip per call;
revocation therefore takes effect within ``cache_seconds`` on other gateways
(at once on the gateway that revoked). Users are cached the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime

from cargohold.domain.model import ApiKey, Principal, User
from cargohold.errors import InvalidCredentials, Unauthorized
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh (key_id, secret) pair."""
    return "CH" + secrets.token_hex(8).upper(), secrets.token_urlsafe(32)


def split_key(token: str) -> tuple[str, str]:
    key_id, sep, secret = token.partition(".")
    if not sep or not key_id or not secret:
        raise InvalidCredentials("API key must look like <key_id>.<secret>")
    return key_id, secret


class AuthService:
    def __init__(self, db: Database, cache_seconds: float = 5.0) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey]] = {}
        self._users: dict[int, tuple[float, User | None]] = {}

    async def create_key(
        self, user_id: int, name: str, token: str | None = None, expires_at: datetime | None = None
    ) -> tuple[ApiKey, str]:
        """Store a key for a user; returns it and the token to show once.

        ``token`` fixes the token (automation, e.g. the first admin key).
        """
        key_id, secret = split_key(token) if token else new_key()
        now = datetime.now(UTC)
        key = await self._db.write(
            lambda conn: repo.create_key(conn, key_id, user_id, name, hash_secret(secret), now, expires_at)
        )
        return key, f"{key_id}.{secret}"

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("send Authorization: Bearer <API key or access token>")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must use the Bearer scheme")
        return await self.principal_for_key(token.strip())

    async def principal_for_key(self, token: str) -> Principal:
        """The user an API key token (``<key_id>.<secret>``) acts as."""
        key_id, secret = split_key(token)
        key = await self._lookup(key_id)
        now = datetime.now(UTC)
        if (
            key is None
            or not hmac.compare_digest(key.secret_hash, hash_secret(secret))
            or key.revoked_at is not None
            or (key.expires_at is not None and key.expires_at <= now)
        ):
            raise InvalidCredentials("unknown, expired or revoked API key")
        user = await self.active_user(key.user_id)
        return Principal(user.id, user.name, user.role, key_id=key.key_id)

    async def active_user(self, user_id: int) -> User:
        """The user, if it exists and is not disabled (else ``InvalidCredentials``)."""
        cached = self._users.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            user = cached[1]
        else:
            async with self._db.read() as conn:
                user = await repo.get_user(conn, user_id)
            self._users[user_id] = (time.monotonic() + self._cache_seconds, user)
        if user is None or user.disabled:
            raise InvalidCredentials("this user is disabled or no longer exists")
        return user

    def forget_key(self, key_id: str) -> None:
        self._cache.pop(key_id, None)

    def forget_user(self, user_id: int) -> None:
        self._users.pop(user_id, None)

    async def _lookup(self, key_id: str) -> ApiKey | None:
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self._db.read() as conn:
            key = await repo.get_key(conn, key_id)
        if key is not None:
            self._cache[key_id] = (time.monotonic() + self._cache_seconds, key)
        return key
