"""The event log as a live feed: one poller per process, a ring of recent events, and who sees what.

Every reader of the log in a process — each ``GET /api/v1/events`` stream on
a gateway, the webhook deliveries on a worker — reads through one
:class:`EventFeed`. Its poller is the only task that asks the database for
new events: one query every ``poll_interval`` however many streams wait, and
at once when this process itself committed an event (``db.on_commit``), so
an event written here reaches a waiting stream within milliseconds and one
written elsewhere within a poll. New events go into a bounded ring; readers
keep only their cursor, so a slow reader costs no memory: once it falls
behind the ring it reads from the database, a page at a time, up to the
feed's head, and catches up.

``head`` only moves over ids no later commit can precede (see
``repositories/events.py``), so a reader resuming after id N misses nothing
and repeats nothing.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from dataclasses import dataclass

from cargohold.domain.events import Event, type_matches
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metadata.repositories.events import TOPIC, Horizon

log = logging.getLogger(__name__)

PAGE = 500
RING = 8192


def cancelled() -> bool:
    """Whether the current task is being cancelled: a loop that catches ``Exception`` to outlive
    a bad round must still stop then (a cancellation can reach it as a database error)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class EventFeed:
    def __init__(self, db: Database, *, poll_interval: float = 0.05, ring_size: int = RING) -> None:
        self._db = db
        self.poll_interval = poll_interval
        self._ring_size = max(16, ring_size)
        self._ring: list[Event] = []
        self._ids: list[int] = []
        #: Every event above ``_floor`` and up to ``head`` is in the ring.
        self._floor = 0
        self.head = 0
        self.ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._horizon = Horizon()
        self._task: asyncio.Task[None] | None = None
        self._start_at: int | None = None
        self.polls = 0
        #: Set when the process stops: streams end rather than hold the shutdown up.
        self.closing = False
        self._polling = asyncio.Lock()

    # -- life -------------------------------------------------------------------

    def start(self) -> None:
        self._db.on_commit(TOPIC, self.wake)
        self._task = asyncio.create_task(self._run(), name="event-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def close_readers(self) -> None:
        """End every reader's wait (the process is stopping)."""
        self.closing = True
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def audience(self, user_id: int, is_admin: bool) -> Audience:
        return await audience(self._db, user_id, is_admin)

    def wake(self) -> None:
        """This process committed an event: poll now rather than at the next tick."""
        self._wake.set()

    async def _run(self) -> None:
        while not self.ready.is_set():
            try:
                await self._start_head()
            except Exception:
                if cancelled():
                    raise
                log.exception("event feed: cannot read the log's head")
            if not self.ready.is_set():
                await asyncio.sleep(self.poll_interval)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            try:
                if await self.poll() == PAGE:
                    self._wake.set()  # more waiting: read on at once
            except Exception:
                if cancelled():
                    raise
                log.exception("event feed: poll failed")
                await asyncio.sleep(self.poll_interval)

    async def _start_head(self) -> None:
        """Start after what is committed now: on PostgreSQL once every id up to it is settled."""
        async with self._db.read() as conn:
            settled = await self._horizon.settle(conn)
            if self._db.is_sqlite:
                self.head = self._floor = await repo.events.last_id(conn)
                self.ready.set()
                return
        if self._start_at is None:
            self._start_at = self._horizon.newest
        if settled >= self._start_at:
            self.head = self._floor = self._start_at
            self.ready.set()

    async def sync(self, patience: float = 2.0) -> None:
        """Poll now, until the head covers every event committed before the call (a reader
        that has just written sees its own event). On PostgreSQL that waits, at most
        ``patience`` seconds, for holes below the newest id to settle."""
        await self.ready.wait()
        async with self._db.read() as conn:
            target = await repo.events.newest_id_taken(conn)
        deadline = time.monotonic() + patience
        while True:
            took = await self.poll()
            if self.head >= target or (self._horizon.settled >= target and took < PAGE):
                return
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(min(0.01, self.poll_interval))

    async def poll(self) -> int:
        """Take the events committed since the last poll into the ring; returns how many."""
        async with self._polling:
            return await self._poll()

    async def _poll(self) -> int:
        async with self._db.read() as conn:
            settled = await self._horizon.settle(conn)
            page = await repo.events.read_after(conn, self.head, PAGE, settled)
        self.polls += 1
        if not page:
            return 0
        self._ring.extend(page)
        self._ids.extend(e.id for e in page)
        if len(self._ring) > 2 * self._ring_size:
            cut = len(self._ring) - self._ring_size
            self._floor = self._ids[cut - 1]
            del self._ring[:cut], self._ids[:cut]
        self.head = page[-1].id
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return len(page)

    # -- reading ------------------------------------------------------------------

    async def read(self, after: int, limit: int = PAGE) -> list[Event]:
        """Up to ``limit`` events above ``after`` and up to the head, ascending (none: wait)."""
        await self.ready.wait()
        if after >= self.head:
            return []
        if after >= self._floor:
            start = bisect.bisect_right(self._ids, after)
            return self._ring[start : start + limit]
        async with self._db.read() as conn:
            return await repo.events.read_range(conn, after, self.head, limit)

    async def wait_beyond(self, after: int, timeout: float) -> bool:
        """Wait until the head passes ``after``; False when ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        await asyncio.wait_for(self.ready.wait(), timeout)
        while self.head <= after and not self.closing:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return self.head > after


@dataclass(frozen=True, slots=True)
class Audience:
    """What one user may see of the log: everything (admins), else their own doings and the
    events of buckets they own or hold a grant on."""

    user_id: int
    is_admin: bool
    bucket_ids: frozenset[int]

    def sees(self, event: Event) -> bool:
        if self.is_admin or event.actor_id == self.user_id:
            return True
        return event.bucket_id is not None and event.bucket_id in self.bucket_ids


@dataclass(frozen=True, slots=True)
class Selection:
    """A reader's filters: type filters (``parse_type_filters``) and an optional bucket name."""

    types: tuple[str, ...] = ()
    bucket: str | None = None

    def matches(self, event: Event) -> bool:
        if self.bucket is not None and event.bucket != self.bucket:
            return False
        return type_matches(self.types, event.type)


async def audience(db: Database, user_id: int, is_admin: bool) -> Audience:
    """The buckets a user sees now (owned or granted): read again every few seconds by streams,
    so a grant given or taken shows without reconnecting."""
    if is_admin:
        return Audience(user_id, True, frozenset())
    async with db.read() as conn:
        buckets = await repo.list_buckets(conn, visible_to=user_id)
    return Audience(user_id, False, frozenset(b.id for b in buckets))
