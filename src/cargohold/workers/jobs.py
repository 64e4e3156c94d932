"""Claiming and running jobs from the metadata store: leases, backoff, progress, a concurrency cap.

Any number of workers may run this beside each other (and beside gateways):
``repo.claim`` hands each due job to exactly one of them (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, the single writer on SQLite). A running job's lease is
renewed while its handler works; a worker that dies lets the lease lapse and
another worker takes the job over, so every handler must be idempotent.
A handler that raises is retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import Job
from cargohold.errors import CargoholdError
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
#: Seconds before the first retry of a failed job (doubling, capped by the repository).
RETRY_BACKOFF = 2.0
MAX_ATTEMPTS = 25
#: Progress is written at most this often per job.
PROGRESS_INTERVAL = 1.0


class JobContext:
    """What a handler may do besides its work: report progress, remember a cursor."""

    def __init__(self, db: Database, job: Job) -> None:
        self._db = db
        self.job = job
        self.payload: dict[str, Any] = dict(job.payload)
        self.done_bytes = 0
        self.total_bytes: int | None = None
        self.errors = 0
        self._written_at = 0.0

    async def progress(self, add_bytes: int = 0, *, force: bool = False, errors: int = 0) -> None:
        """Count ``add_bytes`` more work done; stored at most every PROGRESS_INTERVAL seconds.

        The payload is stored with it, so a job that keeps a cursor there
        resumes from it after a crash instead of from the start.
        """
        self.done_bytes += add_bytes
        self.errors += errors
        now = time.monotonic()
        if not force and now - self._written_at < PROGRESS_INTERVAL:
            return
        self._written_at = now
        await self._db.write(
            functools.partial(
                _store_progress,
                job_id=self.job.id,
                done=self.done_bytes,
                total=self.total_bytes,
                errors=self.errors,
                payload=dict(self.payload),
            )
        )


Handler = Callable[[JobContext], Awaitable[None]]


class JobRunner:
    """Runs due jobs of the kinds it has handlers for, up to ``concurrency()`` at once."""

    def __init__(
        self,
        db: Database,
        handlers: dict[str, Handler],
        concurrency: Callable[[], int],
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self._db = db
        self._handlers = handlers
        self._concurrency = concurrency
        self._lease = lease_seconds
        self._running: set[asyncio.Task[None]] = set()
        self.wakeup = asyncio.Event()

    async def run_due(self, kinds: Sequence[str]) -> int:
        """Run every job of ``kinds`` that is due now, including those queued meanwhile; return how many.

        Returns when nothing of those kinds is due and nothing is running
        (jobs waiting out a retry backoff are not due).
        """
        ran = 0
        while True:
            while len(self._running) < max(1, self._concurrency()):
                job = await self._db.write(functools.partial(_claim, kinds=list(kinds), lease=self._lease))
                if job is None:
                    break
                self._start(job)
                ran += 1
            if not self._running:
                return ran
            await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)

    async def run_forever(self, kinds: Sequence[str], poll_interval: float) -> None:
        while True:
            try:
                await self.run_due(kinds)
            except Exception:  # a database hiccup must not end the worker
                log.exception("claiming jobs failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), poll_interval)
            self.wakeup.clear()

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(self._run(job), name=f"job-{job.id}-{job.kind}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, job: Job) -> None:
        context = JobContext(self._db, job)
        done = asyncio.Event()
        keepalive = asyncio.create_task(self._keep_lease(job.id, done))
        try:
            await self._handlers[job.kind](context)
        except asyncio.CancelledError:
            # The worker is stopping: hand the job back now rather than when its lease lapses.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._db.write(functools.partial(_release, job_id=job.id)))
            raise
        except Exception as exc:
            expected = isinstance(exc, CargoholdError | OSError)
            if expected:
                log.warning("job %s (%s) failed: %s", job.id, job.kind, exc)
            else:
                log.exception("job %s (%s) crashed", job.id, job.kind)
            await self._db.write(
                functools.partial(_fail, job_id=job.id, error=f"{type(exc).__name__}: {exc}")
            )
            return
        finally:
            # Told to stop, not cancelled: cancelling a write half-way through a PostgreSQL
            # round trip can leave its connection waiting on an answer that never comes.
            done.set()
            await keepalive
        await context.progress(force=True)
        await self._db.write(functools.partial(_done, job_id=job.id))

    async def _keep_lease(self, job_id: int, done: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self._lease / 3)
            if done.is_set():
                return
            with contextlib.suppress(Exception):
                await self._db.write(functools.partial(_extend, job_id=job_id, lease=self._lease))

    async def stop(self) -> None:
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)


async def _claim(conn: AsyncConnection, *, kinds: list[str], lease: float) -> Job | None:
    return await repo.claim(conn, kinds, lease)


async def _release(conn: AsyncConnection, *, job_id: int) -> None:
    await repo.release(conn, job_id)


async def _fail(conn: AsyncConnection, *, job_id: int, error: str) -> None:
    await repo.fail(conn, job_id, error, RETRY_BACKOFF, max_attempts=MAX_ATTEMPTS)


async def _done(conn: AsyncConnection, *, job_id: int) -> None:
    await repo.complete(conn, job_id)


async def _extend(conn: AsyncConnection, *, job_id: int, lease: float) -> None:
    await repo.extend_lease(conn, job_id, lease)


async def _store_progress(
    conn: AsyncConnection, *, job_id: int, done: int, total: int | None, errors: int, payload: dict[str, Any]
) -> None:
    await repo.report_progress(
        conn, job_id, progress_bytes=done, total_bytes=total, errors=errors, payload=payload
    )
