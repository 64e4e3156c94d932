"""The metadata store against real SQLite and PostgreSQL (``db_url`` runs each test on both)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain import uploads as sm
from cargohold.domain.model import Bucket, PartRecord, ShareRecord
from cargohold.domain.uploads import Upload
from cargohold.errors import (
    BucketAlreadyExists,
    BucketNotEmpty,
    Conflict,
    NodeAlreadyExists,
    NoSuchBucket,
    NoSuchNode,
    UserExists,
)
from cargohold.metadata import migrate
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database, make_engine
from cargohold.metadata.listing import list_sorted
from cargohold.metadata.tables import buckets, jobs, metadata, part_shares, parts

RunDb = Callable[[Callable[[Database], Awaitable[Any]]], Any]


def _part(pid: str, number: int, offset: int, size: int, node_ids: list[int]) -> PartRecord:
    return PartRecord(
        id=pid,
        part_number=number,
        offset=offset,
        size=size,
        layout="ec:2+1",
        block_size=1 << 20,
        etag=f"etag-{pid}",
        shares=tuple(ShareRecord(index=i, node_id=n) for i, n in enumerate(node_ids)),
    )


async def _create_bucket(conn: AsyncConnection, name: str, layout: str) -> Bucket:
    """A bucket owned by the user "owner" (made on first use): buckets always have an owner."""
    owner = await repo.get_user_by_name(conn, "owner")
    if owner is None:
        with contextlib.suppress(UserExists):  # a concurrent write made it first
            await repo.create_user(conn, "owner", "user", None)
        owner = await repo.get_user_by_name(conn, "owner")
    assert owner is not None
    return await repo.create_bucket(conn, name, layout, owner.id)


async def _setup(db: Database, nodes: int = 3) -> tuple[int, list[int]]:
    async def fn(conn: AsyncConnection) -> tuple[int, list[int]]:
        bucket = await _create_bucket(conn, "b", "ec:2+1")
        added = [await repo.add_node(conn, f"http://127.0.0.1:{9000 + i}", "z") for i in range(nodes)]
        return bucket.id, [n.id for n in added]

    return await db.write(fn)


# -- schema ---------------------------------------------------------------------------


def test_migrations_apply_twice_and_match_tables(db_url: str) -> None:
    async def main() -> None:
        for _ in range(2):
            db = await Database.open(db_url)
            async with db.read() as conn:
                current = await conn.run_sync(migrate.current_revision)
                diff = await conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
                )
            await db.close()
            assert current == migrate.head_revision() == "0010"
            assert diff == []

    asyncio.run(main())


def test_migration_0003_keeps_existing_data(db_url: str) -> None:
    """A store from before accounts: keys act as a new admin, buckets are its, objects keep their parts."""

    async def main() -> None:
        db = Database(make_engine(db_url))
        engine = db._write_engine
        await migrate.upgrade(engine, "0002")
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO api_keys (key_id, name, secret_hash, role, created_at) "
                    "VALUES ('k1', 'admin', 'h', 'admin', :now)"
                ),
                {"now": now},
            )
            await conn.execute(
                text("INSERT INTO buckets (name, layout, created_at) VALUES ('old', 'ec:2+1', :now)"),
                {"now": now},
            )
            await conn.execute(
                text(
                    "INSERT INTO nodes (url, zone, enabled, active, healthy, capacity, used, free, shares,"
                    " created_at) VALUES ('http://127.0.0.1:1', 'z', true, true, true, 0, 0, 0, 0, :now)"
                ),
                {"now": now},
            )
            for key in ("a", "b"):
                await conn.execute(
                    text(
                        "INSERT INTO objects (bucket_id, key, size, etag, content_type, created_at) "
                        "VALUES (1, :key, 3, 'e', 'text/plain', :now)"
                    ),
                    {"key": key, "now": now},
                )
            await conn.execute(
                text(
                    'INSERT INTO parts (id, object_id, part_number, "offset", size, layout, block_size,'
                    " etag, created_at) VALUES ('p1', 2, 1, 0, 3, 'ec:2+1', 1048576, 'e', :now)"
                ),
                {"now": now},
            )
            await conn.execute(
                text(
                    "INSERT INTO part_shares (part_id, share_index, node_id, state) VALUES ('p1', 0, 1, 'ok')"
                )
            )
        await migrate.upgrade(engine, "head")
        async with db.read() as conn:
            admin = await repo.get_user_by_name(conn, "admin")
            assert admin is not None and admin.role == "admin" and admin.password_hash is None
            key = await repo.get_key(conn, "k1")
            assert key is not None and key.user_id == admin.id
            bucket = await repo.get_bucket(conn, "old")
            assert bucket is not None and bucket.owner_id == admin.id and bucket.versioning == "off"
            record = await repo.get_object(conn, bucket.id, "b")
            assert record is not None and record.is_latest and not record.delete_marker
            assert record.version_id == f"v{record.id}"
            assert [p.id for p in record.parts] == ["p1"]  # the table rebuild did not detach parts
            assert [s.node_id for s in record.parts[0].shares] == [1]
            again = await repo.create_bucket(conn, "new", "ec:2+1", admin.id)
            assert again.id > bucket.id
        await db.close()

    asyncio.run(main())


def test_datetimes_come_back_aware_utc(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        bucket_id, _ = await _setup(db)
        async with db.read() as conn:
            bucket = await repo.get_bucket(conn, "b")
        assert bucket is not None and bucket.id == bucket_id
        assert bucket.created_at.tzinfo is UTC
        assert abs(datetime.now(UTC) - bucket.created_at) < timedelta(minutes=1)

    run_db(main)


def test_an_upload_status_change_from_an_old_copy_does_not_undo_an_abort(run_db: RunDb) -> None:
    """PENDING becomes LOADING only from PENDING: a writer holding the upload as it was made must
    not reopen one that was aborted since."""

    async def main(db: Database) -> None:
        bucket_id, _ = await _setup(db)
        now = datetime.now(UTC)
        made = Upload(
            "u1", bucket_id, "b", "k", sm.PENDING, sm.IMPORT, "application/octet-stream",
            None, None, None, None, now, now, now + timedelta(hours=1),
        )  # fmt: skip
        await db.write(lambda c: repo.create_upload(c, made))
        await db.write(lambda c: repo.update_upload(c, "u1", status=sm.DELETED))
        loading = {"only_if_status": sm.PENDING, "status": sm.LOADING}
        assert await db.write(lambda c: repo.update_upload(c, "u1", **loading)) is False
        async with db.read() as conn:
            after = await repo.get_upload(conn, "u1")
        assert after is not None and after.status == sm.DELETED
        await db.write(lambda c: repo.create_upload(c, replace(made, id="u2")))
        assert await db.write(lambda c: repo.update_upload(c, "u2", **loading)) is True

    run_db(main)


# -- keys and buckets ------------------------------------------------------------------


def test_api_keys(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        async def create(conn: AsyncConnection) -> None:
            admin = await repo.create_user(conn, "root", "admin", None)
            await repo.create_key(conn, "k1", admin.id, "admin", "hash1")
            past = datetime.now(UTC) - timedelta(days=1)
            await repo.create_key(conn, "k2", admin.id, "old", "hash2", past - timedelta(days=9), past)

        await db.write(create)
        with pytest.raises(Conflict):
            await db.write(lambda c: repo.create_key(c, "k1", 1, "dup", "h"))
        assert await db.write(lambda c: repo.revoke_key(c, "k1"))
        assert not await db.write(lambda c: repo.revoke_key(c, "nope"))
        async with db.read() as conn:
            key = await repo.get_key(conn, "k1")
            assert key is not None and key.revoked_at is not None and key.name == "admin"
            assert await repo.get_key(conn, "nope") is None
            assert await repo.count_keys(conn) == 2
            assert await repo.count_keys(conn, active_only=True) == 0
            assert [k.key_id for k in await repo.list_keys(conn)] == ["k2", "k1"]  # by age

    run_db(main)


def test_bucket_crud_and_errors(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        a = await db.write(lambda c: _create_bucket(c, "alpha", "ec:5+2"))
        await db.write(lambda c: _create_bucket(c, "beta", "mirror:3"))
        with pytest.raises(BucketAlreadyExists):
            await db.write(lambda c: _create_bucket(c, "alpha", "ec:5+2"))
        async with db.read() as conn:
            assert [b.name for b in await repo.list_buckets(conn)] == ["alpha", "beta"]
            got = await repo.get_bucket(conn, "alpha")
            assert got == a
            assert await repo.get_bucket_by_id(conn, a.id) == a
            assert await repo.get_bucket(conn, "gamma") is None

        await db.write(lambda c: repo.put_object(c, a.id, "k", 1, "e", "text/plain", inline_data=b"x"))
        with pytest.raises(BucketNotEmpty):
            await db.write(lambda c: repo.delete_bucket(c, a))
        await db.write(lambda c: repo.delete_object(c, a.id, "k"))
        await db.write(lambda c: repo.delete_bucket(c, a))
        with pytest.raises(NoSuchBucket):
            await db.write(lambda c: repo.delete_bucket(c, "alpha"))
        with pytest.raises(NoSuchBucket):
            await db.write(lambda c: repo.delete_bucket(c, a.id))
        beta = await db.write(lambda c: repo.get_bucket(c, "beta"))
        await db.write(lambda c: repo.delete_bucket(c, beta.id))  # by id
        again = await db.write(lambda c: _create_bucket(c, "alpha", "ec:5+2"))
        assert again.id != a.id  # ids are never reused
        with pytest.raises(NoSuchBucket):
            await db.write(lambda c: repo.put_object(c, a.id, "k", 1, "e", "text/plain"))

    run_db(main)


def test_domain_errors_leave_the_transaction_usable(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        await db.write(lambda c: _create_bucket(c, "one", "ec:5+2"))
        async with db.transaction() as conn:
            with pytest.raises(BucketAlreadyExists):
                await _create_bucket(conn, "one", "ec:5+2")
            await _create_bucket(conn, "two", "ec:5+2")
        async with db.read() as conn:
            assert [b.name for b in await repo.list_buckets(conn)] == ["one", "two"]

    run_db(main)


# -- objects ----------------------------------------------------------------------------


def test_put_get_replace_delete_with_parts_and_shares(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        bucket_id, n = await _setup(db, nodes=4)
        v1_parts = [
            _part("p2", 2, 100, 50, [n[2], n[0], n[1]]),
            _part("p1", 1, 0, 100, [n[0], n[1], n[2]]),
        ]

        async def put_v1(conn: AsyncConnection) -> Any:
            return await repo.put_object(
                conn,
                bucket_id,
                "dir/file",
                150,
                "etag1",
                "application/octet-stream",
                md5="m",
                sha256="s",
                parts=v1_parts,
            )

        record, replaced = await db.write(put_v1)
        assert replaced == []
        assert [p.id for p in record.parts] == ["p1", "p2"]
        async with db.read() as conn:
            got = await repo.get_object(conn, bucket_id, "dir/file")
        assert got == record
        assert got is not None and got.md5 == "m" and got.sha256 == "s"
        assert [s.node_id for s in got.parts[1].shares] == [n[2], n[0], n[1]]
        assert [s.index for s in got.parts[0].shares] == [0, 1, 2]

        async def put_v2(conn: AsyncConnection) -> Any:
            rec, old = await repo.put_object(
                conn,
                bucket_id,
                "dir/file",
                3,
                "etag2",
                "text/plain",
                parts=[_part("p3", 1, 0, 3, [n[1], n[2], n[0]])],
            )
            await repo.enqueue(conn, "gc.parts", {"parts": old})
            return rec, old

        v2, replaced = await db.write(put_v2)
        assert replaced == ["p1", "p2"]
        assert v2.id != record.id
        async with db.read() as conn:
            got = await repo.get_object(conn, bucket_id, "dir/file")
            assert got == v2 and [p.id for p in got.parts] == ["p3"]
            # Replaced parts are detached, not deleted: readers in flight still find shares.
            locations = await repo.part_share_locations(conn, ["p2", "p1", "p3", "unknown"])
            assert locations[3:6] == [("p2", 0, n[2]), ("p2", 1, n[0]), ("p2", 2, n[1])]
            assert [pid for pid, _, _ in locations] == ["p1"] * 3 + ["p2"] * 3 + ["p3"] * 3
            detached = await conn.execute(select(parts.c.id).where(parts.c.object_id.is_(None)))
            assert sorted(detached.scalars()) == ["p1", "p2"]

        assert await db.write(lambda c: repo.mark_share_missing(c, "p3", 1))
        assert not await db.write(lambda c: repo.mark_share_missing(c, "p3", 9))
        # A node never holds two shares of one part; a compare-and-set needs the expected node.
        assert not await db.write(lambda c: repo.set_share(c, "p3", 2, n[1]))
        assert not await db.write(lambda c: repo.set_share(c, "p3", 2, n[3], expected_node=n[1]))
        assert await db.write(lambda c: repo.set_share(c, "p3", 2, n[3], expected_node=n[0]))
        assert not await db.write(lambda c: repo.mark_share_missing(c, "p3", 2, n[0]))
        async with db.read() as conn:
            got = await repo.get_object(conn, bucket_id, "dir/file")
        assert got is not None
        assert [(s.state, s.node_id) for s in got.parts[0].shares] == [
            ("ok", n[1]),
            ("missing", n[2]),
            ("ok", n[3]),
        ]

        # gc: deleting parts removes shares by cascade and never touches live parts.
        assert await db.write(lambda c: repo.delete_parts(c, ["p1", "p2", "p3"])) == 2
        async with db.read() as conn:
            left = await conn.execute(select(part_shares.c.part_id).distinct())
            assert sorted(left.scalars()) == ["p3"]

        freed = await db.write(lambda c: repo.delete_object(c, bucket_id, "dir/file"))
        assert freed == ["p3"]
        assert await db.write(lambda c: repo.delete_object(c, bucket_id, "dir/file")) is None
        async with db.read() as conn:
            assert await repo.get_object(conn, bucket_id, "dir/file") is None

    run_db(main)


def test_inline_object_round_trip(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        bucket_id, _ = await _setup(db)
        data = bytes(range(256)) * 100
        await db.write(
            lambda c: repo.put_object(c, bucket_id, "tiny", len(data), "e", "x/y", inline_data=data)
        )
        async with db.read() as conn:
            got = await repo.get_object(conn, bucket_id, "tiny")
            listed, _, _ = await repo.list_objects(conn, bucket_id)
        assert got is not None and got.inline_data == data and got.parts == ()
        assert listed[0].inline_data is None and listed[0].size == len(data)

    run_db(main)


def test_concurrent_puts_of_one_new_key_all_succeed(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        bucket_id, n = await _setup(db)

        async def put(i: int) -> list[str]:
            async def fn(conn: AsyncConnection) -> list[str]:
                part = _part(f"race{i}", 1, 0, 1, n)
                _, old = await repo.put_object(conn, bucket_id, "hot", 1, f"e{i}", "x/y", parts=[part])
                return old

            return await db.write(fn)

        replaced = await asyncio.gather(*(put(i) for i in range(20)))
        async with db.read() as conn:
            final = await repo.get_object(conn, bucket_id, "hot")
        assert final is not None
        freed = sorted(pid for old in replaced for pid in old)
        assert freed == sorted(f"race{i}" for i in range(20) if f"race{i}" != final.parts[0].id)

    run_db(main)


# -- listing ----------------------------------------------------------------------------

LISTING_KEYS = sorted(
    {
        "a",
        "a/",
        "a/b",
        "a/b/c",
        "a/b/d",
        "a/c",
        "a-b",
        "ab",
        "b/1",
        "b/2",
        "b/3/x",
        "é/1",
        "é",
        "z",
        "\U0010ffff/end",
        "\U0001f600/emoji",
        "Z",
        "0",
        "a/\U0010ffff",
    }
    | {f"many/{i:03d}" for i in range(150)}
)


def test_listing_matches_the_pure_lister(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        bucket_id, _ = await _setup(db)
        other = await db.write(lambda c: _create_bucket(c, "other", "ec:5+2"))

        async def fill(conn: AsyncConnection) -> None:
            for key in LISTING_KEYS:
                await repo.put_object(conn, bucket_id, key, 1, "e", "x/y")
            await repo.put_object(conn, other.id, "a/zzz", 1, "e", "x/y")

        await db.write(fill)
        rng = random.Random(7)
        cases = [
            ("", None),
            ("", "/"),
            ("a", "/"),
            ("a/", "/"),
            ("many/", None),
            ("many/", "/"),
            ("b/", "/"),
            ("", "b"),
            ("é", "/"),
        ]
        async with db.read() as conn:
            for prefix, delimiter in cases:
                for limit in (1, 2, 3, 7, 1000):
                    cursor = None
                    for _ in range(400):
                        objs, prefixes, nxt = await repo.list_objects(
                            conn, bucket_id, prefix, delimiter, limit, cursor
                        )
                        want = list_sorted(LISTING_KEYS, prefix, delimiter, limit, cursor)
                        assert ([o.key for o in objs], prefixes, nxt) == (
                            want.keys,
                            want.prefixes,
                            want.next_cursor,
                        ), (prefix, delimiter, limit, cursor)
                        if nxt is None:
                            break
                        cursor = nxt
                # An arbitrary start-after position.
                cursor = rng.choice(LISTING_KEYS)
                objs, prefixes, nxt = await repo.list_objects(conn, bucket_id, prefix, delimiter, 5, cursor)
                want = list_sorted(LISTING_KEYS, prefix, delimiter, 5, cursor)
                assert ([o.key for o in objs], prefixes, nxt) == (
                    want.keys,
                    want.prefixes,
                    want.next_cursor,
                )

    run_db(main)


def test_listing_sorts_by_code_point(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        bucket_id, _ = await _setup(db)
        keys = ["B", "a", "_", "é", "e", "\U0001f600", "ﬀ", "A"]

        async def fill(conn: AsyncConnection) -> None:
            for key in keys:
                await repo.put_object(conn, bucket_id, key, 0, "e", "x/y")

        await db.write(fill)
        async with db.read() as conn:
            objs, _, _ = await repo.list_objects(conn, bucket_id)
        assert [o.key for o in objs] == sorted(keys)

    run_db(main)


# -- the writer ---------------------------------------------------------------------------


def test_group_commit_isolates_a_failing_write(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        await db.write(lambda c: _create_bucket(c, "taken", "ec:5+2"))

        def make(i: int) -> Callable[[AsyncConnection], Awaitable[int]]:
            async def fn(conn: AsyncConnection) -> int:
                name = "taken" if i == 37 else f"bucket-{i:03d}"
                stmt = insert(buckets).values(
                    name=name, layout="ec:5+2", owner_id=1, created_at=datetime.now(UTC)
                )
                await conn.execute(stmt)  # raw insert: a real unique violation
                return i

            return fn

        results = await asyncio.gather(*(db.write(make(i)) for i in range(100)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert len(failures) == 1 and isinstance(failures[0], IntegrityError)
        assert isinstance(results[37], IntegrityError)
        assert [r for r in results if not isinstance(r, BaseException)] == [i for i in range(100) if i != 37]
        async with db.read() as conn:
            names = [b.name for b in await repo.list_buckets(conn)]
        assert len(names) == 100 and "taken" in names
        if db.is_sqlite:  # the 99 writes shared a handful of transactions
            assert db.writes_committed == 1 + 99
            assert db.batches_committed <= 10

    run_db(main)


def test_transaction_rolls_back_and_nested_writes_are_refused(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        with pytest.raises(RuntimeError, match="boom"):
            async with db.transaction() as conn:
                await _create_bucket(conn, "ghost", "ec:5+2")
                raise RuntimeError("boom")

        async def nested(conn: AsyncConnection) -> None:
            await db.write(lambda c: _create_bucket(c, "inner", "ec:5+2"))

        with pytest.raises(RuntimeError, match="inside a write"):
            await db.write(nested)
        async with db.transaction() as conn:
            with pytest.raises(RuntimeError, match="inside a write"):
                await db.write(lambda c: _create_bucket(c, "inner", "ec:5+2"))
        async with db.read() as conn:
            assert await repo.list_buckets(conn) == []

    run_db(main)


def test_writes_queued_at_close_are_committed(db_url: str) -> None:
    async def main() -> None:
        db = await Database.open(db_url)
        pending = [asyncio.ensure_future(db.write(_bucket_maker(i))) for i in range(10)]
        await asyncio.sleep(0)
        await db.close()
        await asyncio.gather(*pending)
        db = await Database.open(db_url)
        async with db.read() as conn:
            assert len(await repo.list_buckets(conn)) == 10
        await db.close()
        with pytest.raises(RuntimeError, match="closed"):
            await db.write(_bucket_maker(99))

    asyncio.run(main())


def _bucket_maker(i: int) -> Callable[[AsyncConnection], Awaitable[Any]]:
    return lambda conn: _create_bucket(conn, f"q{i}", "ec:5+2")


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    async def main() -> None:
        db = await Database.open(f"sqlite:///{tmp_path / 'new' / 'dir' / 'meta.db'}")
        async with db.read() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        await db.close()
        assert pragmas == {
            "journal_mode": "wal",
            "synchronous": 2,
            "foreign_keys": 1,
            "busy_timeout": 30_000,
        }

    asyncio.run(main())


# -- nodes ----------------------------------------------------------------------------------


def test_nodes_crud(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        n1 = await db.write(lambda c: repo.add_node(c, "http://127.0.0.1:7001", "eu", 1000))
        n2 = await db.write(lambda c: repo.add_node(c, "http://127.0.0.1:7002", "us"))
        assert n1.enabled and n1.active and n1.healthy and n1.free == 1000 and n1.last_seen is None
        with pytest.raises(NodeAlreadyExists):
            await db.write(lambda c: repo.add_node(c, "http://127.0.0.1:7001", "eu"))

        updated = await db.write(lambda c: repo.update_node(c, n2.id, active=False, zone="ap"))
        assert (updated.active, updated.enabled, updated.zone) == (False, True, "ap")
        same = await db.write(lambda c: repo.update_node(c, n2.id))
        assert same == updated
        with pytest.raises(NoSuchNode):
            await db.write(lambda c: repo.update_node(c, 999, enabled=False))

        seen = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

        async def stats(conn: AsyncConnection) -> None:
            await repo.update_node_stats(
                conn,
                n1.id,
                healthy=False,
                capacity=2000,
                used=500,
                free=1500,
                shares=42,
                last_seen=seen,
            )

        await db.write(stats)
        with pytest.raises(NoSuchNode):
            await db.write(
                lambda c: repo.update_node_stats(
                    c, 999, healthy=True, capacity=1, used=0, free=1, shares=0, last_seen=None
                )
            )
        async with db.read() as conn:
            got = await repo.get_node(conn, n1.id)
            assert got is not None
            assert (got.healthy, got.capacity, got.used, got.free, got.shares) == (
                False,
                2000,
                500,
                1500,
                42,
            )
            assert got.last_seen == seen
            assert await repo.get_node(conn, 999) is None
            assert await repo.get_node_by_url(conn, "http://127.0.0.1:7002") == updated
            assert [n.id for n in await repo.list_nodes(conn)] == [n1.id, n2.id]

    run_db(main)


# -- jobs -------------------------------------------------------------------------------------


def test_jobs_enqueue_claim_lease_backoff(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        later = datetime.now(UTC) + timedelta(hours=1)
        first = await db.write(lambda c: repo.enqueue(c, "gc", {"parts": ["a"]}))
        await db.write(lambda c: repo.enqueue(c, "repair", {"part": "b"}))
        await db.write(lambda c: repo.enqueue(c, "gc", {"parts": ["c"]}, run_after=later))
        now = datetime.now(UTC)

        job = await db.write(lambda c: repo.claim(c, ["gc"], 30, now=now))
        assert job is not None and (job.id, job.kind, job.payload, job.attempts) == (
            first,
            "gc",
            {"parts": ["a"]},
            1,
        )
        # Leased: nobody else gets it, and the delayed gc job is not due yet.
        assert await db.write(lambda c: repo.claim(c, ["gc"], 30, now=now)) is None
        other = await db.write(lambda c: repo.claim(c, None, 30, now=now))
        assert other is not None and other.kind == "repair"
        await db.write(lambda c: repo.complete(c, other.id))

        # The lease runs out (worker died): the job comes back, attempt 2.
        expired = now + timedelta(seconds=31)
        again = await db.write(lambda c: repo.claim(c, ["gc"], 30, now=expired))
        assert again is not None and again.id == first and again.attempts == 2
        assert await db.write(lambda c: repo.extend_lease(c, first, 300, now=expired))

        # Failure: back off 10 * 2**(2-1) = 20 seconds.
        await db.write(lambda c: repo.fail(c, first, "node down", 10, now=expired))
        assert await db.write(lambda c: repo.claim(c, ["gc"], 30, now=expired)) is None
        not_yet = expired + timedelta(seconds=19)
        assert await db.write(lambda c: repo.claim(c, ["gc"], 30, now=not_yet)) is None
        due = expired + timedelta(seconds=21)
        third = await db.write(lambda c: repo.claim(c, ["gc"], 30, now=due))
        assert third is not None and third.id == first and third.attempts == 3

        await db.write(lambda c: repo.fail(c, first, "x" * 10_000, 10, max_attempts=3, now=due))
        async with db.read() as conn:
            row = (await conn.execute(select(jobs).where(jobs.c.id == first))).one()
            assert row.state == "failed" and len(row.last_error) == 4000
            assert await repo.job_counts(conn) == {"failed": 1, "done": 1, "queued": 1}
        assert repo.backoff_delay(1, 10) == 10 and repo.backoff_delay(30, 10) == 3600

    run_db(main)


def test_concurrent_claims_never_share_a_job(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        async def fill(conn: AsyncConnection) -> None:
            for i in range(30):
                await repo.enqueue(conn, "work", {"i": i})

        await db.write(fill)

        async def worker() -> list[int]:
            got: list[int] = []
            while True:
                job = await db.write(lambda c: repo.claim(c, ["work"], 60))
                if job is None:
                    return got
                got.append(job.payload["i"])
                await db.write(lambda c, jid=job.id: repo.complete(c, jid))

        results = await asyncio.gather(*(worker() for _ in range(6)))
        claimed = sorted(i for r in results for i in r)
        assert claimed == list(range(30))

    run_db(main)
