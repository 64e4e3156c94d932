"""Sign-in with a password: sessions of an access token and a rotating refresh token.

A sign-in starts a *family*: one access token (JWT, minutes) and one refresh
token (opaque, days). Each refresh rotates: the presented refresh token is
marked used and a new one of the same family is handed out with a new access
token. A refresh token presented a second time means two parties hold it
(one of them stole it), and nobody can tell which is the rightful one, so the
whole family is revoked: both must sign in again. Access tokens carry their
family (``sid``), so revoking a family (logout, reuse, password change)
also stops the access tokens issued under it.

Password guesses (sign-in and password change) pass the throttle before any
hash is computed: per user from one address, per user, and per address (see
``service/throttle.py``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import Principal, User
from cargohold.errors import Forbidden, InvalidArgument, InvalidCredentials, NoSession, Unauthorized
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.repositories import refresh_tokens as refresh_repo
from cargohold.metadata.repositories.refresh_tokens import RefreshTokenRecord
from cargohold.service.auth import AuthService
from cargohold.service.passwords import check_password_rules, hash_password, verify_password
from cargohold.service.throttle import Throttle
from cargohold.service.tokens import hash_secret, new_id, new_refresh_secret, split_refresh_token

#: Longest user name a sign-in may name (as ``validate_user_name`` allows).
MAX_NAME = 64


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    title = "Unknown refresh token"


class RefreshTokenExpired(Unauthorized):
    code = "refresh_token_expired"
    title = "Refresh token expired"


class RefreshTokenReused(Unauthorized):
    code = "refresh_token_reused"
    title = "Refresh token used twice: the session was revoked"


class WrongPassword(Forbidden):
    code = "wrong_password"
    title = "The current password is wrong"


@dataclass(frozen=True, slots=True)
class Session:
    """What a sign-in or a refresh hands out (the refresh token only here, never again)."""

    user: User
    family_id: str
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_at: datetime


class _Rotation(Enum):
    OK = "ok"
    UNKNOWN = "unknown"
    REUSED = "reused"
    EXPIRED = "expired"
    USER_GONE = "user_gone"


@dataclass(frozen=True, slots=True)
class _Rotated:
    """How a refresh went: decided inside the transaction, raised outside so revocations commit."""

    outcome: _Rotation
    family_id: str | None = None
    session: Session | None = None


class SessionService:
    def __init__(self, db: Database, auth: AuthService, throttle: Throttle, refresh_ttl: float) -> None:
        self._db = db
        self._auth = auth
        self._throttle = throttle
        self._refresh_ttl = timedelta(seconds=refresh_ttl)

    async def login(self, name: object, password: object, client: str | None) -> Session:
        """Check a user name and password and start a session.

        An unknown user and a wrong password get the same answer after the
        same work (a hash is verified either way); a disabled user is refused
        too, but only after the password was right, so it reveals nothing new.
        """
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
            raise InvalidArgument(f"name must be a user name of 1-{MAX_NAME} characters", field="name")
        if not isinstance(password, str):
            raise InvalidArgument("password must be a string", field="password")
        attempt = await self._throttle.admit(*self._throttle.login(name, client))
        async with self._db.read() as conn:
            user = await repo.get_user_by_name(conn, name)
        if user is None or not await verify_password(user.password_hash, password):
            raise InvalidCredentials("wrong user name or password")  # admit() counted it already
        await self._throttle.passed(attempt)
        if user.disabled:
            raise InvalidCredentials("this user is disabled")
        family_id = new_id()
        secret, record = self._new_refresh(user.id, family_id)
        await self._db.write(lambda conn: refresh_repo.add_refresh_token(conn, record))
        return self._session(user, record, secret)

    async def refresh(self, token: object) -> Session:
        """Rotate a refresh token: a new access token and a new refresh token of the same family."""
        parsed = split_refresh_token(token)
        if parsed is None:
            raise InvalidRefreshToken("refresh_token must be the token a sign-in or refresh returned")
        token_id, secret = parsed
        now = datetime.now(UTC)

        async def rotate(conn: AsyncConnection) -> _Rotated:
            record = await refresh_repo.get_refresh_token(conn, token_id)
            if record is None or not hmac.compare_digest(record.secret_hash, hash_secret(secret)):
                return _Rotated(_Rotation.UNKNOWN)
            if record.expires_at <= now and record.used_at is None and record.revoked_at is None:
                return _Rotated(_Rotation.EXPIRED, record.family_id)
            if not await refresh_repo.mark_used(conn, token_id, now):
                await refresh_repo.revoke_family(conn, record.family_id, now)
                return _Rotated(_Rotation.REUSED, record.family_id)
            user = await repo.get_user(conn, record.user_id)
            if user is None or user.disabled:
                return _Rotated(_Rotation.USER_GONE, record.family_id)
            new_secret, new_record = self._new_refresh(user.id, record.family_id, now)
            await refresh_repo.add_refresh_token(conn, new_record)
            return _Rotated(_Rotation.OK, record.family_id, self._session(user, new_record, new_secret))

        rotated = await self._db.write(rotate)
        if rotated.outcome is _Rotation.REUSED and rotated.family_id is not None:
            self._auth.forget_family(rotated.family_id)
        if rotated.session is not None:
            return rotated.session
        raise {
            _Rotation.UNKNOWN: InvalidRefreshToken("unknown refresh token"),
            _Rotation.EXPIRED: RefreshTokenExpired("the refresh token has expired: sign in again"),
            _Rotation.REUSED: RefreshTokenReused(
                "this refresh token was already used; the session is revoked: sign in again"
            ),
            _Rotation.USER_GONE: InvalidCredentials("this user is disabled or no longer exists"),
        }[rotated.outcome]

    async def logout(self, who: Principal, refresh_token: object = None, everything: bool = False) -> int:
        """End the caller's session (or the one ``refresh_token`` belongs to, or all); how many ended.

        Access tokens of an ended session stop working at once on this gateway.
        """
        now = datetime.now(UTC)
        if everything:
            ended = await self._db.write(
                lambda conn: refresh_repo.revoke_user_families(conn, who.user_id, now)
            )
            self._auth.forget_user(who.user_id)
            return len(ended)
        family_id = await self._family_of(who, refresh_token) if refresh_token is not None else who.session
        if family_id is None:
            raise NoSession(
                "signed in with an API key: give refresh_token, or all=true to end every session "
                "(revoke the key itself with DELETE /api/v1/keys/{key_id})"
            )
        revoked = await self._db.write(lambda conn: refresh_repo.revoke_family(conn, family_id, now))
        self._auth.forget_family(family_id)
        return int(revoked)

    async def change_password(self, who: Principal, current: object, new: object, client: str | None) -> User:
        """A user changes their own password; every other session of theirs ends.

        Wrong current passwords count as failed sign-ins, so a stolen
        access token cannot be used to guess the password faster than the
        sign-in form allows.
        """
        if not isinstance(current, str):
            raise InvalidArgument("current_password must be a string", field="current_password")
        new_password = check_password_rules(new)
        attempt = await self._throttle.admit(*self._throttle.login(who.name, client))
        async with self._db.read() as conn:
            user = await repo.get_user(conn, who.user_id)
        if user is None or not await verify_password(user.password_hash, current):
            raise WrongPassword("the current password is wrong")
        await self._throttle.passed(attempt)
        hashed = await hash_password(new_password)
        now = datetime.now(UTC)

        async def store(conn: AsyncConnection) -> User | None:
            changed = await repo.update_user(conn, who.user_id, password_hash=hashed)
            await refresh_repo.revoke_user_families(conn, who.user_id, now, keep=who.session)
            return changed

        changed: User | None = await self._db.write(store)
        self._auth.forget_user(who.user_id)
        if changed is None:
            raise InvalidCredentials("this user no longer exists")
        return changed

    # -- helpers ----------------------------------------------------------------------

    async def _family_of(self, who: Principal, token: object) -> str:
        """The family of a refresh token the caller holds (someone else's is "unknown")."""
        parsed = split_refresh_token(token)
        if parsed is None:
            raise InvalidArgument("refresh_token is malformed", field="refresh_token")
        token_id, secret = parsed
        async with self._db.read() as conn:
            record = await refresh_repo.get_refresh_token(conn, token_id)
        if (
            record is None
            or record.user_id != who.user_id
            or not hmac.compare_digest(record.secret_hash, hash_secret(secret))
        ):
            raise InvalidRefreshToken("unknown refresh token")
        return record.family_id

    def _new_refresh(
        self, user_id: int, family_id: str, now: datetime | None = None
    ) -> tuple[str, RefreshTokenRecord]:
        now = now or datetime.now(UTC)
        secret = new_refresh_secret()
        record = RefreshTokenRecord(
            id=new_id(),
            family_id=family_id,
            user_id=user_id,
            secret_hash=hash_secret(secret),
            created_at=now,
            expires_at=now + self._refresh_ttl,
        )
        return secret, record

    def _session(self, user: User, record: RefreshTokenRecord, secret: str) -> Session:
        tokens = self._auth.tokens
        return Session(
            user=user,
            family_id=record.family_id,
            access_token=tokens.issue(user.id, user.name, record.family_id),
            expires_in=tokens.ttl_seconds,
            refresh_token=f"{record.id}.{secret}",
            refresh_expires_at=record.expires_at,
        )
