"""Failure counters behind throttling (sign-ins, share link passwords).

Counting and deciding happen in one transaction: :func:`admit` locks the
rows of every key it is given (``SELECT ... FOR UPDATE`` on PostgreSQL, in
key order so two callers cannot deadlock; on SQLite the single writer
serialises the whole function), refuses if one is blocked, and otherwise
counts the attempt on all of them before any password is checked.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.throttling import Count, Policy, blocked, count_attempt
from cargohold.metadata.repositories._sql import insert_or_nothing
from cargohold.metadata.tables import throttles


async def admit(
    conn: AsyncConnection, guards: Sequence[tuple[str, Policy]], now: datetime
) -> datetime | None:
    """Count one attempt on every key, or nothing if one is blocked: then the latest block end."""
    keys = sorted({key for key, _ in guards})
    for key in keys:  # in key order, like the locks below
        await conn.execute(
            insert_or_nothing(conn, throttles, {"key": key, "failures": 0, "window_start": now})
        )
    stmt = select(throttles).where(throttles.c.key.in_(keys)).order_by(throttles.c.key).with_for_update()
    counts = {
        row.key: Count(row.failures, row.window_start, row.blocked_until) for row in await conn.execute(stmt)
    }
    ends = [end for count in counts.values() if (end := blocked(count, now)) is not None]
    if ends:
        return max(ends)
    for key, policy in guards:
        after = count_attempt(policy, counts[key] if counts[key].failures else None, now)
        await conn.execute(
            update(throttles)
            .where(throttles.c.key == key)
            .values(
                failures=after.failures, window_start=after.last_failure, blocked_until=after.blocked_until
            )
        )
    return None


async def passed(conn: AsyncConnection, forget: Collection[str], take_back: Collection[str]) -> None:
    """A right password: drop the counts of ``forget``, take this attempt back from ``take_back``.

    Taking back also lifts a block: if earlier failures still reach the
    limit, the next admitted failure blocks again at once.
    """
    if forget:
        await conn.execute(delete(throttles).where(throttles.c.key.in_(sorted(forget))))
    if take_back:
        await conn.execute(
            update(throttles)
            .where(throttles.c.key.in_(sorted(take_back)))
            .values(
                failures=case((throttles.c.failures > 0, throttles.c.failures - 1), else_=0),
                blocked_until=None,
            )
        )
