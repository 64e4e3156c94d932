"""Storage nodes: registration, admin flags and the stats placement weighs by."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import NodeRecord
from cargohold.errors import NodeAlreadyExists, NodeNotEmpty, NoSuchNode
from cargohold.metadata.repositories._sql import insert_or_nothing
from cargohold.metadata.tables import nodes, part_shares, utcnow


def _node(row: Row) -> NodeRecord:
    return NodeRecord(
        id=row.id,
        url=row.url,
        zone=row.zone,
        enabled=bool(row.enabled),
        active=bool(row.active),
        healthy=bool(row.healthy),
        capacity=row.capacity,
        used=row.used,
        free=row.free,
        shares=row.shares,
        last_seen=row.last_seen,
        state=row.state,
    )


async def add_node(conn: AsyncConnection, url: str, zone: str, capacity: int = 0) -> NodeRecord:
    """Register a node: enabled, active and presumed healthy until a probe says otherwise.

    ``NodeAlreadyExists`` if the URL is registered.
    """
    values = {
        "url": url,
        "zone": zone,
        "enabled": True,
        "active": True,
        "healthy": True,
        "capacity": capacity,
        "used": 0,
        "free": capacity,
        "shares": 0,
        "last_seen": None,
        "created_at": utcnow(),
        "state": "normal",
    }
    row = (await conn.execute(insert_or_nothing(conn, nodes, values).returning(nodes))).first()
    if row is None:
        raise NodeAlreadyExists(f"node {url!r} is already registered", url=url)
    return _node(row)


async def get_node(conn: AsyncConnection, node_id: int) -> NodeRecord | None:
    row = (await conn.execute(select(nodes).where(nodes.c.id == node_id))).first()
    return _node(row) if row else None


async def get_node_by_url(conn: AsyncConnection, url: str) -> NodeRecord | None:
    row = (await conn.execute(select(nodes).where(nodes.c.url == url))).first()
    return _node(row) if row else None


async def list_nodes(conn: AsyncConnection) -> list[NodeRecord]:
    """All nodes by id (placement filters on the flags itself)."""
    return [_node(r) for r in await conn.execute(select(nodes).order_by(nodes.c.id))]


async def update_node(
    conn: AsyncConnection,
    node_id: int,
    *,
    enabled: bool | None = None,
    active: bool | None = None,
    zone: str | None = None,
    state: str | None = None,
) -> NodeRecord:
    """Change admin settings; arguments left as None are unchanged. ``NoSuchNode``."""
    changes: dict[str, object] = {}
    if state is not None:
        changes["state"] = state
    if enabled is not None:
        changes["enabled"] = enabled
    if active is not None:
        changes["active"] = active
    if zone is not None:
        changes["zone"] = zone
    if changes:
        row = (
            await conn.execute(update(nodes).where(nodes.c.id == node_id).values(**changes).returning(nodes))
        ).first()
    else:
        row = (await conn.execute(select(nodes).where(nodes.c.id == node_id))).first()
    if row is None:
        raise NoSuchNode(f"node {node_id} does not exist", node_id=node_id)
    return _node(row)


async def update_node_stats(
    conn: AsyncConnection,
    node_id: int,
    *,
    healthy: bool,
    capacity: int,
    used: int,
    free: int,
    shares: int,
    last_seen: datetime | None,
) -> None:
    """Store what a heartbeat or probe reported, exactly. ``NoSuchNode``.

    ``last_seen`` is stored as given: a failed probe passes the previous
    value so "last seen" keeps meaning last *answered* (None: never).
    """
    result = await conn.execute(
        update(nodes)
        .where(nodes.c.id == node_id)
        .values(
            healthy=healthy,
            capacity=capacity,
            used=used,
            free=free,
            shares=shares,
            last_seen=last_seen,
        )
    )
    if result.rowcount == 0:
        raise NoSuchNode(f"node {node_id} does not exist", node_id=node_id)


async def delete_node(conn: AsyncConnection, node_id: int) -> None:
    """Forget a node that holds no shares. ``NoSuchNode``; ``NodeNotEmpty`` while shares point at it."""
    held = (
        await conn.execute(
            select(func.count()).select_from(part_shares).where(part_shares.c.node_id == node_id)
        )
    ).scalar_one()
    if held:
        raise NodeNotEmpty(
            f"node {node_id} still holds {held} shares: drain it first", node_id=node_id, shares=held
        )
    result = await conn.execute(delete(nodes).where(nodes.c.id == node_id))
    if result.rowcount == 0:
        raise NoSuchNode(f"node {node_id} does not exist", node_id=node_id)


async def node_healthy(conn: AsyncConnection, node_id: int) -> bool | None:
    """The stored up/down state, row locked on PostgreSQL (None: no such node)."""
    stmt = select(nodes.c.healthy).where(nodes.c.id == node_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return (await conn.execute(stmt)).scalar_one_or_none()
