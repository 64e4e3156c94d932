"""The event outbox on real SQLite and PostgreSQL (``run_db`` runs each test on both)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.events import EventDraft, EventType
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.repositories.events import Horizon

RunDb = Callable[[Callable[[Database], Awaitable[Any]]], Any]


class _Rollback(Exception):
    pass


def test_append_commits_with_the_change_and_reads_back_in_order(run_db: RunDb) -> None:
    async def scenario(db: Database) -> None:
        async def change(conn: AsyncConnection) -> tuple[int, int]:
            user = await repo.create_user(conn, "alice", "user", None)
            bucket = await repo.create_bucket(conn, "photos", "ec:2+1", user.id)
            first = await repo.events.append(
                conn,
                EventDraft(
                    EventType.OBJECT_CREATED,
                    user.id,
                    bucket="photos",
                    key="a.jpg",
                    version_id="v1",
                    size=5,
                    detail={"etag": "abc"},
                ),
            )
            second = await repo.events.append(conn, EventDraft(EventType.NODE_DOWN, None, detail={"node": 3}))
            assert bucket.id is not None
            return first, second

        first, second = await db.write(change)
        assert second > first
        async with db.read() as conn:
            found = await repo.events.read_after(conn, 0, 10)
            assert await repo.events.last_id(conn) == second
        assert [e.id for e in found] == [first, second]
        created = found[0]
        assert (created.type, created.bucket, created.key, created.version_id, created.size) == (
            "object.created",
            "photos",
            "a.jpg",
            "v1",
            5,
        )
        assert created.bucket_id is not None
        assert created.detail == {"etag": "abc"}
        assert found[1].detail == {"node": 3} and found[1].actor_id is None

    run_db(scenario)


def test_a_change_that_rolls_back_leaves_no_event(run_db: RunDb) -> None:
    async def scenario(db: Database) -> None:
        async def failing(conn: AsyncConnection) -> None:
            await repo.events.append(conn, EventDraft(EventType.NODE_UP, None))
            raise _Rollback

        async def kept(conn: AsyncConnection) -> int:
            return await repo.events.append(conn, EventDraft(EventType.NODE_LOST, None))

        # Run side by side so that on SQLite they share one batch: the failed one's
        # savepoint goes, the other stays.
        results = await asyncio.gather(db.write(failing), db.write(kept), return_exceptions=True)
        assert isinstance(results[0], _Rollback)
        async with db.read() as conn:
            horizon = Horizon()
            await horizon.settle(conn)
            settled = await horizon.settle(conn)
            found = await repo.events.read_after(conn, 0, 10, settled)
        assert [e.type for e in found] == ["node.lost"]

    run_db(scenario)


@pytest.mark.postgres
def test_postgres_page_stops_at_a_hole_until_it_settles(postgres_cluster: Any) -> None:
    """An id taken by a transaction still open is not skipped: the page ends before it."""
    url = postgres_cluster.create_database()

    async def scenario() -> None:
        db = await Database.open(url)
        try:
            holding = asyncio.Event()
            release = asyncio.Event()

            async def slow(conn: AsyncConnection) -> int:
                event_id = await repo.events.append(conn, EventDraft(EventType.NODE_DOWN, None))
                holding.set()
                await release.wait()
                return event_id

            slow_task = asyncio.create_task(db.write(slow))
            await holding.wait()
            fast = await db.write(lambda conn: repo.events.append(conn, EventDraft(EventType.NODE_UP, None)))
            horizon = Horizon()
            for _ in range(3):
                async with db.read() as conn:
                    settled = await horizon.settle(conn)
                    assert await repo.events.read_after(conn, 0, 10, settled) == []
            release.set()
            slow_id = await slow_task
            assert slow_id < fast
            async with db.read() as conn:
                settled = await horizon.settle(conn)
                assert [e.id for e in await repo.events.read_after(conn, 0, 10, settled)] == [slow_id, fast]
        finally:
            await db.close()

    try:
        asyncio.run(scenario())
    finally:
        postgres_cluster.drop_database(url.rsplit("/", 1)[1])
