"""What the health report reads: every part's shares, with the object it belongs to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.metadata.tables import objects, part_shares, parts


@dataclass(slots=True)
class PartShares:
    part_id: str
    object_id: int | None
    layout: str
    size: int
    #: (node id or None, state) per share.
    shares: list[tuple[int | None, str]] = field(default_factory=list)


async def iter_part_shares(conn: AsyncConnection, batch: int = 2000) -> AsyncIterator[PartShares]:
    """Every part of a committed object or an open upload, with its shares, in part id order.

    Read in keyset pages so memory stays bounded however many parts exist.
    """
    after = ""
    while True:
        ids = [
            row.id
            for row in await conn.execute(
                select(parts.c.id)
                .where(
                    parts.c.id > after, (parts.c.object_id.is_not(None)) | (parts.c.upload_id.is_not(None))
                )
                .order_by(parts.c.id)
                .limit(batch)
            )
        ]
        if not ids:
            return
        rows = await conn.execute(
            select(
                parts.c.id,
                parts.c.object_id,
                parts.c.layout,
                parts.c.size,
                part_shares.c.node_id,
                part_shares.c.state,
            )
            .select_from(parts.outerjoin(part_shares, part_shares.c.part_id == parts.c.id))
            .where(parts.c.id.in_(ids))
            .order_by(parts.c.id, part_shares.c.share_index)
        )
        current: PartShares | None = None
        for row in rows:
            if current is None or current.part_id != row.id:
                if current is not None:
                    yield current
                current = PartShares(row.id, row.object_id, row.layout, row.size)
            if row.state is not None:
                current.shares.append((row.node_id, row.state))
        if current is not None:
            yield current
        after = ids[-1]


async def count_objects(conn: AsyncConnection) -> int:
    """Object versions that hold data (delete markers are not objects)."""
    stmt = select(func.count()).select_from(objects).where(objects.c.delete_marker.is_(False))
    return int((await conn.execute(stmt)).scalar_one())
