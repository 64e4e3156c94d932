"""Version and rename rules of the metadata store, on SQLite and PostgreSQL (``run_db`` runs both)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import ObjectRecord, PartRecord, ShareRecord
from cargohold.domain.versions import DeleteMarkerNotRestorable, KeyExists, VersionCursor
from cargohold.errors import UserExists
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.tables import objects, parts

RunDb = Callable[[Callable[[Database], Awaitable[Any]]], Any]


class Store:
    """A bucket-level driver over the repositories: each call is one write transaction."""

    def __init__(self, db: Database, node_ids: list[int]) -> None:
        self.db = db
        self.nodes = node_ids
        self.serial = 0

    async def bucket(self, name: str, versioning: str = "off", layout: str = "ec:2+1") -> int:
        async def make(conn: AsyncConnection) -> int:
            owner = await repo.get_user_by_name(conn, "owner")
            if owner is None:
                with contextlib.suppress(UserExists):
                    await repo.create_user(conn, "owner", "user", None)
                owner = await repo.get_user_by_name(conn, "owner")
            assert owner is not None
            made = await repo.create_bucket(conn, name, layout, owner.id)
            if versioning != "off":
                await repo.set_versioning(conn, made.id, versioning)
            return made.id

        return await self.db.write(make)

    async def versioning(self, bucket_id: int, state: str) -> None:
        await self.db.write(lambda conn: repo.set_versioning(conn, bucket_id, state))

    async def put(self, bucket_id: int, key: str) -> tuple[ObjectRecord, list[str]]:
        """A one-part version whose part id (and etag) is unique: ``p<n>``."""
        self.serial += 1
        n = self.serial
        part = PartRecord(
            id=f"p{n}",
            part_number=1,
            offset=0,
            size=n,
            layout="ec:2+1",
            block_size=1 << 20,
            etag=f"e{n}",
            shares=tuple(ShareRecord(i, node) for i, node in enumerate(self.nodes)),
        )
        return await self.db.write(
            lambda conn: repo.put_object(conn, bucket_id, key, n, f"e{n}", "x/y", parts=[part])
        )

    async def delete(self, bucket_id: int, key: str) -> repo.Deletion | None:
        return await self.db.write(lambda conn: repo.delete_latest(conn, bucket_id, key))

    async def delete_version(self, bucket_id: int, key: str, version_id: str) -> repo.Deletion | None:
        return await self.db.write(lambda conn: repo.delete_version(conn, bucket_id, key, version_id))

    async def restore(self, bucket_id: int, key: str, version_id: str) -> ObjectRecord | None:
        return await self.db.write(lambda conn: repo.restore_version(conn, bucket_id, key, version_id))

    async def rename(
        self, src: int, key: str, dst: int, to_key: str, overwrite: bool = False
    ) -> repo.Renamed | None:
        return await self.db.write(
            lambda conn: repo.rename_object(conn, src, key, dst, to_key, overwrite=overwrite)
        )

    async def latest(self, bucket_id: int, key: str) -> ObjectRecord | None:
        async with self.db.read() as conn:
            return await repo.get_object(conn, bucket_id, key)

    async def versions(self, bucket_id: int, key: str) -> list[tuple[str, bool, bool]]:
        """``(version_id, is_latest, delete_marker)`` of a key, in listing order."""
        async with self.db.read() as conn:
            found, cursor = await repo.list_versions(conn, bucket_id, key=key)
        assert cursor is None
        return [(v.version_id, v.is_latest, v.delete_marker) for v in found]

    async def detached(self) -> set[str]:
        async with self.db.read() as conn:
            return set((await conn.execute(select(parts.c.id).where(parts.c.object_id.is_(None)))).scalars())


def _with_store(run_db: RunDb, body: Callable[[Store], Awaitable[None]]) -> None:
    async def main(db: Database) -> None:
        node_ids = []
        for i in range(3):
            node = await db.write(lambda c, i=i: repo.add_node(c, f"http://127.0.0.1:{9100 + i}", "z"))
            node_ids.append(node.id)
        await body(Store(db, node_ids))

    run_db(main)


def _ids(*records: ObjectRecord) -> list[str]:
    return [r.version_id for r in records]


# -- put and plain delete by versioning state ----------------------------------------------


def test_versioning_off_replaces_and_deletes_for_good(run_db: RunDb) -> None:
    async def body(s: Store) -> None:
        b = await s.bucket("off")
        v1, freed = await s.put(b, "k")
        assert freed == [] and len(v1.version_id) == 32 and not v1.versioned
        v2, freed = await s.put(b, "k")
        assert freed == [v1.parts[0].id] and v2.version_id != v1.version_id
        assert await s.versions(b, "k") == [(v2.version_id, True, False)]
        gone = await s.delete(b, "k")
        assert gone is not None and gone.freed == [v2.parts[0].id]
        assert (gone.version_id, gone.delete_marker, gone.latest) == (v2.version_id, False, None)
        assert await s.versions(b, "k") == [] and await s.latest(b, "k") is None
        assert await s.delete(b, "k") is None

    _with_store(run_db, body)


def test_enabled_keeps_every_version_and_deletes_with_a_marker(run_db: RunDb) -> None:
    async def body(s: Store) -> None:
        b = await s.bucket("on", "enabled")
        v1, f1 = await s.put(b, "k")
        v2, f2 = await s.put(b, "k")
        v3, f3 = await s.put(b, "k")
        assert f1 == f2 == f3 == [] and v3.versioned
        listed = await s.versions(b, "k")
        assert listed == [(v.version_id, v is v3, False) for v in (v3, v2, v1)]
        marker = await s.delete(b, "k")
        assert marker is not None and marker.freed == [] and marker.delete_marker
        assert marker.latest == marker.version_id and marker.size == v3.size
        latest = await s.latest(b, "k")
        assert latest is not None and latest.delete_marker and latest.version_id == marker.version_id
        assert await s.delete(b, "k") is None  # already deleted
        assert [v[0] for v in await s.versions(b, "k")] == [marker.version_id, *_ids(v3, v2, v1)]
        async with s.db.read() as conn:  # every old version still reads, parts and all
            old = await repo.get_object(conn, b, "k", v1.version_id)
        assert old is not None and old.parts == v1.parts and not old.is_latest
        assert await s.detached() == set()

    _with_store(run_db, body)


def test_suspended_replaces_the_unversioned_version_and_keeps_the_others(run_db: RunDb) -> None:
    async def body(s: Store) -> None:
        b = await s.bucket("susp", "enabled")
        v1, _ = await s.put(b, "k")
        await s.versioning(b, "suspended")
        n1, freed = await s.put(b, "k")
        assert freed == [] and not n1.versioned
        n2, freed = await s.put(b, "k")
        assert freed == [n1.parts[0].id]  # the "null" version is replaced in place
        assert [v[0] for v in await s.versions(b, "k")] == _ids(n2, v1)
        marker = await s.delete(b, "k")
        assert marker is not None and marker.freed == [n2.parts[0].id] and marker.delete_marker
        assert await s.versions(b, "k") == [(marker.version_id, True, True), (v1.version_id, False, False)]
        n3, freed = await s.put(b, "k")  # replaces the unversioned marker
        assert freed == [] and [v[0] for v in await s.versions(b, "k")] == _ids(n3, v1)

    _with_store(run_db, body)


# -- one version by id ---------------------------------------------------------------------


def test_deleting_a_version_frees_it_and_promotes_the_newest_left(run_db: RunDb) -> None:
    async def body(s: Store) -> None:
        b = await s.bucket("vdel", "enabled")
        v1, _ = await s.put(b, "k")
        v2, _ = await s.put(b, "k")
        v3, _ = await s.put(b, "k")
        assert await s.delete_version(b, "k", "0" * 32) is None
        gone = await s.delete_version(b, "k", v2.version_id)  # not the latest: latest unchanged
        assert gone is not None and gone.freed == [v2.parts[0].id] and gone.latest == v3.version_id
        gone = await s.delete_version(b, "k", v3.version_id)
        assert gone is not None and gone.freed == [v3.parts[0].id] and gone.latest == v1.version_id
        assert await s.versions(b, "k") == [(v1.version_id, True, False)]
        latest = await s.latest(b, "k")
        assert latest is not None and latest.version_id == v1.version_id and latest.parts == v1.parts
        # Deleting a delete marker brings the version below it back.
        marker = await s.delete(b, "k")
        assert marker is not None
        undone = await s.delete_version(b, "k", marker.version_id)
        assert undone is not None and undone.delete_marker and undone.freed == []
        assert undone.latest == v1.version_id
        last = await s.delete_version(b, "k", v1.version_id)
        assert last is not None and last.latest is None and await s.versions(b, "k") == []
        assert await s.detached() == {v1.parts[0].id, v2.parts[0].id, v3.parts[0].id}

    _with_store(run_db, body)


def test_restore_makes_an_old_version_the_latest_again(run_db: RunDb) -> None:
    async def body(s: Store) -> None:
        b = await s.bucket("restore", "enabled")
        v1, _ = await s.put(b, "k")
        v2, _ = await s.put(b, "k")
        restored = await s.restore(b, "k", v1.version_id)
        assert restored is not None and restored.version_id == v1.version_id and restored.parts == v1.parts
        assert await s.versions(b, "k") == [(v1.version_id, True, False), (v2.version_id, False, False)]
        same = await s.restore(b, "k", v1.version_id)  # already the latest: nothing changes
        assert same is not None and same.version_id == v1.version_id
        assert await s.restore(b, "k", "f" * 32) is None
        marker = await s.delete(b, "k")
        assert marker is not None
        with pytest.raises(DeleteMarkerNotRestorable):
            await s.restore(b, "k", marker.version_id)
        back = await s.restore(b, "k", v2.version_id)  # restoring undoes a delete, too
        assert back is not None and (await s.versions(b, "k"))[0] == (v2.version_id, True, False)
        assert {v[0] for v in await s.versions(b, "k")} == {v1.version_id, v2.version_id, marker.version_id}
        # The newest version by id takes over when the restored latest is deleted.
        gone = await s.delete_version(b, "k", v2.version_id)
        assert gone is not None and gone.latest == marker.version_id
        assert await s.detached() == {v2.parts[0].id}

    _with_store(run_db, body)


# -- rename --------------------------------------------------------------------------------


def test_rename_within_a_bucket_moves_the_row_not_the_parts(run_db: RunDb) -> None:
    async def body(s: Store) -> None:
        b = await s.bucket("ren")
        a, _ = await s.put(b, "a")
        renamed = await s.rename(b, "a", b, "dir/b")
        assert renamed is not None and renamed.freed == [] and renamed.source_marker is None
        moved = renamed.record
        assert (moved.key, moved.version_id, moved.parts, moved.size) == (
            "dir/b",
            a.version_id,
            a.parts,
            a.size,
        )
        assert await s.latest(b, "a") is None and await s.versions(b, "a") == []
        assert await s.rename(b, "a", b, "c") is None  # the source is gone
        c, _ = await s.put(b, "c")
        with pytest.raises(KeyExists):
            await s.rename(b, "c", b, "dir/b")
        assert (await s.latest(b, "c")) == c  # a refused rename changes nothing
        over = await s.rename(b, "c", b, "dir/b", overwrite=True)
        assert over is not None and over.freed == [a.parts[0].id] and over.record.parts == c.parts
        assert await s.versions(b, "dir/b") == [(c.version_id, True, False)]
        assert await s.detached() == {a.parts[0].id}

    _with_store(run_db, body)


def test_rename_in_a_versioned_bucket_leaves_a_marker_and_keeps_the_overwritten(run_db: RunDb) -> None:
    async def body(s: Store) -> None:
        b = await s.bucket("vren", "enabled")
        a1, _ = await s.put(b, "a")
        a2, _ = await s.put(b, "a")
        t1, _ = await s.put(b, "t")
        renamed = await s.rename(b, "a", b, "t", overwrite=True)
        assert renamed is not None and renamed.freed == [] and renamed.source_marker is not None
        assert await s.versions(b, "a") == [
            (renamed.source_marker, True, True),
            (a1.version_id, False, False),
        ]
        assert await s.versions(b, "t") == [(a2.version_id, True, False), (t1.version_id, False, False)]
        # A deleted destination (latest is a marker) takes a rename without overwrite.
        await s.delete(b, "t")
        b1, _ = await s.put(b, "b")
        again = await s.rename(b, "b", b, "t")
        assert again is not None and again.record.version_id == b1.version_id
        assert again.source_marker is None  # b had no other version: simply gone
        assert await s.versions(b, "b") == []
        assert await s.rename(b, "a", b, "z") is None  # a's latest is a marker
        assert await s.detached() == set()

    _with_store(run_db, body)


def test_rename_across_buckets_follows_each_buckets_rules(run_db: RunDb) -> None:
    async def body(s: Store) -> None:
        plain = await s.bucket("plain")
        kept = await s.bucket("kept", "enabled")
        x, _ = await s.put(plain, "x")
        old, _ = await s.put(kept, "x")
        with pytest.raises(KeyExists):
            await s.rename(plain, "x", kept, "x")
        renamed = await s.rename(plain, "x", kept, "x", overwrite=True)
        assert renamed is not None and renamed.freed == [] and renamed.record.bucket_id == kept
        assert renamed.record.versioned  # it now lives by the destination's rules
        assert await s.versions(kept, "x") == [(x.version_id, True, False), (old.version_id, False, False)]
        assert await s.versions(plain, "x") == []
        # Back into the unversioned bucket over an existing key: that one is freed.
        y, _ = await s.put(plain, "y")
        back = await s.rename(kept, "x", plain, "y", overwrite=True)
        assert back is not None and back.freed == [y.parts[0].id] and not back.record.versioned
        assert back.source_marker is not None  # old is still a version in "kept"
        latest = await s.latest(kept, "x")
        assert latest is not None and latest.delete_marker
        _, freed = await s.put(plain, "y")  # the moved version is plain's unversioned one now
        assert freed == [x.parts[0].id]
        assert await s.detached() == {y.parts[0].id, x.parts[0].id}

    _with_store(run_db, body)


def test_rename_in_a_suspended_bucket_keeps_its_one_unversioned_version(run_db: RunDb) -> None:
    async def body(s: Store) -> None:
        b = await s.bucket("srn", "enabled")
        await s.versioning(b, "suspended")
        n, _ = await s.put(b, "k")  # unversioned
        await s.versioning(b, "enabled")
        v, _ = await s.put(b, "k")
        await s.versioning(b, "suspended")
        renamed = await s.rename(b, "k", b, "m")
        assert renamed is not None and renamed.source_marker is not None
        async with s.db.read() as conn:
            rows = (
                await conn.execute(
                    select(objects.c.version_id, objects.c.versioned).where(
                        objects.c.bucket_id == b, objects.c.key == "k"
                    )
                )
            ).all()
        unversioned = [r.version_id for r in rows if not r.versioned]
        assert unversioned == [n.version_id]  # the marker did not become a second one
        again, freed = await s.put(b, "k")  # replaces the unversioned version, keeps the marker
        assert freed == [n.parts[0].id]
        assert [x[0] for x in await s.versions(b, "k")] == [again.version_id, renamed.source_marker]
        assert await s.versions(b, "m") == [(v.version_id, True, False)]

    _with_store(run_db, body)


# -- listing -------------------------------------------------------------------------------


def test_version_listing_pages_through_keys_and_versions(run_db: RunDb) -> None:
    async def body(s: Store) -> None:
        b = await s.bucket("list", "enabled")
        made: dict[str, list[str]] = {}
        for key in ("a", "b/1", "b/2", "c"):
            for _ in range(3):
                record, _ = await s.put(b, key)
                made.setdefault(key, []).insert(0, record.version_id)
        marker = await s.delete(b, "b/2")
        assert marker is not None
        made["b/2"].insert(0, marker.version_id)
        await s.restore(b, "c", made["c"][2])  # oldest of c is the latest now
        c = made["c"]
        made["c"] = [c[2], c[0], c[1]]
        expected = [(k, v) for k in sorted(made) for v in made[k]]

        async def page(limit: int, prefix: str = "") -> list[tuple[str, str]]:
            seen: list[tuple[str, str]] = []
            cursor: VersionCursor | None = None
            while True:
                async with s.db.read() as conn:
                    found, cursor = await repo.list_versions(
                        conn, b, prefix=prefix, limit=limit, cursor=cursor
                    )
                seen += [(v.key, v.version_id) for v in found]
                assert len(found) <= limit
                if cursor is None:
                    return seen
                cursor = VersionCursor.decode(cursor.encode())

        for limit in (1, 2, 3, 4, 1000):
            assert await page(limit) == expected
        assert await page(2, prefix="b/") == [e for e in expected if e[0].startswith("b/")]
        async with s.db.read() as conn:
            first, cursor = await repo.list_versions(conn, b, limit=4)
            assert cursor is not None and [v.key for v in first] == ["a", "a", "a", "b/1"]
            # The version a cursor names may be deleted before the next page: nothing is skipped.
            await s.delete_version(b, "b/1", first[-1].version_id)
            rest, _ = await repo.list_versions(conn, b, cursor=cursor)
        assert [(v.key, v.version_id) for v in rest] == expected[4:]

    _with_store(run_db, body)


# -- concurrency ---------------------------------------------------------------------------


def test_concurrent_renames_and_puts_keep_one_latest_per_key(run_db: RunDb) -> None:
    """Renames both ways between two keys race puts of both: no deadlock, no lost invariant."""

    async def body(s: Store) -> None:
        b = await s.bucket("race", "enabled")
        await s.put(b, "x")
        await s.put(b, "y")

        async def rename(src: str, dst: str) -> None:
            with contextlib.suppress(KeyExists):
                await s.rename(b, src, b, dst, overwrite=True)

        work = []
        for _ in range(8):
            work += [rename("x", "y"), rename("y", "x"), s.put(b, "x"), s.put(b, "y")]
        await asyncio.wait_for(asyncio.gather(*work), timeout=60)
        async with s.db.read() as conn:
            latest = (
                await conn.execute(
                    select(objects.c.key, func.count())
                    .where(objects.c.bucket_id == b, objects.c.is_latest)
                    .group_by(objects.c.key)
                )
            ).all()
            total = (await conn.execute(select(func.count()).where(objects.c.bucket_id == b))).scalar_one()
        assert sorted(latest) == [("x", 1), ("y", 1)]
        assert total >= 18  # 2 + 16 puts, all kept (versioned), plus markers left by renames
        assert await s.detached() == set()

    _with_store(run_db, body)
