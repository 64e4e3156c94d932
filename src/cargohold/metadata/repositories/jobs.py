"""The jobs table: durable background work, written in the transaction that needs it.

A job is ``queued`` until a worker claims it; claiming sets ``running``, bumps
``attempts`` and sets a lease. A worker that dies simply lets the lease run
out and the job becomes claimable again, so jobs must be idempotent. Failures
go back to ``queued`` with exponential backoff, or to ``failed`` after
``max_attempts``. On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets many workers
claim concurrently without blocking each other; on SQLite the single writer
makes claim-then-update atomic anyway (run ``claim`` through ``db.write``).

Every function takes ``now`` so tests can move time instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.jobs import REPAIR_PART, repair_dedupe
from cargohold.domain.model import Job, JobStatus
from cargohold.metadata.repositories._sql import insert_or_nothing
from cargohold.metadata.tables import jobs, utcnow

MAX_BACKOFF_SECONDS = 3600.0
_ERROR_CHARS = 4000


async def enqueue(
    conn: AsyncConnection,
    kind: str,
    payload: dict[str, Any],
    run_after: datetime | None = None,
    *,
    priority: int = 0,
    dedupe: str | None = None,
    total_bytes: int | None = None,
) -> int | None:
    """Queue a job; it becomes claimable at ``run_after`` (default: now).

    With ``dedupe``, nothing is queued (None is returned) while another
    job with that key is still queued: it will do the same work. A job that
    is already running does not count, since what it read may be stale.
    """
    now = utcnow()
    values = {
        "kind": kind,
        "payload": payload,
        "state": "queued",
        "attempts": 0,
        "run_after": run_after or now,
        "created_at": now,
        "priority": priority,
        "dedupe": dedupe,
        "total_bytes": total_bytes,
        "progress_bytes": 0,
        "errors": 0,
    }
    if dedupe is None:
        result = await conn.execute(insert(jobs).values(**values).returning(jobs.c.id))
        return int(result.scalar_one())
    row = (await conn.execute(insert_or_nothing(conn, jobs, values).returning(jobs.c.id))).first()
    return int(row.id) if row is not None else None


async def enqueue_repair(conn: AsyncConnection, part_id: str, priority: int = 0) -> int | None:
    """Queue the repair of a part, unless one is already queued (see ``enqueue``)."""
    return await enqueue(
        conn, REPAIR_PART, {"part_id": part_id}, priority=priority, dedupe=repair_dedupe(part_id)
    )


async def claim(
    conn: AsyncConnection,
    kinds: Sequence[str] | None,
    lease_seconds: float,
    *,
    now: datetime | None = None,
) -> Job | None:
    """Take the oldest due job of one of ``kinds`` (all kinds if None), or None.

    Due means queued with ``run_after <= now``, or running with an expired lease.
    """
    now = now or utcnow()
    due = or_(
        and_(jobs.c.state == "queued", jobs.c.run_after <= now),
        and_(jobs.c.state == "running", jobs.c.lease_until < now),
    )
    stmt = select(jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts).where(due)
    if kinds is not None:
        stmt = stmt.where(jobs.c.kind.in_(list(kinds)))
    stmt = (
        stmt.order_by(jobs.c.priority.desc(), jobs.c.run_after, jobs.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    attempts = row.attempts + 1
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == row.id)
        .values(
            state="running",
            attempts=attempts,
            lease_until=now + timedelta(seconds=lease_seconds),
            started_at=now,
            # Leaving "queued" frees the dedupe key for damage found from now on.
            dedupe=None,
        )
    )
    return Job(id=row.id, kind=row.kind, payload=row.payload, attempts=attempts)


async def extend_lease(
    conn: AsyncConnection, job_id: int, lease_seconds: float, *, now: datetime | None = None
) -> bool:
    """Keep a long job's lease alive; False if it is no longer running."""
    now = now or utcnow()
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == "running")
        .values(lease_until=now + timedelta(seconds=lease_seconds))
    )
    return result.rowcount > 0


async def release(conn: AsyncConnection, job_id: int, *, now: datetime | None = None) -> None:
    """Hand a running job back (its worker is stopping): claimable again at once, and its
    attempts still counted, so the next claim's number differs from this one's."""
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == "running")
        .values(state="queued", lease_until=None, run_after=now or utcnow())
    )


async def complete(conn: AsyncConnection, job_id: int, *, now: datetime | None = None) -> None:
    """Mark a job done."""
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(state="done", lease_until=None, finished_at=now or utcnow())
    )


async def report_progress(
    conn: AsyncConnection,
    job_id: int,
    *,
    progress_bytes: int,
    total_bytes: int | None = None,
    errors: int | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Record how far a running job got (and, for resumable jobs, its cursor in ``payload``)."""
    values: dict[str, Any] = {"progress_bytes": progress_bytes}
    if total_bytes is not None:
        values["total_bytes"] = total_bytes
    if errors is not None:
        values["errors"] = errors
    if payload is not None:
        values["payload"] = payload
    await conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


def _status(row: Any) -> JobStatus:
    return JobStatus(
        id=row.id,
        kind=row.kind,
        state=row.state,
        payload=row.payload,
        attempts=row.attempts,
        priority=row.priority,
        progress_bytes=row.progress_bytes,
        total_bytes=row.total_bytes,
        errors=row.errors,
        last_error=row.last_error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


async def list_jobs(
    conn: AsyncConnection,
    *,
    kinds: Sequence[str] | None = None,
    states: Sequence[str] | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[JobStatus]:
    """Jobs newest first, filtered by kind and state; ``before`` is an id cursor."""
    stmt = select(jobs)
    if kinds:
        stmt = stmt.where(jobs.c.kind.in_(list(kinds)))
    if states:
        stmt = stmt.where(jobs.c.state.in_(list(states)))
    if before is not None:
        stmt = stmt.where(jobs.c.id < before)
    rows = await conn.execute(stmt.order_by(jobs.c.id.desc()).limit(limit))
    return [_status(row) for row in rows]


def backoff_delay(attempts: int, backoff: float) -> float:
    """Seconds to wait after the ``attempts``-th failure: backoff, 2x, 4x, ... capped."""
    return min(MAX_BACKOFF_SECONDS, backoff * 2 ** max(0, attempts - 1))


async def fail(
    conn: AsyncConnection,
    job_id: int,
    error: str,
    backoff: float = 1.0,
    *,
    max_attempts: int | None = None,
    now: datetime | None = None,
) -> None:
    """Record a failed attempt and retry later, or give up after ``max_attempts``."""
    now = now or utcnow()
    attempts = (await conn.execute(select(jobs.c.attempts).where(jobs.c.id == job_id))).scalar_one_or_none()
    if attempts is None:
        return
    final = max_attempts is not None and attempts >= max_attempts
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            state="failed" if final else "queued",
            run_after=now + timedelta(seconds=backoff_delay(attempts, backoff)),
            lease_until=None,
            last_error=error[:_ERROR_CHARS],
            finished_at=now if final else None,
            errors=jobs.c.errors + 1,
        )
    )


async def job_counts(conn: AsyncConnection) -> dict[str, int]:
    """Number of jobs per state (metrics, tests)."""
    rows = await conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
    return {state: int(n) for state, n in rows}


async def job_counts_by_kind(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    """Jobs per (kind, state), for the metrics (served by ix_jobs_kind_state)."""
    rows = await conn.execute(
        select(jobs.c.kind, jobs.c.state, func.count()).group_by(jobs.c.kind, jobs.c.state)
    )
    return {(kind, state): int(n) for kind, state, n in rows}
