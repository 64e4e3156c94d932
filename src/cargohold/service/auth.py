"""Credentials: the check every API call goes through, and API keys.

A call is made by a :class:`Principal`: the user behind an API key or behind
an access token (JWT, see ``service/tokens.py``). Disabled users are refused
whatever they present.

A key is shown once as ``<key_id>.<secret>``; only a SHA-256 of the secret is
stored. The secret has 256 bits of entropy, so a slow password hash would add
latency to every request and no safety. Verified keys are cached for a few
seconds so small-object traffic does not pay a metadata round trip per call;
revocation therefore takes effect within ``cache_seconds`` on other gateways
(at once on the gateway that revoked). Users, and whether an access token's
refresh family is still live, are cached the same way: a logout, a disabled
user or a changed password stops tokens at once here and within
``cache_seconds`` everywhere else.
"""

from __future__ import annotations

import hmac
import secrets
import time
from datetime import UTC, datetime
from typing import Generic, TypeVar

from cargohold.domain.model import ApiKey, Principal, User
from cargohold.errors import InvalidCredentials, Unauthorized
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.repositories import refresh_tokens as refresh_repo
from cargohold.service.revocations import Revocations, Watcher
from cargohold.service.tokens import TokenSigner, hash_secret, looks_like_jwt

__all__ = ["AuthService", "TtlCache", "hash_secret", "new_key", "split_key"]

V = TypeVar("V")


def new_key() -> tuple[str, str]:
    """A fresh (key_id, secret) pair."""
    return "CH" + secrets.token_hex(8).upper(), secrets.token_urlsafe(32)


def split_key(token: str) -> tuple[str, str]:
    key_id, sep, secret = token.partition(".")
    if not sep or not key_id or not secret:
        raise InvalidCredentials("API key must look like <key_id>.<secret>")
    return key_id, secret


class SessionRevoked(Unauthorized):
    code = "session_revoked"
    title = "Signed out"


class TtlCache(Generic[V]):
    """A dict whose entries expire; each remembers the user it belongs to, to drop them together."""

    def __init__(
        self, seconds: float, max_entries: int = 100_000, revocations: Revocations | None = None
    ) -> None:
        self._seconds = seconds
        self._max = max_entries
        self._entries: dict[str, tuple[float, int, V]] = {}
        self._watcher = Watcher(revocations)

    def get(self, key: str) -> tuple[V] | None:
        if self._watcher.moved():
            self._entries.clear()
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return (entry[2],)

    def put(self, key: str, user_id: int, value: V) -> None:
        if self._seconds <= 0:
            return
        now = time.monotonic()
        if len(self._entries) >= self._max:
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
        self._entries[key] = (now + self._seconds, user_id, value)

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)

    def drop_user(self, user_id: int) -> None:
        for key in [k for k, e in self._entries.items() if e[1] == user_id]:
            del self._entries[key]


class AuthService:
    def __init__(
        self,
        db: Database,
        cache_seconds: float = 5.0,
        tokens: TokenSigner | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        self._db = db
        self._tokens = tokens
        self.revocations = revocations or Revocations()
        self._keys: TtlCache[ApiKey] = TtlCache(cache_seconds, revocations=self.revocations)
        self._users: TtlCache[User | None] = TtlCache(cache_seconds, revocations=self.revocations)
        self._families: TtlCache[bool] = TtlCache(cache_seconds, revocations=self.revocations)

    @property
    def tokens(self) -> TokenSigner:
        if self._tokens is None:
            raise RuntimeError("this gateway was built without an access-token signer")
        return self._tokens

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
        """The principal behind an ``Authorization: Bearer`` header: an API key or an access token."""
        if not authorization:
            raise Unauthorized("send Authorization: Bearer <API key or access token>")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Authorization must use the Bearer scheme")
        if looks_like_jwt(token):
            return await self.principal_for_token(token)
        return await self.principal_for_key(token)

    async def principal_for_key(self, token: str) -> Principal:
        """The user an API key token (``<key_id>.<secret>``) acts as."""
        key_id, secret = split_key(token)
        key = await self._lookup_key(key_id)
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

    async def principal_for_token(self, token: str) -> Principal:
        """The user an access token was issued to, if its refresh family is still live."""
        claims = self.tokens.verify(token)
        if not await self._family_live(claims.session, claims.user_id):
            raise SessionRevoked("this session was signed out or revoked: sign in again")
        user = await self.active_user(claims.user_id)
        return Principal(user.id, user.name, user.role, session=claims.session)

    async def user(self, user_id: int) -> User | None:
        """The user record, cached like keys (a change through this gateway drops it at once)."""
        cached = self._users.get(str(user_id))
        if cached is not None:
            return cached[0]
        async with self._db.read() as conn:
            user = await repo.get_user(conn, user_id)
        self._users.put(str(user_id), user_id, user)
        return user

    async def active_user(self, user_id: int) -> User:
        """The user, if it exists and is not disabled (else ``InvalidCredentials``)."""
        user = await self.user(user_id)
        if user is None or user.disabled:
            raise InvalidCredentials("this user is disabled or no longer exists")
        return user

    def forget_key(self, key_id: str) -> None:
        self._keys.drop(key_id)
        self.revocations.bump()

    def forget_family(self, family_id: str) -> None:
        self._families.drop(family_id)
        self.revocations.bump()

    def forget_user(self, user_id: int) -> None:
        """Drop everything cached about a user: the record, their keys and sessions."""
        self._users.drop(str(user_id))
        self._keys.drop_user(user_id)
        self._families.drop_user(user_id)
        self.revocations.bump()

    async def _lookup_key(self, key_id: str) -> ApiKey | None:
        cached = self._keys.get(key_id)
        if cached is not None:
            return cached[0]
        async with self._db.read() as conn:
            key = await repo.get_key(conn, key_id)
        if key is not None:
            self._keys.put(key_id, key.user_id, key)
        return key

    async def _family_live(self, family_id: str, user_id: int) -> bool:
        cached = self._families.get(family_id)
        if cached is not None:
            return cached[0]
        async with self._db.read() as conn:
            live = await refresh_repo.family_live(conn, family_id)
        self._families.put(family_id, user_id, live)
        return live
