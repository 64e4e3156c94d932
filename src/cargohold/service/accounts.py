"""Users: the first admin, and what admins (and users, for themselves) do to accounts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import ADMIN, ROLES, USER, ApiKey, Principal, User
from cargohold.domain.names import validate_user_name
from cargohold.errors import Conflict, Forbidden, InvalidArgument, NoSuchUser, NotFound
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.repositories import refresh_tokens as refresh_repo
from cargohold.service.auth import AuthService
from cargohold.service.passwords import check_password_rules, hash_password

FIRST_ADMIN = "admin"


class _Unset:
    """Marks a field a PATCH did not mention (``quota_bytes=None`` means "no quota")."""


UNSET: Any = _Unset()


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What a start created and must be shown once: the admin's password and key, if new."""

    password: str | None = None
    token: str | None = None
    #: The admin's first S3 access key: (access key id, secret).
    s3_key: tuple[str, str] | None = None


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
        _check_role(role)
        _check_quota(quota_bytes)
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

    async def update_user(
        self,
        who: Principal,
        name: str,
        *,
        disabled: bool | None = None,
        role: str | None = None,
        quota_bytes: int | None = UNSET,
        password: str | None = None,
    ) -> User:
        """An admin changes a user: enable/disable, role, quota, or resets the password.

        Disabling, a new role or a new password ends the user's sessions and
        takes effect at once on this gateway. The last enabled admin cannot
        be disabled or demoted (``last_admin``), or nobody could undo it.
        """
        _require_admin(who)
        changes: dict[str, Any] = {}
        if disabled is not None:
            if not isinstance(disabled, bool):
                raise InvalidArgument("disabled must be true or false", field="disabled")
            changes["disabled"] = disabled
        if role is not None:
            changes["role"] = _check_role(role)
        if quota_bytes is not UNSET:
            changes["quota_bytes"] = _check_quota(quota_bytes)
        if password is not None:
            changes["password_hash"] = await hash_password(check_password_rules(password))
        if not changes:
            raise InvalidArgument("nothing to change: give disabled, role, quota_bytes or password")
        now = datetime.now(UTC)

        async def apply(conn: AsyncConnection) -> User:
            user = await _user_named(conn, name)
            stays_admin = changes.get("role", user.role) == ADMIN and not changes.get(
                "disabled", user.disabled
            )
            if user.is_admin and not user.disabled and not stays_admin:
                await _keep_an_admin(conn, user)
            updated = await repo.update_user(conn, user.id, **changes)
            assert updated is not None
            ends_sessions = (
                "password_hash" in changes
                or (updated.disabled and not user.disabled)
                or updated.role != user.role
            )
            if ends_sessions:
                await refresh_repo.revoke_user_families(conn, user.id, now)
            return updated

        updated = await self._db.write(apply)
        self._auth.forget_user(updated.id)
        return updated

    async def delete_user(self, who: Principal, name: str) -> User:
        """An admin deletes a user, with their keys, sessions, grants and share links.

        Refused for yourself, for the last enabled admin, and for the owner of
        buckets: their data must be deleted or handed over first, never lost
        with the account.
        """
        _require_admin(who)

        async def remove(conn: AsyncConnection) -> User:
            user = await _user_named(conn, name)
            if user.id == who.user_id:
                raise CannotDeleteSelf("you cannot delete yourself; ask another admin", user=name)
            owned = await repo.count_owned(conn, user.id)
            if owned:
                raise UserOwnsBuckets(
                    f"user {name!r} owns {owned} bucket(s): empty and delete them first, or disable "
                    "the user instead (their buckets and grants stay)",
                    user=name,
                    buckets=owned,
                )
            if user.is_admin and not user.disabled:
                await _keep_an_admin(conn, user)
            await repo.delete_user(conn, user.id)
            return user

        removed = await self._db.write(remove)
        self._auth.forget_user(removed.id)
        return removed

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


def _check_role(role: object) -> str:
    if role not in ROLES:
        raise InvalidArgument(f"role must be one of {', '.join(ROLES)}", field="role")
    return str(role)


def _check_quota(quota_bytes: object) -> int | None:
    if quota_bytes is None:
        return None
    if not isinstance(quota_bytes, int) or isinstance(quota_bytes, bool) or quota_bytes < 0:
        raise InvalidArgument("quota_bytes must be a non-negative integer or null", field="quota_bytes")
    return quota_bytes


async def _user_named(conn: AsyncConnection, name: str) -> User:
    user = await repo.get_user_by_name(conn, name)
    if user is None:
        raise NoSuchUser(f"no user {name!r}", user=name)
    return user


async def _keep_an_admin(conn: AsyncConnection, leaving: User) -> None:
    """``LastAdmin`` unless an enabled admin other than ``leaving`` remains (rows locked)."""
    if not set(await repo.lock_enabled_admins(conn)) - {leaving.id}:
        raise LastAdmin(
            f"{leaving.name!r} is the last enabled admin: make another user admin first", user=leaving.name
        )


class LastAdmin(Conflict):
    code = "last_admin"
    title = "The last enabled admin must stay"


class CannotDeleteSelf(Conflict):
    code = "cannot_delete_self"
    title = "You cannot delete your own account"


class UserOwnsBuckets(Conflict):
    code = "user_owns_buckets"
    title = "The user still owns buckets"


class NoSuchApiKey(NotFound):
    code = "no_such_key_id"
    title = "API key does not exist"
