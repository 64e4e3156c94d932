"""Grants, bucket visibility, the permission check and quota accounting on SQLite and PostgreSQL.

The repository functions are tested first, then the services built on them
(access, namespaces, quota) against the same real databases: no servers, no
fakes, every rule that decides 404 versus 403 versus allowed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import Bucket, PartRecord, Principal, ShareRecord, User
from cargohold.domain.uploads import LOADING, Upload
from cargohold.errors import (
    AccessDenied,
    InvalidArgument,
    NoSuchBucket,
    NoSuchGrant,
    NoSuchUser,
    QuotaExceeded,
)
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.access import AccessService, Level
from cargohold.service.buckets import BucketService
from cargohold.service.namespaces import NamespaceService, OwnerGrant
from cargohold.service.quota import QuotaService

RunDb = Callable[[Callable[[Database], Awaitable[Any]]], Any]


async def _users(db: Database, *names: str, quota: int | None = None) -> dict[str, User]:
    async def make(conn: AsyncConnection) -> dict[str, User]:
        return {n: await repo.create_user(conn, n, "user", None, quota_bytes=quota) for n in names}

    return await db.write(make)


async def _bucket(db: Database, name: str, owner: User) -> Bucket:
    return await db.write(lambda conn: repo.create_bucket(conn, name, "ec:2+1", owner.id))


def _principal(user: User) -> Principal:
    return Principal(user.id, user.name, user.role)


# -- repository -------------------------------------------------------------------------


def test_grant_set_replace_list_delete(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        u = await _users(db, "olga", "bob", "carl")
        bucket = await _bucket(db, "shared", u["olga"])

        async def grant_two(conn: AsyncConnection) -> Any:
            first = await repo.set_grant(conn, bucket.id, u["carl"].id, "read", u["olga"].id)
            await repo.set_grant(conn, bucket.id, u["bob"].id, "write", None)
            return first

        first = await db.write(grant_two)
        assert (first.user_name, first.level, first.granted_by_name) == ("carl", "read", "olga")
        async with db.read() as conn:
            listed = await repo.list_grants(conn, bucket.id)
            assert [(g.user_name, g.level, g.granted_by_name) for g in listed] == [
                ("bob", "write", None),
                ("carl", "read", "olga"),
            ]
            assert await repo.get_level(conn, bucket.id, u["carl"].id) == "read"
            assert await repo.get_level(conn, bucket.id, u["olga"].id) is None  # the owner has no row
            assert await repo.granted_bucket_ids(conn, u["bob"].id) == {bucket.id: "write"}

        # A second grant replaces the first (one row per bucket and user).
        again = await db.write(
            lambda conn: repo.set_grant(conn, bucket.id, u["carl"].id, "admin", u["bob"].id)
        )
        assert (again.level, again.granted_by_name) == ("admin", "bob")
        async with db.read() as conn:
            assert [g.level for g in await repo.list_grants(conn, bucket.id, u["carl"].id)] == ["admin"]

        assert await db.write(lambda conn: repo.delete_grant(conn, bucket.id, u["carl"].id)) is True
        assert await db.write(lambda conn: repo.delete_grant(conn, bucket.id, u["carl"].id)) is False
        with pytest.raises(ValueError, match="not one of"):
            await db.write(lambda conn: repo.set_grant(conn, bucket.id, u["carl"].id, "owner", None))

    run_db(main)


def test_grants_go_with_their_bucket_or_user(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        u = await _users(db, "olga", "bob", "gone")
        keep = await _bucket(db, "keep", u["olga"])
        drop = await _bucket(db, "drop", u["olga"])

        async def grants(conn: AsyncConnection) -> None:
            for bucket in (keep, drop):
                await repo.set_grant(conn, bucket.id, u["bob"].id, "read", u["gone"].id)
            await repo.set_grant(conn, keep.id, u["gone"].id, "write", u["olga"].id)

        await db.write(grants)
        await db.write(lambda conn: repo.delete_bucket(conn, drop.id))
        await db.write(lambda conn: repo.delete_user(conn, u["gone"].id))
        async with db.read() as conn:
            assert await repo.granted_bucket_ids(conn, u["bob"].id) == {keep.id: "read"}
            left = await repo.list_grants(conn, keep.id)
        # The granter's account is gone; the grant it made stays, without a name.
        assert [(g.user_name, g.granted_by_name) for g in left] == [("bob", None)]

    run_db(main)


def test_visible_buckets_and_owner_names(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        u = await _users(db, "olga", "bob", "eve")
        mine = await _bucket(db, "b-mine", u["bob"])
        granted = await _bucket(db, "a-granted", u["olga"])
        await _bucket(db, "c-hidden", u["olga"])
        await db.write(lambda conn: repo.set_grant(conn, granted.id, u["bob"].id, "read", None))
        async with db.read() as conn:
            assert [b.name for b in await repo.list_buckets(conn, visible_to=u["bob"].id)] == [
                "a-granted",
                "b-mine",
            ]
            assert await repo.list_buckets(conn, visible_to=u["eve"].id) == []
            assert len(await repo.list_buckets(conn)) == 3
            assert await repo.owner_names(conn, [mine.id, granted.id, mine.id]) == {
                mine.id: "bob",
                granted.id: "olga",
            }
            assert await repo.owner_names(conn, []) == {}

    run_db(main)


def _part(pid: str, size: int, node_id: int) -> PartRecord:
    shares = (ShareRecord(0, node_id), ShareRecord(1, node_id))
    return PartRecord(pid, 1, 0, size, "ec:2+1", 1 << 20, "e", shares)


def test_bytes_owned_counts_versions_and_open_upload_parts(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        u = await _users(db, "olga", "bob")
        bucket = await _bucket(db, "paid", u["olga"])
        other = await _bucket(db, "other", u["bob"])

        async def owned() -> tuple[int, int]:
            async with db.read() as conn:
                return await repo.bytes_owned(conn, u["olga"].id), await repo.bytes_owned(conn, u["bob"].id)

        async def put(bucket_id: int, key: str, size: int) -> None:
            await db.write(
                lambda conn: repo.put_object(conn, bucket_id, key, size, "e", "x/y", inline_data=b"x" * size)
            )

        await put(bucket.id, "a", 100)
        await put(other.id, "a", 7)
        assert await owned() == (100, 7)
        await put(bucket.id, "a", 30)  # versioning off: replaces
        assert await owned() == (30, 7)
        await db.write(lambda conn: repo.set_versioning(conn, bucket.id, "enabled"))
        await put(bucket.id, "a", 50)  # versioning on: both versions count
        assert await owned() == (80, 7)

        now = datetime.now(UTC)
        upload = Upload(
            uuid.uuid4().hex, bucket.id, bucket.name, "big", LOADING, "session", "x/y",
            None, None, None, None, now, now, now + timedelta(hours=1),
        )  # fmt: skip

        async def open_upload(conn: AsyncConnection) -> None:
            node = await repo.add_node(conn, "http://127.0.0.1:9", "z")
            await repo.create_upload(conn, upload, "olga")
            await repo.add_part(conn, upload.id, _part(uuid.uuid4().hex, 1000, node.id))

        await db.write(open_upload)
        assert await owned() == (1080, 7)  # parts of an open upload are paid for
        await db.write(lambda conn: repo.release_parts(conn, upload.id))
        assert await owned() == (80, 7)

    run_db(main)


# -- services -----------------------------------------------------------------------------


class _ThreeNodes:
    """The node registry as bucket creation sees it: three members, enough for ec:2+1."""

    def members(self) -> int:
        return 3


def _services(db: Database) -> tuple[AccessService, NamespaceService]:
    buckets = BucketService(db, "ec:2+1", cache_seconds=60)
    access = AccessService(db, buckets, cache_seconds=60)
    return access, NamespaceService(db, buckets, access, _ThreeNodes())  # type: ignore[arg-type]


def test_levels_decide_404_403_or_allowed(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        access, spaces = _services(db)
        u = await _users(db, "olga", "rita", "will", "adam", "eve")
        boss = await db.write(lambda conn: repo.create_user(conn, "boss", "admin", None))
        olga, rita, will, adam, eve = (_principal(u[n]) for n in ("olga", "rita", "will", "adam", "eve"))
        await spaces.create(olga, "papers")
        for name, level in (("rita", "read"), ("will", "write"), ("adam", "admin")):
            await spaces.grant(olga, "papers", name, level)

        for who, held in ((olga, Level.ADMIN), (rita, Level.READ), (will, Level.WRITE), (adam, Level.ADMIN)):
            view = await spaces.describe(who, "papers")
            assert (view.owner, view.level) == ("olga", held)
            for need in Level:
                if need <= held:
                    assert (await access.bucket(who, "papers", need)).name == "papers"
                else:
                    with pytest.raises(AccessDenied):
                        await access.bucket(who, "papers", need)
        assert (await spaces.describe(_principal(boss), "papers")).level is Level.ADMIN
        # No grant: the same 404 as for a bucket that does not exist, whatever the level asked.
        for need in Level:
            for name in ("papers", "nothing-here"):
                with pytest.raises(NoSuchBucket):
                    await access.bucket(eve, name, need)
        assert [b.name for b in await spaces.visible(eve)] == []
        assert [b.name for b in await spaces.visible(rita)] == ["papers"]

        # Only admin may see or change grants; a write grant cannot delete the bucket either.
        for who in (rita, will):
            with pytest.raises(AccessDenied):
                await spaces.grants(who, "papers")
            with pytest.raises(AccessDenied):
                await spaces.grant(who, "papers", "eve", "read")
            with pytest.raises(AccessDenied):
                await spaces.delete(who, "papers")
        listed = await spaces.grants(adam, "papers")  # an admin grant manages grants too
        assert listed.owner == "olga"
        assert [(g.user_name, g.level, g.granted_by_name) for g in listed.grants] == [
            ("adam", "admin", "olga"),
            ("rita", "read", "olga"),
            ("will", "write", "olga"),
        ]

    run_db(main)


def test_grant_changes_apply_at_once_and_arguments_are_checked_after_access(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        access, spaces = _services(db)  # a long cache: changes must drop it
        u = await _users(db, "olga", "rita", "eve")
        olga, rita, eve = (_principal(u[n]) for n in ("olga", "rita", "eve"))
        await spaces.create(olga, "papers")
        with pytest.raises(NoSuchBucket):
            await access.bucket(rita, "papers", Level.READ)  # cached as "no level"
        await spaces.grant(olga, "papers", "rita", "read")
        assert (await access.bucket(rita, "papers", Level.READ)).name == "papers"
        await spaces.grant(olga, "papers", "rita", "write")
        assert (await access.bucket(rita, "papers", Level.WRITE)).name == "papers"
        revoked = await spaces.revoke(olga, "papers", "rita")
        assert revoked.level == "write"
        with pytest.raises(NoSuchBucket):
            await access.bucket(rita, "papers", Level.READ)
        with pytest.raises(NoSuchGrant):
            await spaces.revoke(olga, "papers", "rita")
        with pytest.raises(NoSuchGrant):
            await spaces.revoke(olga, "papers", "nobody")

        # Bad arguments: a stranger learns nothing (404 first), the owner gets the reason.
        for user, level in (("rita", "owner"), (None, "read"), ("nobody", "read"), ("olga", "read")):
            with pytest.raises(NoSuchBucket):
                await spaces.grant(eve, "papers", user, level)
        with pytest.raises(InvalidArgument, match="level"):
            await spaces.grant(olga, "papers", "rita", "owner")
        with pytest.raises(InvalidArgument, match="user"):
            await spaces.grant(olga, "papers", None, "read")
        with pytest.raises(NoSuchUser):
            await spaces.grant(olga, "papers", "nobody", "read")
        with pytest.raises(OwnerGrant, match="owns"):  # 409: the request is fine, the state refuses it
            await spaces.grant(olga, "papers", "olga", "read")

        # Deleting the bucket drops its cached grants: a new bucket of that name starts clean.
        await spaces.grant(olga, "papers", "rita", "read")
        await access.bucket(rita, "papers", Level.READ)
        await spaces.delete(olga, "papers")
        await spaces.create(eve, "papers")
        with pytest.raises(NoSuchBucket):
            await access.bucket(rita, "papers", Level.READ)

    run_db(main)


def test_quota_admits_by_the_owners_room(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        quota = QuotaService(db)
        limited = await _users(db, "olga", quota=100)
        free = await _users(db, "fred")
        bucket = await _bucket(db, "paid", limited["olga"])
        unlimited = await _bucket(db, "free", free["fred"])
        assert await quota.admit(unlimited, 10**15) is None
        assert await quota.admit(bucket, 100) == 100
        assert await quota.admit(bucket, None) == 100
        await db.write(
            lambda conn: repo.put_object(conn, bucket.id, "k", 60, "e", "x/y", inline_data=b"x" * 60)
        )
        assert await quota.room(bucket) == 40
        with pytest.raises(QuotaExceeded) as refused:
            await quota.admit(bucket, 41)
        assert refused.value.extra == {"bucket": "paid", "room": 40}
        await db.write(
            lambda conn: repo.put_object(conn, bucket.id, "j", 40, "e", "x/y", inline_data=b"x" * 40)
        )
        assert await quota.admit(bucket, 0) == 0
        with pytest.raises(QuotaExceeded):
            await quota.admit(bucket, None)  # unknown size, nothing left
        await db.write(lambda conn: repo.delete_object(conn, bucket.id, "k"))
        assert await quota.admit(bucket, None) == 60

    run_db(main)
