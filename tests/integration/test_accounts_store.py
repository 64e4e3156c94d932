"""Accounts on the real metadata stores (each test runs on SQLite and PostgreSQL).

Refresh-token rows and the rules that need transactions: rotation, reuse
revoking a family (also when two refreshes race), throttled passwords, the
last admin, owners of buckets, and revocations that beat the auth cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from cargohold.domain.model import ADMIN, USER, Principal, User
from cargohold.errors import InvalidCredentials, TooManyAttempts
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.repositories import refresh_tokens as refresh_repo
from cargohold.metadata.repositories.refresh_tokens import RefreshTokenRecord
from cargohold.metadata.tables import refresh_tokens
from cargohold.service.accounts import AccountService, CannotDeleteSelf, LastAdmin, UserOwnsBuckets
from cargohold.service.auth import AuthService, SessionRevoked
from cargohold.service.passwords import hash_password
from cargohold.service.sessions import (
    RefreshTokenExpired,
    RefreshTokenReused,
    SessionService,
    WrongPassword,
)
from cargohold.service.throttle import Throttle
from cargohold.service.tokens import TokenSigner, signing_key

RunDb = Callable[[Callable[[Database], Awaitable[Any]]], Any]
PASSWORD = "correct horse battery"


@dataclass
class Accounts:
    db: Database
    auth: AuthService
    sessions: SessionService
    accounts: AccountService
    admin: Principal

    async def user(self, name: str, role: str = USER, password: str = PASSWORD) -> User:
        hashed = await hash_password(password)
        return await self.db.write(lambda conn: repo.create_user(conn, name, role, hashed))


async def _accounts(db: Database, *, limit: int = 3) -> Accounts:
    # A long cache: every "at once" below must come from dropping cache entries, not from expiry.
    auth = AuthService(db, cache_seconds=300, tokens=TokenSigner(signing_key(None, "test"), ttl=900))
    sessions = SessionService(db, auth, Throttle(db, limit=limit), refresh_ttl=3600)
    accounts = AccountService(db, auth)
    hashed = await hash_password(PASSWORD)
    admin = await db.write(lambda conn: repo.create_user(conn, "admin", ADMIN, hashed))
    return Accounts(db, auth, sessions, accounts, Principal(admin.id, admin.name, admin.role))


def test_refresh_token_rows(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        user = await db.write(lambda conn: repo.create_user(conn, "u", USER, None))
        now = datetime.now(UTC)

        def record(token_id: str, family: str) -> RefreshTokenRecord:
            return RefreshTokenRecord(token_id, family, user.id, "h" * 64, now, now + timedelta(hours=1))

        for token_id, family in (("t1", "fa"), ("t2", "fa"), ("t3", "fb"), ("t4", "fc")):
            await db.write(
                lambda conn, t=token_id, f=family: refresh_repo.add_refresh_token(conn, record(t, f))
            )
        assert await db.write(lambda conn: refresh_repo.mark_used(conn, "t1", now)) is True
        assert await db.write(lambda conn: refresh_repo.mark_used(conn, "t1", now)) is False
        async with db.read() as conn:
            got = await refresh_repo.get_refresh_token(conn, "t1")
            assert got is not None and got.used_at is not None and got.family_id == "fa"
            assert await refresh_repo.live_families(conn, user.id) == ["fa", "fb", "fc"]
        assert await db.write(lambda conn: refresh_repo.revoke_family(conn, "fa", now)) is True
        assert await db.write(lambda conn: refresh_repo.revoke_family(conn, "fa", now)) is False
        assert await db.write(lambda conn: refresh_repo.mark_used(conn, "t2", now)) is False  # revoked
        ended = await db.write(lambda conn: refresh_repo.revoke_user_families(conn, user.id, now, keep="fc"))
        assert ended == ["fb"]
        async with db.read() as conn:
            assert not await refresh_repo.family_live(conn, "fa")
            assert await refresh_repo.family_live(conn, "fc")
            assert not await refresh_repo.family_live(conn, "never-issued")
        await db.write(lambda conn: repo.delete_user(conn, user.id))
        async with db.read() as conn:  # rows go with the user
            assert await refresh_repo.get_refresh_token(conn, "t4") is None

    run_db(main)


def test_enabled_admins(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        ids = []
        for name, role in (("a1", ADMIN), ("a2", ADMIN), ("u1", USER)):
            ids.append((await db.write(lambda conn, n=name, r=role: repo.create_user(conn, n, r, None))).id)
        await db.write(lambda conn: repo.update_user(conn, ids[1], disabled=True))
        assert await db.write(repo.lock_enabled_admins) == [ids[0]]

    run_db(main)


def test_sign_in_rotation_reuse_and_logout(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        acc = await _accounts(db)
        await acc.user("alice")
        with pytest.raises(InvalidCredentials):
            await acc.sessions.login("alice", "wrong password", "10.0.0.1")
        with pytest.raises(InvalidCredentials):
            await acc.sessions.login("nobody", PASSWORD, "10.0.0.1")
        first = await acc.sessions.login("alice", PASSWORD, "10.0.0.1")
        who = await acc.auth.authenticate(f"Bearer {first.access_token}")
        assert (who.name, who.session, who.key_id) == ("alice", first.family_id, None)

        second = await acc.sessions.refresh(first.refresh_token)
        assert second.family_id == first.family_id and second.refresh_token != first.refresh_token
        third = await acc.sessions.refresh(second.refresh_token)
        with pytest.raises(RefreshTokenReused):
            await acc.sessions.refresh(first.refresh_token)
        with pytest.raises(RefreshTokenReused):  # the newest token of the family died with it
            await acc.sessions.refresh(third.refresh_token)
        with pytest.raises(SessionRevoked):
            await acc.auth.authenticate(f"Bearer {third.access_token}")

        a = await acc.sessions.login("alice", PASSWORD, "10.0.0.1")
        b = await acc.sessions.login("alice", PASSWORD, "10.0.0.1")
        who_a = await acc.auth.authenticate(f"Bearer {a.access_token}")
        await acc.auth.authenticate(f"Bearer {b.access_token}")  # cached as live now
        assert await acc.sessions.logout(who_a) == 1
        with pytest.raises(SessionRevoked):
            await acc.auth.authenticate(f"Bearer {a.access_token}")
        await acc.auth.authenticate(f"Bearer {b.access_token}")
        c = await acc.sessions.login("alice", PASSWORD, "10.0.0.1")
        assert await acc.sessions.logout(who_a, everything=True) == 2  # b and c
        for session in (b, c):
            with pytest.raises(SessionRevoked):
                await acc.auth.authenticate(f"Bearer {session.access_token}")

    run_db(main)


def test_racing_refreshes_leave_no_winner_standing(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        acc = await _accounts(db)
        await acc.user("bob")
        start = await acc.sessions.login("bob", PASSWORD, None)
        results = await asyncio.gather(
            *(acc.sessions.refresh(start.refresh_token) for _ in range(4)), return_exceptions=True
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        assert len(winners) == 1, results
        assert all(isinstance(r, RefreshTokenReused) for r in results if r not in winners)
        with pytest.raises(RefreshTokenReused):
            await acc.sessions.refresh(winners[0].refresh_token)  # type: ignore[union-attr]

    run_db(main)


def test_expired_refresh_token(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        acc = await _accounts(db)
        await acc.user("carol")
        session = await acc.sessions.login("carol", PASSWORD, None)
        past = datetime.now(UTC) - timedelta(seconds=1)
        await db.write(lambda conn: conn.execute(update(refresh_tokens).values(expires_at=past)))
        with pytest.raises(RefreshTokenExpired):
            await acc.sessions.refresh(session.refresh_token)

    run_db(main)


def test_throttle_per_pair_per_user_and_per_address(run_db: RunDb) -> None:
    """limit=3: a user from one address takes 3 failures; a user from anywhere or an address 12."""

    async def main(db: Database) -> None:
        acc = await _accounts(db, limit=3)
        await acc.user("dave")
        await acc.user("erin")
        # Per (user, address): three failures block dave from that address only.
        for _ in range(3):
            with pytest.raises(InvalidCredentials):
                await acc.sessions.login("dave", "wrong password", "10.1.0.1")
        with pytest.raises(TooManyAttempts) as blocked:
            await acc.sessions.login("dave", PASSWORD, "10.1.0.1")  # refused before the password check
        assert 1 <= blocked.value.extra["retry_after"] <= 30
        await acc.sessions.login("dave", PASSWORD, "10.1.0.2")  # the owner, elsewhere
        # Per user: twelve failures from twelve addresses block dave for at most 30 s everywhere.
        for n in range(12):
            with pytest.raises(InvalidCredentials):
                await acc.sessions.login("dave", "wrong password", f"10.5.0.{n}")
        with pytest.raises(TooManyAttempts) as blocked:
            await acc.sessions.login("dave", PASSWORD, "10.5.1.1")
        assert 1 <= blocked.value.extra["retry_after"] <= 30
        await acc.sessions.login("erin", PASSWORD, "10.5.1.1")
        # Per address: twelve names from one address block it for everyone.
        for n in range(12):
            with pytest.raises(InvalidCredentials):
                await acc.sessions.login(f"x{n}", "wrong password", "10.2.0.1")
        with pytest.raises(TooManyAttempts):
            await acc.sessions.login("erin", PASSWORD, "10.2.0.1")
        await acc.sessions.login("erin", PASSWORD, "10.2.0.2")
        # A success clears the user's counts, not the address's.
        for _ in range(2):
            with pytest.raises(InvalidCredentials):
                await acc.sessions.login("erin", "wrong password", "10.3.0.1")
        await acc.sessions.login("erin", PASSWORD, "10.3.0.1")
        for _ in range(2):
            with pytest.raises(InvalidCredentials):
                await acc.sessions.login("erin", "wrong password", "10.3.0.1")
        await acc.sessions.login("erin", PASSWORD, "10.3.0.1")  # 2 fresh failures: not blocked
        for n in range(12 - 4):  # the address keeps its 4 failures: 8 more block it
            with pytest.raises(InvalidCredentials):
                await acc.sessions.login(f"y{n}", "wrong password", "10.3.0.1")
        with pytest.raises(TooManyAttempts):
            await acc.sessions.login("erin", PASSWORD, "10.3.0.1")

    run_db(main)


def test_parallel_guesses_get_exactly_the_limit(run_db: RunDb) -> None:
    """Counting and deciding in one transaction: 40 guesses at once, 3 password checks."""

    async def main(db: Database) -> None:
        acc = await _accounts(db, limit=3)
        await acc.user("gina")
        results = await asyncio.gather(
            *(acc.sessions.login("gina", f"guess {n}", "10.6.0.1") for n in range(40)),
            return_exceptions=True,
        )
        kinds = [type(r).__name__ for r in results]
        assert kinds.count("InvalidCredentials") == 3
        assert kinds.count("TooManyAttempts") == 37
        await acc.sessions.login("gina", PASSWORD, "10.6.0.2")

    run_db(main)


def test_password_change_ends_other_sessions(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        acc = await _accounts(db)
        await acc.user("frank")
        here = await acc.sessions.login("frank", PASSWORD, None)
        there = await acc.sessions.login("frank", PASSWORD, None)
        who = await acc.auth.authenticate(f"Bearer {here.access_token}")
        await acc.auth.authenticate(f"Bearer {there.access_token}")
        with pytest.raises(WrongPassword):
            await acc.sessions.change_password(who, "not it", "a new password", None)
        await acc.sessions.change_password(who, PASSWORD, "a new password", None)
        await acc.auth.authenticate(f"Bearer {here.access_token}")
        with pytest.raises(SessionRevoked):
            await acc.auth.authenticate(f"Bearer {there.access_token}")
        with pytest.raises(InvalidCredentials):
            await acc.sessions.login("frank", PASSWORD, None)
        await acc.sessions.login("frank", "a new password", None)

    run_db(main)


def test_admin_changes_take_effect_at_once(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        acc = await _accounts(db)
        grace = await acc.user("grace")
        _, key = await acc.auth.create_key(grace.id, "k")
        session = await acc.sessions.login("grace", PASSWORD, None)
        assert (await acc.auth.authenticate(f"Bearer {key}")).role == USER  # now cached for 300 s
        await acc.auth.authenticate(f"Bearer {session.access_token}")

        promoted = await acc.accounts.update_user(acc.admin, "grace", role=ADMIN, quota_bytes=10)
        assert promoted.role == ADMIN and promoted.quota_bytes == 10
        assert (await acc.auth.authenticate(f"Bearer {key}")).is_admin
        with pytest.raises(SessionRevoked):  # a role change ends sessions
            await acc.auth.authenticate(f"Bearer {session.access_token}")

        await acc.accounts.update_user(acc.admin, "grace", disabled=True)
        with pytest.raises(InvalidCredentials):
            await acc.auth.authenticate(f"Bearer {key}")
        with pytest.raises(InvalidCredentials):
            await acc.sessions.login("grace", PASSWORD, None)
        await acc.accounts.update_user(acc.admin, "grace", disabled=False, quota_bytes=None)
        assert (await acc.auth.authenticate(f"Bearer {key}")).name == "grace"

        await acc.accounts.update_user(acc.admin, "grace", password="reset by admin")
        await acc.sessions.login("grace", "reset by admin", None)

    run_db(main)


def test_last_admin_self_and_bucket_owners(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        acc = await _accounts(db)
        with pytest.raises(LastAdmin):
            await acc.accounts.update_user(acc.admin, "admin", role=USER)
        with pytest.raises(LastAdmin):
            await acc.accounts.update_user(acc.admin, "admin", disabled=True)
        with pytest.raises(CannotDeleteSelf):
            await acc.accounts.delete_user(acc.admin, "admin")
        second = await acc.user("second-admin", role=ADMIN)
        await acc.accounts.update_user(acc.admin, "second-admin", disabled=True)
        with pytest.raises(LastAdmin):  # a disabled admin does not count
            await acc.accounts.update_user(acc.admin, "admin", role=USER)
        await acc.accounts.update_user(acc.admin, "second-admin", disabled=False)
        await acc.accounts.update_user(acc.admin, "admin", role=USER)  # another admin remains
        await acc.accounts.update_user(Principal(second.id, second.name, ADMIN), "admin", role=ADMIN)

        owner = await acc.user("owner")
        bucket = await db.write(lambda conn: repo.create_bucket(conn, "owned", "mirror:1", owner.id))
        with pytest.raises(UserOwnsBuckets) as refused:
            await acc.accounts.delete_user(acc.admin, "owner")
        assert refused.value.extra["buckets"] == 1
        await db.write(lambda conn: repo.delete_bucket(conn, bucket.id))
        await acc.accounts.delete_user(acc.admin, "owner")
        async with db.read() as conn:
            assert await repo.get_user_by_name(conn, "owner") is None

    run_db(main)
