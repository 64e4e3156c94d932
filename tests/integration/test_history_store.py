"""The action history store and service on real SQLite and PostgreSQL (``run_db`` runs each on both)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.history import HistoryEvent, HistoryQuery, decode_cursor
from cargohold.domain.model import Principal
from cargohold.errors import InvalidArgument
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.repositories.history import append_history, search_history
from cargohold.metadata.tables import history
from cargohold.service.history import HistoryService

RunDb = Callable[[Callable[[Database], Awaitable[Any]]], Any]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADMIN = Principal(1, "admin", "admin")


def _event(action: str, minute: int = 0, **fields: Any) -> HistoryEvent:
    fields = {"status": 200, "result": "ok", **fields}
    return HistoryEvent(action=action, at=T0 + timedelta(minutes=minute), **fields)


async def _people(db: Database) -> dict[str, int]:
    """Users admin, alice, bob; buckets alice-b (alice's) and bob-b (bob's). Returns the ids."""

    async def fn(conn: AsyncConnection) -> dict[str, int]:
        ids = {}
        for name, role in (("admin", "admin"), ("alice", "user"), ("bob", "user")):
            ids[name] = (await repo.create_user(conn, name, role, None)).id
        ids["alice-b"] = (await repo.create_bucket(conn, "alice-b", "ec:2+1", ids["alice"])).id
        ids["bob-b"] = (await repo.create_bucket(conn, "bob-b", "ec:2+1", ids["bob"])).id
        return ids

    return await db.write(fn)


async def _search(db: Database, visible_to: int | None = None, **filters: Any) -> list[HistoryEvent]:
    async with db.read() as conn:
        return await search_history(conn, HistoryQuery(**filters), visible_to=visible_to)


@contextmanager
def _count_history_inserts(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO HISTORY"):
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before)


def test_names_become_ids_and_every_filter_matches(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        ids = await _people(db)
        events = [
            _event("bucket.create", 0, user_name="alice", bucket="alice-b"),
            _event("object.create", 1, user_name="alice", bucket="alice-b", key="docs/a.txt", size=5),
            _event("object.read", 2, user_name="bob", bucket="alice-b", key="docs/a.txt"),
            _event("object.read", 3, user_name="bob", bucket="bob-b", key="Docs/b.txt"),
            _event("auth.login", 4, user_name="alice"),  # no principal: the name is all we had
            _event("auth.login", 5, user_name="mallory", status=401, result="invalid_credentials"),
            _event("object.delete", 6, bucket="gone-b", key="docs/x"),  # a bucket that no longer exists
            _event("history.read", 7, user_id=ids["admin"], user_name="admin"),
        ]
        assert await db.write(lambda conn: append_history(conn, events)) == len(events)

        everything = await _search(db)
        assert [e.action for e in everything] == [e.action for e in reversed(events)]
        assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
        by_action = {(e.action, e.at): e for e in everything}
        create = by_action[("object.create", T0 + timedelta(minutes=1))]
        assert (create.user_id, create.bucket_id, create.size) == (ids["alice"], ids["alice-b"], 5)
        assert by_action[("auth.login", T0 + timedelta(minutes=4))].user_id == ids["alice"]
        assert by_action[("auth.login", T0 + timedelta(minutes=5))].user_id is None
        assert by_action[("object.delete", T0 + timedelta(minutes=6))].bucket_id is None
        assert create.at == T0 + timedelta(minutes=1) and create.at.tzinfo is not None

        def minutes(found: list[HistoryEvent]) -> list[int]:
            return [int((e.at - T0).total_seconds() // 60) for e in found]

        assert minutes(await _search(db, user="alice")) == [4, 1, 0]
        assert minutes(await _search(db, user="mallory")) == [5]  # no such user: matched by name
        assert minutes(await _search(db, bucket="alice-b")) == [2, 1, 0]
        assert minutes(await _search(db, prefix="docs/")) == [6, 2, 1]  # case-sensitive: not Docs/
        assert minutes(await _search(db, prefix="Docs/")) == [3]
        assert minutes(await _search(db, action="object.read")) == [3, 2]
        assert minutes(await _search(db, action="object")) == [6, 3, 2, 1]
        assert minutes(await _search(db, action="auth")) == [5, 4]
        assert minutes(await _search(db, action="obj")) == []  # a resource, not a string prefix
        window = await _search(db, since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4))
        assert minutes(window) == [3, 2]
        assert minutes(await _search(db, user="bob", bucket="alice-b", action="object")) == [2]
        assert minutes(await _search(db, limit=3)) == [7, 6, 5]

    run_db(main)


def test_cursor_pages_through_everything_once(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        await _people(db)
        events = [_event("object.read", i % 50, user_name="alice", key=f"k{i:03}") for i in range(250)]
        service = HistoryService(db)
        for e in events:
            service.record(e)
        assert await service.flush() == 250

        keys: list[str] = []
        query = HistoryQuery(limit=100)
        pages = 0
        while True:
            page = await service.search(ADMIN, query)
            pages += 1
            keys += [e.key or "" for e in page.events]
            if page.next_cursor is None:
                break
            query = replace(query, before_id=decode_cursor(page.next_cursor))
        assert pages == 3
        assert keys == [f"k{i:03}" for i in reversed(range(250))]

        exact = await service.search(ADMIN, HistoryQuery(limit=250))
        assert len(exact.events) == 250 and exact.next_cursor is None

    run_db(main)


def test_users_see_their_own_calls_and_calls_on_their_buckets(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        ids = await _people(db)
        events = []
        for i in range(60):  # interleaved, so a page merges both of alice's sources
            events += [
                _event("object.read", i, user_name="alice", bucket="bob-b", key=f"alice-on-bob/{i}"),
                _event("object.read", i, user_name="bob", bucket="alice-b", key=f"bob-on-alice/{i}"),
                _event("object.read", i, user_name="bob", bucket="bob-b", key=f"bob-on-bob/{i}"),
                _event("object.read", i, user_name="admin", bucket="bob-b", key=f"admin/{i}"),
            ]
        service = HistoryService(db)
        for e in events:
            service.record(e)
        await service.flush()
        alice = Principal(ids["alice"], "alice", "user")
        bob = Principal(ids["bob"], "bob", "user")

        async def all_pages(who: Principal, **filters: Any) -> list[HistoryEvent]:
            found: list[HistoryEvent] = []
            query = HistoryQuery(limit=25, **filters)
            while True:
                page = await service.search(who, query)
                found += page.events
                if page.next_cursor is None:
                    return found
                query = replace(query, before_id=decode_cursor(page.next_cursor))

        seen = await all_pages(alice)
        assert len(seen) == 120 and len({e.id for e in seen}) == 120
        assert [e.id for e in seen] == sorted((e.id for e in seen), reverse=True)
        assert {e.key.split("/")[0] for e in seen if e.key} == {"alice-on-bob", "bob-on-alice"}
        assert {e.key.split("/")[0] for e in await all_pages(alice, user="bob")} == {"bob-on-alice"}
        assert {e.key.split("/")[0] for e in await all_pages(bob)} == {
            "alice-on-bob",
            "bob-on-alice",
            "bob-on-bob",
            "admin",
        }
        assert len(await all_pages(ADMIN)) == 240

    run_db(main)


def test_history_refuses_update_and_delete(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        await db.write(lambda conn: append_history(conn, [_event("object.read", key="kept")]))
        for statement in ("UPDATE history SET key = 'changed'", "DELETE FROM history"):

            async def tamper(conn: AsyncConnection, sql: str = statement) -> None:
                await conn.execute(text(sql))

            with pytest.raises(DBAPIError, match="append-only"):
                await db.write(tamper)
        async with db.read() as conn:
            assert (await conn.execute(select(history.c.key))).scalars().all() == ["kept"]

    run_db(main)


def test_a_flush_is_one_insert_and_odd_values_are_stored(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        service = HistoryService(db, batch_rows=500)
        odd = _event(
            "object.create",
            user_name="x" * 100,
            bucket="b" * 80,
            key="nul\x00and-surrogate-\udcff" + "k" * 2000,
            user_agent="ua" * 300,
            detail={"why": "nul\x00", "nested": [{"n": 1}, ("t", None)], 3: object()},
            size=True,  # not an integer: dropped rather than stored as 1
        )
        service.record(odd)
        for i in range(299):
            service.record(_event("object.read", key=f"k{i}"))
        with _count_history_inserts(db) as inserts:
            assert await service.flush() == 300
        assert len(inserts) == 1
        stored = (await _search(db, action="object.create"))[0]
        assert stored.key is not None and len(stored.key) == 1024 and stored.key.startswith("nul\ufffdand")
        assert stored.user_name == "x" * 64 and stored.bucket == "b" * 63
        assert stored.user_agent is not None and len(stored.user_agent) == 255
        assert stored.size is None
        assert stored.detail is not None and stored.detail["why"] == "nul\ufffd"
        assert stored.detail["nested"] == [{"n": 1}, ["t", None]] and "3" in stored.detail

    run_db(main)


def test_the_background_task_stores_batches_and_stop_stores_the_rest(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        service = HistoryService(db, interval=3600, batch_rows=10)
        service.start()
        for i in range(10):  # a full batch wakes the task long before its interval
            service.record(_event("object.read", key=f"early{i}"))
        await _until(lambda: service.written == 10)
        for i in range(3):  # less than a batch: waits for the interval, or for stop()
            service.record(_event("object.read", key=f"late{i}"))
        assert service.pending == 3
        await service.stop()
        assert service.pending == 0 and service.written == 13
        assert len(await _search(db)) == 13

    run_db(main)


def test_a_full_queue_drops_the_oldest(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        service = HistoryService(db, max_queued=5)
        for i in range(8):
            service.record(_event("object.read", key=f"k{i}"))
        assert (service.pending, service.dropped) == (5, 3)
        await service.flush()
        assert [e.key for e in await _search(db)] == ["k7", "k6", "k5", "k4", "k3"]

    run_db(main)


def test_bad_cursor_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        decode_cursor("not-a-cursor")


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll (the task under test runs on this loop) until ``predicate`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
