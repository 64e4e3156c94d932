"""Listings in SQL against the definition, and their plans, on SQLite and PostgreSQL.

The pure walk is checked in ``tests/unit/test_listing.py``; here the same
keys go through the database: hidden versions and delete markers beside
them, and characters where the engines' string functions and byte-wise
comparisons could disagree with Python's code points. Every page must equal
the brute-force reference exactly, and every statement a listing runs must
be an index range seek (``EXPLAIN``), never a scan of the bucket.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.versions import VersionCursor
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.listing import MAX_CHAR, prefix_successor
from cargohold.metadata.tables import objects
from tests.unit.test_listing import TRICKY, WALKABLE, reference

#: What a key can be in a versioning bucket: listed, listed over an older version, or deleted
#: (a delete marker on top of its version), which hides it.
STATES = ("live", "older", "deleted")


async def _bucket(db: Database, name: str) -> int:
    async def make(conn: AsyncConnection) -> int:
        owner = await repo.get_user_by_name(conn, "owner")
        if owner is None:
            owner = await repo.create_user(conn, "owner", "user", None)
        made = await repo.create_bucket(conn, name, "ec:2+1", owner.id)
        await repo.set_versioning(conn, made.id, "enabled")
        return made.id

    bucket_id: int = await db.write(make)
    return bucket_id


async def _fill(db: Database, bucket_id: int, keys: dict[str, str]) -> None:
    async def fill(conn: AsyncConnection) -> None:
        for key, state in keys.items():
            await repo.put_object(conn, bucket_id, key, 1, "old", "x/y")
            if state == "older":
                await repo.put_object(conn, bucket_id, key, 2, "new", "x/y")
            elif state == "deleted":
                assert await repo.delete_latest(conn, bucket_id, key) is not None

    await db.write(fill)


@pytest.fixture
def loop_db(db_url: str) -> Iterator[tuple[asyncio.AbstractEventLoop, Database]]:
    """One event loop and one open store for a whole test (Hypothesis calls back into it)."""
    loop = asyncio.new_event_loop()
    db = loop.run_until_complete(Database.open(db_url))
    try:
        yield loop, db
    finally:
        loop.run_until_complete(db.close())
        loop.close()


def test_pages_match_the_reference_through_the_database(
    loop_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    loop, db = loop_db
    names = (f"b{n}" for n in itertools.count())

    @settings(max_examples=50, deadline=None)
    @given(
        keys=st.dictionaries(
            st.text(st.sampled_from(TRICKY), min_size=1, max_size=5), st.sampled_from(STATES), max_size=25
        ),
        prefix=st.text(st.sampled_from(TRICKY), max_size=2),
        delimiter=st.sampled_from([None, MAX_CHAR, *WALKABLE]),
        limit=st.integers(1, 6),
        data=st.data(),
    )
    def check(
        keys: dict[str, str], prefix: str, delimiter: str | None, limit: int, data: st.DataObject
    ) -> None:
        # The key right after a group is where a seek past it can go wrong by one: have some.
        after_groups = sorted(
            {prefix_successor(key[:cut]) or "" for key in keys for cut in range(1, len(key) + 1)} - {""}
        )
        if after_groups:
            for key in data.draw(st.lists(st.sampled_from(after_groups), max_size=8), label="after groups"):
                keys.setdefault(key, "live")
        live = [key for key, state in keys.items() if state != "deleted"]
        near = sorted({key[:cut] for key in keys for cut in range(1, len(key) + 1)})
        cursor = data.draw(st.one_of(st.none(), *([st.sampled_from(near)] if near else [])), label="cursor")

        async def run() -> None:
            bucket_id = await _bucket(db, next(names))
            await _fill(db, bucket_id, keys)
            page_cursor = cursor
            for _ in range(len(keys) + 2):  # page through to the end, each page exact
                async with db.read() as conn:
                    found, prefixes, nxt = await repo.list_objects(
                        conn, bucket_id, prefix, delimiter, limit, page_cursor
                    )
                want = reference(live, prefix, delimiter, limit, page_cursor)
                assert ([o.key for o in found], prefixes, nxt) == want, page_cursor
                assert all(o.is_latest and not o.delete_marker and o.etag for o in found)
                if nxt is None:
                    return
                page_cursor = nxt
            raise AssertionError("the listing did not end")

        loop.run_until_complete(run())

    check()


def test_a_delimiter_page_is_one_statement_whatever_the_groups_hold(
    loop_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    loop, db = loop_db

    async def run() -> None:
        bucket_id = await _bucket(db, "groups")
        await _bulk(db, bucket_id, [f"g{g:02d}/{i:03d}" for g in range(30) for i in range(100)] + ["top"])
        with Statements(db) as seen:
            async with db.read() as conn:
                found, prefixes, nxt = await repo.list_objects(conn, bucket_id, "", "/", 20)
        assert [o.key for o in found] == []
        assert prefixes == [f"g{g:02d}/" for g in range(20)]
        assert nxt == "g19/"
        assert len(seen) == 1
        async with db.read() as conn:
            found, prefixes, nxt = await repo.list_objects(conn, bucket_id, "", "/", 20, nxt)
        assert ([o.key for o in found], prefixes, nxt) == (
            ["top"],
            [f"g{g:02d}/" for g in range(20, 30)],
            None,
        )

    loop.run_until_complete(run())


# -- plans --------------------------------------------------------------------------------


async def _bulk(db: Database, bucket_id: int, keys: list[str]) -> None:
    """Live one-version rows, written in one statement (enough of them to make a planner choose)."""
    now = datetime.now(UTC)
    rows = [
        {
            "bucket_id": bucket_id, "key": key, "size": 1, "etag": "e", "content_type": "x/y",
            "created_at": now, "version_id": f"{bucket_id:08x}{n:024x}", "is_latest": True,
            "delete_marker": False, "versioned": True,
        }
        for n, key in enumerate(keys)
    ]  # fmt: skip

    async def write(conn: AsyncConnection) -> None:
        await conn.execute(insert(objects), rows)

    await db.write(write)


class Statements:
    """The statements run against ``objects`` while the block runs, with their parameters."""

    def __init__(self, db: Database) -> None:
        self.engine = db.engine.sync_engine
        self.seen: list[tuple[str, Any]] = []

    def _record(self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "objects" in statement and not statement.lstrip().upper().startswith("EXPLAIN"):
            self.seen.append((statement, parameters))

    def __enter__(self) -> list[tuple[str, Any]]:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


async def _sqlite_plan(conn: AsyncConnection, statement: str, parameters: Any) -> list[str]:
    rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)).all()
    return [row[3] for row in rows]


async def _postgres_plan(conn: AsyncConnection, statement: str, parameters: Any) -> list[dict[str, Any]]:
    """Every node of the plan that reads ``objects`` (under any alias).

    A table this small is read faster by a bitmap scan and a sort, or whole,
    and the planner knows it; with both off, what is left is what the
    statement allows: a Seq Scan still appears where no index bound applies.
    """
    await conn.execute(text("SET LOCAL enable_seqscan = off"))
    await conn.execute(text("SET LOCAL enable_bitmapscan = off"))
    raw = (await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)).scalar_one()
    plan = json.loads(raw) if isinstance(raw, str) else raw
    nodes: list[dict[str, Any]] = []
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        stack.extend(node.get("Plans", []))
        if node.get("Relation Name") == "objects":
            nodes.append(node)
    return nodes


async def _assert_seeks(db: Database, seen: list[tuple[str, Any]], index: str) -> None:
    """Each statement reads ``objects`` only by seeks on ``index`` bounded on the key."""
    assert seen
    async with db.read() as conn:
        for statement, parameters in seen:
            if db.is_sqlite:
                plan = await _sqlite_plan(conn, statement, parameters)
                reads = [line for line in plan if line.startswith(("SCAN", "SEARCH"))]
                table_reads = [line for line in reads if not line.startswith(("SCAN walk", "SCAN CONSTANT"))]
                assert table_reads, plan
                for line in table_reads:
                    assert line.startswith("SEARCH") and f"INDEX {index} (bucket_id=? AND key" in line, plan
            else:
                nodes = await _postgres_plan(conn, statement, parameters)
                assert nodes
                for node in nodes:
                    shown = {k: v for k, v in node.items() if k != "Plans"}
                    assert node["Node Type"] in ("Index Scan", "Index Only Scan"), shown
                    assert node["Index Name"] == index, shown
                    assert "key" in node["Index Cond"] and "bucket_id" in node["Index Cond"], shown


@pytest.mark.parametrize(
    ("prefix", "delimiter", "cursor"),
    [
        ("", None, None),
        ("k1", None, "k12/00005"),
        ("", "/", None),
        ("k1", "/", "k12/"),  # a cursor on a common prefix: the seek starts past the group
        ("k", "/", "k12/00005"),
        ("", "2/", None),
        ("", MAX_CHAR, None),  # read in batches, a seek after each group
    ],
)
def test_each_listing_statement_is_an_index_seek(
    loop_db: tuple[asyncio.AbstractEventLoop, Database],
    prefix: str,
    delimiter: str | None,
    cursor: str | None,
) -> None:
    loop, db = loop_db

    async def run() -> None:
        other = await _bucket(db, "other")
        bucket_id = await _bucket(db, "plans")
        await _bulk(db, other, [f"k{g:02d}/{i:05d}" for g in range(10) for i in range(300)])
        await _bulk(db, bucket_id, [f"k{g:02d}/{i:05d}" for g in range(20) for i in range(300)])
        if not db.is_sqlite:  # as autovacuum would have; SQLite's choice must not need statistics
            async with db.engine.connect() as conn:
                await conn.execute(text("ANALYZE objects"))
        with Statements(db) as seen:
            async with db.read() as conn:
                found, prefixes, _ = await repo.list_objects(conn, bucket_id, prefix, delimiter, 50, cursor)
        assert found or prefixes
        await _assert_seeks(db, seen, "ix_objects_live")

    loop.run_until_complete(run())


def test_a_version_page_seeks_to_its_cursor(loop_db: tuple[asyncio.AbstractEventLoop, Database]) -> None:
    loop, db = loop_db

    async def run() -> None:
        bucket_id = await _bucket(db, "versions")
        await _bulk(db, bucket_id, [f"k{g:02d}/{i:05d}" for g in range(20) for i in range(300)])
        if not db.is_sqlite:
            async with db.engine.connect() as conn:
                await conn.execute(text("ANALYZE objects"))
        async with db.read() as conn:
            first, cursor = await repo.list_versions(conn, bucket_id, prefix="k1", limit=50)
        assert cursor is not None and first[-1].key == "k10/00049"
        for after in (cursor, VersionCursor("k15/00100", 0, None)):
            with Statements(db) as seen:
                async with db.read() as conn:
                    page, _ = await repo.list_versions(conn, bucket_id, prefix="k1", limit=50, cursor=after)
            assert page[0].key > after.key
            await _assert_seeks(db, seen, "ix_objects_bucket_id_key_id")

    loop.run_until_complete(run())
