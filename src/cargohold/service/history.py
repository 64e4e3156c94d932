"""The action history: record every API call without slowing it down, and search the record.

Recording must not add a metadata round trip to each request: small-object
traffic would pay for it twice (the write, and the fsync). So
:meth:`HistoryService.record` only appends to an in-memory queue, and a
background task stores the queue with one multi-row INSERT every
``interval`` seconds (0.2 s by default), or at once when ``batch_rows``
events are waiting. On SQLite that INSERT also joins the single writer's
group commit.

The trade-off, accepted on purpose: events are acknowledged to nobody, so a
gateway that crashes (power loss, SIGKILL) loses the events of at most the
last ``interval`` seconds, plus whatever was queued while the database was
unreachable. A clean shutdown (:meth:`stop`) stores everything queued.

The queue is bounded (``max_queued``). While the database is down events
pile up; past the bound the oldest are dropped, counted in :attr:`dropped`
and reported in the log, so an outage costs memory up to a fixed limit and
never the gateway itself. Failed stores are retried with a growing pause
(up to ``max_backoff`` seconds) so a down database is not hammered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from cargohold.domain.history import HistoryEvent, HistoryPage, HistoryQuery, encode_cursor
from cargohold.domain.model import Principal
from cargohold.metadata.db import Database
from cargohold.metadata.repositories.history import append_history, search_history

log = logging.getLogger(__name__)


class HistoryService:
    def __init__(
        self,
        db: Database,
        *,
        interval: float = 0.2,
        batch_rows: int = 500,
        max_queued: int = 100_000,
        max_backoff: float = 5.0,
    ) -> None:
        self._db = db
        self._interval = interval
        self._batch_rows = max(1, batch_rows)
        self._max_queued = max(1, max_queued)
        self._max_backoff = max_backoff
        self._queue: deque[HistoryEvent] = deque()
        self._wakeup = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.written = 0  # events stored since start
        self.dropped = 0  # events lost to a full queue since start
        self._dropped_reported = 0

    # -- recording ----------------------------------------------------------

    def record(self, event: HistoryEvent) -> None:
        """Queue ``event`` for the next flush; never waits, never fails."""
        self._queue.append(event)
        if len(self._queue) > self._max_queued:
            self._queue.popleft()
            self.dropped += 1
        if len(self._queue) >= self._batch_rows:
            self._wakeup.set()

    @property
    def pending(self) -> int:
        """Events recorded but not stored yet."""
        return len(self._queue)

    async def flush(self) -> int:
        """Store every queued event now; returns how many. Raises if the database refuses.

        On failure the batch goes back to the front of the queue (still
        subject to the bound), so nothing is lost that a later flush can save.
        """
        stored = 0
        async with self._flushing:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self._batch_rows, len(self._queue)))]
                try:
                    await self._store(batch)
                except BaseException:
                    self._requeue(batch)
                    raise
                stored += len(batch)
                self.written += len(batch)
        return stored

    async def _store(self, batch: list[HistoryEvent]) -> None:
        await self._db.write(lambda conn: append_history(conn, batch))

    def _requeue(self, batch: list[HistoryEvent]) -> None:
        self._queue.extendleft(reversed(batch))
        overflow = len(self._queue) - self._max_queued
        for _ in range(max(0, overflow)):
            self._queue.popleft()
            self.dropped += 1

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="history-flush")

    async def stop(self) -> None:
        """Store what is queued and end the background task (call before closing the database)."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("history: %d events could not be stored at shutdown and are lost", self.pending)

    async def _run(self) -> None:
        pause = self._interval
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), pause)
            self._wakeup.clear()
            self._report_drops()
            if self._stopping:
                return  # stop() flushes
            try:
                await self.flush()
            except Exception as exc:
                pause = min(max(pause, self._interval) * 2, self._max_backoff)
                log.warning(
                    "history: storing %d events failed (retry in %.1fs): %s", self.pending, pause, exc
                )
            else:
                pause = self._interval

    def _report_drops(self) -> None:
        if self.dropped != self._dropped_reported:
            log.warning(
                "history: queue full (%d events), dropped the %d oldest (%d since start)",
                self._max_queued,
                self.dropped - self._dropped_reported,
                self.dropped,
            )
            self._dropped_reported = self.dropped

    # -- searching ----------------------------------------------------------

    async def search(self, who: Principal, query: HistoryQuery) -> HistoryPage:
        """One page of events ``who`` may see, newest first: admins see all, others
        their own calls and calls on buckets they own."""
        async with self._db.read() as conn:
            found = await search_history(
                conn, query, visible_to=None if who.is_admin else who.user_id, count=query.limit + 1
            )
        events = found[: query.limit]
        more = len(found) > query.limit and events[-1].id is not None
        return HistoryPage(events, encode_cursor(events[-1].id or 0) if more else None)
