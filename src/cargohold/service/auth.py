"""API keys: creation, and the check every API call goes through.

A key is shown once as ``<key_id>.<secret>``; only a SHA-256 of the secret is
stored. The secret has 256 bits of entropy, so a slow password hash would add
latency to every request and no safety. Verified keys are cached for a few
seconds so small-object traffic does not pay a metadata round trip per call;
revocation therefore takes effect within ``cache_seconds``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime

from cargohold.domain.model import ApiKey
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

    async def create_key(self, name: str, role: str, token: str | None = None) -> str:
        """Store a key and return the token to show once. ``token`` fixes it (automation)."""
        key_id, secret = split_key(token) if token else new_key()
        now = datetime.now(UTC)
        await self._db.write(
            lambda conn: repo.create_key(conn, key_id, name, hash_secret(secret), role, now, None)
        )
        return f"{key_id}.{secret}"

    async def has_keys(self) -> bool:
        async with self._db.read() as conn:
            return await repo.count_keys(conn) > 0

    async def authenticate(self, authorization: str | None) -> ApiKey:
        if not authorization:
            raise Unauthorized("send Authorization: Bearer <api key>")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must use the Bearer scheme")
        key_id, secret = split_key(token.strip())
        key = await self._lookup(key_id)
        now = datetime.now(UTC)
        if (
            key is None
            or not hmac.compare_digest(key.secret_hash, hash_secret(secret))
            or key.revoked_at is not None
            or (key.expires_at is not None and key.expires_at <= now)
        ):
            raise InvalidCredentials("unknown, expired or revoked API key")
        return key

    async def _lookup(self, key_id: str) -> ApiKey | None:
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self._db.read() as conn:
            key = await repo.get_key(conn, key_id)
        if key is not None:
            self._cache[key_id] = (time.monotonic() + self._cache_seconds, key)
        return key
