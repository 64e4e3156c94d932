"""The event outbox: append in the caller's transaction, read in id order, prune by age.

``append`` is called inside the ``db.write(fn)`` that makes the change the
event tells of, so the event commits or rolls back with it.

Readers page through ids ascending and resume after the last id they saw, so
an id must never become visible *below* one already read. SQLite gives that
for free: one writer at a time, and AUTOINCREMENT ids taken inside the
write lock. PostgreSQL does not: two transactions take ids 10 and 11 from
the sequence, 11 commits first, and a reader that took 11 would never see
10. ``read_after`` therefore returns a PostgreSQL page only up to the first
hole, except where the hole is *settled*: every transaction that could still
fill it has ended (see :class:`Horizon`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.events import Event, EventDraft
from cargohold.metadata.db import touch
from cargohold.metadata.tables import buckets, events, utcnow

#: The commit topic ``append`` touches: this process's event poller listens to it.
TOPIC = "events"
_SEQUENCE_LAST = text("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_id_seq")

#: A detail document larger than this (as JSON) is replaced by a note saying so.
MAX_DETAIL_BYTES = 4096


def _detail(detail: Mapping[str, Any]) -> dict[str, Any] | None:
    if not detail:
        return None
    document = json.loads(json.dumps(dict(detail), default=str))
    if len(json.dumps(document)) > MAX_DETAIL_BYTES:
        return {"truncated": True}
    return document


async def append(conn: AsyncConnection, draft: EventDraft) -> int:
    """Insert one event in the caller's transaction; returns its id."""
    bucket_id = draft.bucket_id
    if bucket_id is None and draft.bucket is not None:
        bucket_id = (
            await conn.execute(select(buckets.c.id).where(buckets.c.name == draft.bucket))
        ).scalar_one_or_none()
    result = await conn.execute(
        insert(events)
        .values(
            at=utcnow(),
            type=str(draft.type),
            actor_id=draft.actor_id,
            bucket_id=bucket_id,
            bucket=draft.bucket,
            key=draft.key,
            version_id=draft.version_id,
            size=draft.size,
            detail=_detail(draft.detail),
        )
        .returning(events.c.id)
    )
    touch(conn, TOPIC)
    return int(result.scalar_one())


def _event(row: Row[Any]) -> Event:
    return Event(
        id=row.id,
        at=row.at,
        type=row.type,
        actor_id=row.actor_id,
        bucket_id=row.bucket_id,
        bucket=row.bucket,
        key=row.key,
        version_id=row.version_id,
        size=row.size,
        detail=row.detail or {},
    )


_WRITERS = text(
    "SELECT virtualtransaction FROM pg_locks WHERE locktype = 'relation' AND mode = 'RowExclusiveLock'"
    " AND granted AND relation = 'events'::regclass"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@dataclass(slots=True)
class Horizon:
    """How far ids are settled on PostgreSQL: no transaction can still commit an id at or below.

    A transaction that inserts into ``events`` holds a RowExclusiveLock on
    the table from before it takes an id until it ends. So if the sequence's
    last value was L, every id up to L belongs to a transaction that had
    ended, or held that lock, when the lock holders were listed right after
    reading L; once none of those holders is left, every hole up to L is
    final. Each ``advance`` notes one such checkpoint and settles what it
    can; a poller calls it before every read, so a hole settles as soon as
    the transactions writing events at the time have ended. Transactions that
    write no events (in this database or another) never hold it up.
    """

    settled: int = 0
    checkpoints: list[tuple[int, frozenset[str]]] = field(default_factory=list)
    #: The sequence's value at the latest ``advance``: the newest id taken then.
    newest: int = 0

    async def advance(self, conn: AsyncConnection) -> None:
        last = self.newest = int((await conn.execute(_SEQUENCE_LAST)).scalar_one())
        writing = frozenset(str(v) for v in (await conn.execute(_WRITERS)).scalars())
        keep = []
        for seq_value, holders in [*self.checkpoints, (last, writing)]:
            if holders.isdisjoint(writing) or not holders:
                self.settled = max(self.settled, seq_value)
            else:
                keep.append((seq_value, holders))
        self.checkpoints = keep[-64:]

    async def settle(self, conn: AsyncConnection) -> int:
        """Advance on PostgreSQL; returns the settled id for :func:`read_after`."""
        if conn.dialect.name == "postgresql":
            await self.advance(conn)
        return self.settled


async def read_after(conn: AsyncConnection, after: int, limit: int, settled: int = 0) -> list[Event]:
    """Up to ``limit`` events with ids above ``after``, ascending, that no later commit can precede.

    On PostgreSQL a page stops before the first hole in the ids above
    ``settled`` (a :class:`Horizon`'s); SQLite has no such holes.
    """
    rows = (
        await conn.execute(select(events).where(events.c.id > after).order_by(events.c.id).limit(limit))
    ).all()
    found = [_event(r) for r in rows]
    if conn.dialect.name != "postgresql":
        return found
    page: list[Event] = []
    expected = after + 1
    for event in found:
        if event.id != expected and event.id - 1 > settled:
            break  # a hole that a transaction still running may fill: stop before it
        page.append(event)
        expected = event.id + 1
    return page


async def read_range(conn: AsyncConnection, after: int, upto: int, limit: int) -> list[Event]:
    """Events with ``after < id <= upto``, ascending: for readers behind a poller's settled head."""
    stmt = select(events).where(events.c.id > after, events.c.id <= upto).order_by(events.c.id).limit(limit)
    return [_event(r) for r in (await conn.execute(stmt)).all()]


async def newest_id_taken(conn: AsyncConnection) -> int:
    """The highest id any transaction has taken so far, committed or not (SQLite: committed)."""
    if conn.dialect.name == "postgresql":
        return int((await conn.execute(_SEQUENCE_LAST)).scalar_one())
    return await last_id(conn)


async def last_id(conn: AsyncConnection) -> int:
    """The highest event id committed so far (0 for none)."""
    return int((await conn.execute(select(func.coalesce(func.max(events.c.id), 0)))).scalar_one())


async def prune(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` of the oldest events from before ``before``; returns how many."""
    oldest = select(events.c.id).where(events.c.at < before).order_by(events.c.id).limit(limit)
    result = await conn.execute(delete(events).where(events.c.id.in_(oldest.scalar_subquery())))
    return result.rowcount or 0
