"""Job running against real SQLite and PostgreSQL: two workers, dedupe, priority, retries."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from cargohold.errors import NodeUnavailable
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.tables import jobs
from cargohold.workers.jobs import JobContext, JobRunner

RunDb = Callable[[Callable[[Database], Awaitable[Any]]], Any]


def test_two_workers_on_two_connections_run_each_job_once(run_db: RunDb, db_url: str) -> None:
    """Two worker processes' worth of runners, each with its own engine, claiming at once."""

    async def main(db: Database) -> None:
        async def fill(conn: Any) -> None:
            for i in range(40):
                await repo.enqueue(conn, "work", {"i": i})

        await db.write(fill)
        seen: Counter[int] = Counter()
        by_worker: Counter[str] = Counter()

        def handler(name: str) -> Callable[[JobContext], Awaitable[None]]:
            async def handle(ctx: JobContext) -> None:
                seen[ctx.payload["i"]] += 1
                by_worker[name] += 1
                await asyncio.sleep(0.01)  # hold the job so the other worker must claim around it
                await ctx.progress(100)

            return handle

        other = await Database.open(db_url)
        try:
            first = JobRunner(db, {"work": handler("a")}, lambda: 4)
            second = JobRunner(other, {"work": handler("b")}, lambda: 4)
            ran = await asyncio.gather(first.run_due(["work"]), second.run_due(["work"]))
        finally:
            await other.close()
        assert sum(ran) == 40
        assert seen == Counter(range(40))
        async with db.read() as conn:
            states = await repo.job_counts(conn)
            done = await repo.list_jobs(conn, states=["done"], limit=100)
        assert states == {"done": 40}
        assert {j.progress_bytes for j in done} == {100}
        assert all(j.started_at is not None and j.finished_at is not None for j in done)

    run_db(main)


def test_dedupe_keeps_one_queued_job_per_key(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        first = await db.write(lambda c: repo.enqueue_repair(c, "p1"))
        assert first is not None
        # A thousand reads of one damaged part queue one repair.
        again = await asyncio.gather(*(db.write(lambda c: repo.enqueue_repair(c, "p1")) for _ in range(20)))
        assert again == [None] * 20
        claimed = await db.write(lambda c: repo.claim(c, ["repair_part"], 60))
        assert claimed is not None and claimed.id == first
        # Once it runs, damage found from now on queues a new repair.
        second = await db.write(lambda c: repo.enqueue_repair(c, "p1"))
        assert second is not None and second != first

    run_db(main)


def test_priority_orders_claims_and_failures_back_off(run_db: RunDb) -> None:
    async def main(db: Database) -> None:
        low = await db.write(lambda c: repo.enqueue(c, "work", {"n": "low"}))
        high = await db.write(lambda c: repo.enqueue(c, "work", {"n": "high"}, priority=5))
        order: list[str] = []

        async def handle(ctx: JobContext) -> None:
            order.append(ctx.payload["n"])
            if ctx.payload["n"] == "low":
                raise NodeUnavailable("node 3 did not answer")

        runner = JobRunner(db, {"work": handle}, lambda: 1)
        assert await runner.run_due(["work"]) == 2
        assert order == ["high", "low"]
        # The failed job waits out its backoff: not due, so a second pass runs nothing.
        assert await runner.run_due(["work"]) == 0
        async with db.read() as conn:
            rows = {r.id: r for r in await conn.execute(select(jobs))}
        assert rows[high].state == "done"
        assert rows[low].state == "queued" and rows[low].errors == 1
        assert rows[low].last_error == "NodeUnavailable: node 3 did not answer"

    run_db(main)
