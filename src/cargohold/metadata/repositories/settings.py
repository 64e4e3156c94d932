"""Cluster settings changed at run time (worker throttles), shared by every process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.metadata.repositories._sql import insert_or_nothing
from cargohold.metadata.tables import cluster_settings, utcnow


async def get_setting(conn: AsyncConnection, key: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(cluster_settings.c.value).where(cluster_settings.c.key == key))).first()
    return dict(row.value) if row is not None else None


async def put_setting(conn: AsyncConnection, key: str, value: dict[str, Any]) -> None:
    """Replace the document stored under ``key`` (insert it the first time)."""
    now = utcnow()
    inserted = await conn.execute(
        insert_or_nothing(conn, cluster_settings, {"key": key, "value": value, "updated_at": now})
    )
    if inserted.rowcount == 0:
        await conn.execute(
            update(cluster_settings).where(cluster_settings.c.key == key).values(value=value, updated_at=now)
        )


async def update_setting(
    conn: AsyncConnection, key: str, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """Read, change and store the document under ``key`` with its row locked: parallel
    changes of different fields all land (no lost update) on both engines."""
    await conn.execute(
        insert_or_nothing(conn, cluster_settings, {"key": key, "value": {}, "updated_at": utcnow()})
    )
    row = (
        await conn.execute(
            select(cluster_settings.c.value).where(cluster_settings.c.key == key).with_for_update()
        )
    ).one()
    value = change(dict(row.value))
    await conn.execute(
        update(cluster_settings).where(cluster_settings.c.key == key).values(value=value, updated_at=utcnow())
    )
    return value
