"""Users: the first admin, and what admins (and users, for themselves) do to accounts."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from cargohold.domain.model import ADMIN, ROLES, USER, ApiKey, Principal, User
from cargohold.errors import Forbidden, InvalidArgument, NoSuchUser, NotFound
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.auth import AuthService
from cargohold.service.passwords import check_password_rules, hash_password

FIRST_ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What a start created and must be shown once: the admin's password and key, if new."""

    password: str | None = None
    token: str | None = None


class AccountService:
    def __init__(self, db: Database, auth: AuthService) -> None:
        self._db = db
        self._auth = auth

    async def bootstrap(self, password: str | None, admin_key: str | None) -> Bootstrap:
        """Make sure an admin can sign in: create the first admin and key on a fresh store.

        A store that existed before accounts has an ``admin`` without a
        password (see migration 0003): it gets ``password`` or a generated one.
        """
        shown_password: str | None = None
        async with self._db.read() as conn:
            admin = await repo.get_user_by_name(conn, FIRST_ADMIN)
            users = await repo.count_users(conn)
            keys = await repo.count_keys(conn)
        if users == 0 or (admin is not None and admin.password_hash is None):
            chosen = check_password_rules(password) if password else secrets.token_urlsafe(18)
            hashed = await hash_password(chosen)
            if admin is None:
                admin = await self._db.write(lambda conn: repo.create_user(conn, FIRST_ADMIN, ADMIN, hashed))
            else:
                admin_id = admin.id
                await self._db.write(lambda conn: repo.update_user(conn, admin_id, password_hash=hashed))
            shown_password = None if password else chosen
        token = None
        if keys == 0 and admin is not None:
            _, token = await self._auth.create_key(admin.id, "admin", token=admin_key)
        return Bootstrap(shown_password, token)

    # -- users ----------------------------------------------------------------------

    async def create_user(
        self,
        who: Principal,
        name: str,
        password: str | None,
        role: str = USER,
        quota_bytes: int | None = None,
    ) -> User:
        """An admin creates a user (with a password for sign-in, or none: API keys only)."""
        _require_admin(who)
        validate_user_name(name)
        if role not in ROLES:
            raise InvalidArgument(f"role must be one of {', '.join(ROLES)}", field="role")
        if quota_bytes is not None and (not isinstance(quota_bytes, int) or quota_bytes < 0):
            raise InvalidArgument("quota_bytes must be a non-negative integer or null", field="quota_bytes")
        hashed = await hash_password(check_password_rules(password)) if password is not None else None
        return await self._db.write(lambda conn: repo.create_user(conn, name, role, hashed, quota_bytes))

    async def list_users(self, who: Principal) -> list[User]:
        _require_admin(who)
        async with self._db.read() as conn:
            return await repo.list_users(conn)

    async def get_user(self, who: Principal, name: str) -> User:
        """A user record: admins see anyone, users only themselves (others are 404)."""
        async with self._db.read() as conn:
            user = await repo.get_user_by_name(conn, name)
        if user is None or not (who.is_admin or user.id == who.user_id):
            raise NoSuchUser(f"no user {name!r}", user=name)
        return user

    # -- API keys -------------------------------------------------------------------

    async def create_key(
        self, who: Principal, name: str, expires_at: datetime | None = None, for_user: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new API key acting as ``who`` (admins: as ``for_user``, e.g. a service account).

        The token is returned once and stored only hashed.
        """
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise InvalidArgument("expires_at must be in the future", field="expires_at")
        user_id = who.user_id
        if for_user is not None and for_user != who.name:
            _require_admin(who)
            user_id = (await self.get_user(who, for_user)).id
        return await self._auth.create_key(user_id, name, expires_at=expires_at)

    async def list_keys(self, who: Principal, user_name: str | None = None) -> list[ApiKey]:
        """The caller's keys, or (admins) another user's."""
        user_id = who.user_id if user_name is None else (await self.get_user(who, user_name)).id
        async with self._db.read() as conn:
            return await repo.list_keys(conn, user_id)

    async def revoke_key(self, who: Principal, key_id: str) -> ApiKey:
        """Revoke one of the caller's keys (admins: anyone's). Effective at once on this gateway."""
        async with self._db.read() as conn:
            key = await repo.get_key(conn, key_id)
        if key is None or not (who.is_admin or key.user_id == who.user_id):
            raise NoSuchApiKey(f"no API key {key_id!r}", key_id=key_id)
        await self._db.write(lambda conn: repo.revoke_key(conn, key_id))
        self._auth.forget_key(key_id)
        async with self._db.read() as conn:
            revoked = await repo.get_key(conn, key_id)
        assert revoked is not None
        return revoked


def _require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise Forbidden("only an admin may manage users")


def validate_user_name(name: object) -> str:
    """User names: 1-64 of letters, digits, '.', '_', '-', '@'; they appear in URLs and history."""
    if not isinstance(name, str) or not _USER_NAME.fullmatch(name):
        raise InvalidArgument(
            "user name must be 1-64 characters of letters, digits, '.', '_', '-', '@'", field="name"
        )
    return name


_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class NoSuchApiKey(NotFound):
    code = "no_such_key_id"
    title = "API key does not exist"
