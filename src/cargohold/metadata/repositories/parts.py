"""Share bookkeeping for parts: what repair, rebalance and gc read and change."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import PartRecord, ShareRecord
from cargohold.metadata.repositories._sql import chunks
from cargohold.metadata.tables import part_shares, parts


async def mark_share_missing(conn: AsyncConnection, part_id: str, index: int) -> bool:
    """Record that share ``index`` of a part is lost or corrupt (repair will rebuild it).

    Returns False when the part has no such share.
    """
    result = await conn.execute(
        update(part_shares)
        .where(part_shares.c.part_id == part_id, part_shares.c.share_index == index)
        .values(state="missing")
    )
    return result.rowcount > 0


async def set_share(conn: AsyncConnection, part_id: str, index: int, node_id: int, state: str = "ok") -> bool:
    """Point share ``index`` of a part at ``node_id`` (after a repair or a move).

    Returns False when the part has no such share.
    """
    result = await conn.execute(
        update(part_shares)
        .where(part_shares.c.part_id == part_id, part_shares.c.share_index == index)
        .values(node_id=node_id, state=state)
    )
    return result.rowcount > 0


async def part_share_locations(conn: AsyncConnection, part_ids: Sequence[str]) -> list[tuple[str, int, int]]:
    """Every share of the given parts as ``(part_id, share_index, node_id)``.

    What gc needs to delete share files ``{part_id}.{index}`` node by node.
    Shares marked missing are included: the node may still hold a bad copy.
    Ordered by part id, then index; unknown ids contribute nothing.
    """
    found: list[tuple[str, int, int]] = []
    for chunk in chunks(list(dict.fromkeys(part_ids))):
        rows = await conn.execute(
            select(part_shares.c.part_id, part_shares.c.share_index, part_shares.c.node_id)
            .where(part_shares.c.part_id.in_(chunk))
            .order_by(part_shares.c.part_id, part_shares.c.share_index)
        )
        found.extend((row.part_id, row.share_index, row.node_id) for row in rows)
    return sorted(found)


async def delete_parts(conn: AsyncConnection, part_ids: Sequence[str]) -> int:
    """Forget detached parts (gc calls this once their share files are gone).

    Parts still attached to an object or an open upload are never deleted, whatever the caller
    passes: a stale gc job cannot remove live data. Shares go by cascade.
    """
    deleted = 0
    for chunk in chunks(list(dict.fromkeys(part_ids))):
        result = await conn.execute(
            delete(parts).where(
                parts.c.id.in_(chunk), parts.c.object_id.is_(None), parts.c.upload_id.is_(None)
            )
        )
        deleted += result.rowcount
    return deleted


#: Columns to select beside ``parts``/``part_shares`` joins so :func:`collect_parts` can read them.
PART_COLUMNS = (
    parts.c.id.label("p_id"),
    parts.c.part_number.label("p_number"),
    parts.c.offset.label("p_offset"),
    parts.c.size.label("p_size"),
    parts.c.layout.label("p_layout"),
    parts.c.block_size.label("p_block_size"),
    parts.c.etag.label("p_etag"),
    part_shares.c.share_index.label("s_index"),
    part_shares.c.node_id.label("s_node"),
    part_shares.c.state.label("s_state"),
)


def collect_parts(rows: Sequence[Row]) -> tuple[PartRecord, ...]:
    """Fold joined part/share rows (ordered by part, then share index) into records."""
    found: list[PartRecord] = []
    shares: list[ShareRecord] = []
    for i, row in enumerate(rows):
        if row.p_id is None:
            continue
        if row.s_index is not None:
            shares.append(ShareRecord(index=row.s_index, node_id=row.s_node, state=row.s_state))
        if i + 1 == len(rows) or rows[i + 1].p_id != row.p_id:
            found.append(
                PartRecord(
                    id=row.p_id,
                    part_number=row.p_number,
                    offset=row.p_offset,
                    size=row.p_size,
                    layout=row.p_layout,
                    block_size=row.p_block_size,
                    etag=row.p_etag,
                    shares=tuple(shares),
                )
            )
            shares = []
    return tuple(found)
