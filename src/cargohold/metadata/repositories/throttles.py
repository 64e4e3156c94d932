"""Failure counters behind throttling (sign-ins, share link passwords)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.metadata.repositories._sql import insert_or_nothing
from cargohold.metadata.tables import throttles


async def blocked_until(conn: AsyncConnection, keys: list[str], now: datetime) -> datetime | None:
    """The latest time any of ``keys`` is blocked until, if one is blocked now."""
    stmt = select(throttles.c.blocked_until).where(throttles.c.key.in_(keys), throttles.c.blocked_until > now)
    times = [t for t in (await conn.execute(stmt)).scalars() if t is not None]
    return max(times) if times else None


async def record_failure(
    conn: AsyncConnection, key: str, now: datetime, window: timedelta, limit: int, base_block: timedelta
) -> datetime | None:
    """Count a failure for ``key``; returns the block end once ``limit`` failures fall in ``window``.

    Each failure past the limit doubles the block (capped at a day), so a
    guesser slows down exponentially while a user who mistyped waits seconds.
    """
    await conn.execute(insert_or_nothing(conn, throttles, {"key": key, "failures": 0, "window_start": now}))
    row = (await conn.execute(select(throttles).where(throttles.c.key == key))).one()
    failures = row.failures + 1 if now - row.window_start < window else 1
    start = row.window_start if failures > 1 else now
    until = None
    if failures >= limit:
        block = min(base_block * (2 ** (failures - limit)), timedelta(days=1))
        until = now + block
    await conn.execute(
        update(throttles)
        .where(throttles.c.key == key)
        .values(failures=failures, window_start=start, blocked_until=until)
    )
    return until


async def clear(conn: AsyncConnection, key: str) -> None:
    await conn.execute(delete(throttles).where(throttles.c.key == key))
