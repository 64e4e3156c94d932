"""Zones (name, coordinates, client networks) and the gateways that heartbeat into the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.zones import Zone, parse_networks
from cargohold.metadata.repositories._sql import insert_or_nothing
from cargohold.metadata.tables import gateways, nodes, utcnow, zones


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    url: str
    zone: str
    started_at: datetime
    last_seen: datetime


def _zone(row) -> Zone:  # type: ignore[no-untyped-def]
    return Zone(row.name, row.latitude, row.longitude, parse_networks(row.networks or ()))


async def list_zones(conn: AsyncConnection) -> list[Zone]:
    return [_zone(row) for row in await conn.execute(select(zones).order_by(zones.c.name))]


async def put_zone(conn: AsyncConnection, zone: Zone) -> bool:
    """Create or replace ``zone`` whole; True when it is new."""
    values = {
        "latitude": zone.latitude,
        "longitude": zone.longitude,
        "networks": [str(n) for n in zone.networks],
        "updated_at": utcnow(),
    }
    inserted = await conn.execute(insert_or_nothing(conn, zones, {"name": zone.name, **values}))
    if inserted.rowcount:
        return True
    await conn.execute(update(zones).where(zones.c.name == zone.name).values(**values))
    return False


async def delete_zone(conn: AsyncConnection, name: str) -> bool:
    return bool((await conn.execute(delete(zones).where(zones.c.name == name))).rowcount)


async def nodes_in_zone(conn: AsyncConnection, name: str) -> int:
    stmt = select(func.count()).select_from(nodes).where(nodes.c.zone == name, nodes.c.state != "retired")
    return int((await conn.execute(stmt)).scalar_one())


async def heartbeat_gateway(conn: AsyncConnection, url: str, zone: str, started_at: datetime) -> None:
    """Upsert this gateway's row: its zone may have changed with a restart."""
    now = utcnow()
    values = {"url": url, "zone": zone, "started_at": started_at, "last_seen": now}
    inserted = await conn.execute(insert_or_nothing(conn, gateways, values))
    if not inserted.rowcount:
        await conn.execute(
            update(gateways)
            .where(gateways.c.url == url)
            .values(zone=zone, started_at=started_at, last_seen=now)
        )


async def list_gateways(conn: AsyncConnection) -> list[GatewayRecord]:
    rows = await conn.execute(select(gateways).order_by(gateways.c.url))
    return [GatewayRecord(r.url, r.zone, r.started_at, r.last_seen) for r in rows]


async def forget_gateway(conn: AsyncConnection, url: str) -> None:
    await conn.execute(delete(gateways).where(gateways.c.url == url))
