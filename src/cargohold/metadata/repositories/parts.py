"""Share bookkeeping for parts: what repair, rebalance and gc read and change."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import PartRecord, ShareRecord
from cargohold.metadata.repositories._sql import chunks
from cargohold.metadata.tables import part_links, part_shares, parts


async def mark_share_missing(
    conn: AsyncConnection, part_id: str, index: int, node_id: int | None = None
) -> bool:
    """Record that share ``index`` of a part is lost or corrupt (repair will rebuild it).

    With ``node_id``, only while the share is still placed on that node: a
    reader that found a share gone from a node it was just moved or repaired
    away from must not mark the new copy missing. Returns False when nothing
    changed.
    """
    stmt = update(part_shares).where(part_shares.c.part_id == part_id, part_shares.c.share_index == index)
    if node_id is not None:
        stmt = stmt.where(part_shares.c.node_id == node_id)
    result = await conn.execute(stmt.values(state="missing"))
    return result.rowcount > 0


async def set_share(
    conn: AsyncConnection,
    part_id: str,
    index: int,
    node_id: int,
    state: str = "ok",
    *,
    expected_node: int | object | None = ...,
) -> bool:
    """Point share ``index`` of a part at ``node_id`` (after a repair or a move).

    Never makes a node hold two shares of one part: the change is refused
    when another healthy share of the part is already there (one node lost
    would then cost two shares); a sibling marked missing does not count, so
    two damaged shares may trade nodes in one repair. ``expected_node`` makes it a compare-and-set: the
    change happens only if the share is still placed where the caller found
    it (None: on no node), so two workers, or a worker and gc, can never both
    win. Returns False when the part has no such share, it moved meanwhile,
    or the node holds another of its shares.
    """
    # Lock the part's shares first (PostgreSQL), so two concurrent switches of one
    # part see each other; SQLite's single writer already serialises them.
    await conn.execute(
        select(part_shares.c.share_index).where(part_shares.c.part_id == part_id).with_for_update()
    )
    sibling = part_shares.alias("sibling")
    taken = (
        select(sibling.c.share_index)
        .where(
            sibling.c.part_id == part_id,
            sibling.c.node_id == node_id,
            sibling.c.share_index != index,
            # A share marked missing is not really there: its node may take another.
            sibling.c.state == "ok",
        )
        .exists()
    )
    stmt = update(part_shares).where(
        part_shares.c.part_id == part_id, part_shares.c.share_index == index, ~taken
    )
    if expected_node is None:
        stmt = stmt.where(part_shares.c.node_id.is_(None))
    elif expected_node is not ...:
        stmt = stmt.where(part_shares.c.node_id == expected_node)
    result = await conn.execute(stmt.values(node_id=node_id, state=state))
    return result.rowcount > 0


async def get_part(conn: AsyncConnection, part_id: str) -> PartRecord | None:
    """One part with its shares, whether committed, in an open upload or detached."""
    rows = (
        await conn.execute(
            select(*PART_COLUMNS)
            .select_from(parts.outerjoin(part_shares, part_shares.c.part_id == parts.c.id))
            .where(parts.c.id == part_id)
            .order_by(part_shares.c.share_index)
        )
    ).all()
    found = collect_parts(rows)
    return found[0] if found else None


async def parts_on_node(conn: AsyncConnection, node_id: int, after: str = "", limit: int = 500) -> list[str]:
    """Ids of parts with a share on ``node_id``, in id order after ``after`` (a cursor)."""
    rows = await conn.execute(
        select(part_shares.c.part_id)
        .where(part_shares.c.node_id == node_id, part_shares.c.part_id > after)
        .order_by(part_shares.c.part_id)
        .limit(limit)
    )
    return [row.part_id for row in rows]


async def known_shares(conn: AsyncConnection, node_id: int, part_ids: Sequence[str]) -> set[str]:
    """Of the given parts, the share ids ``{part}.{index}`` the metadata places on ``node_id``."""
    found: set[str] = set()
    for chunk in chunks(list(dict.fromkeys(part_ids))):
        rows = await conn.execute(
            select(part_shares.c.part_id, part_shares.c.share_index).where(
                part_shares.c.part_id.in_(chunk), part_shares.c.node_id == node_id
            )
        )
        found.update(f"{row.part_id}.{row.share_index}" for row in rows)
    return found


async def degraded_parts(conn: AsyncConnection, after: str = "", limit: int = 500) -> list[str]:
    """Ids of parts with at least one share marked missing, in id order after ``after``."""
    rows = await conn.execute(
        select(part_shares.c.part_id)
        .where(part_shares.c.state == "missing", part_shares.c.part_id > after)
        .group_by(part_shares.c.part_id)
        .order_by(part_shares.c.part_id)
        .limit(limit)
    )
    return [row.part_id for row in rows]


async def part_share_locations(
    conn: AsyncConnection, part_ids: Sequence[str]
) -> list[tuple[str, int, int | None]]:
    """Every share of the given parts as ``(part_id, share_index, node_id)``.

    What gc needs to delete share files ``{part_id}.{index}`` node by node.
    Shares marked missing are included: the node may still hold a bad copy.
    Ordered by part id, then index; unknown ids contribute nothing.
    """
    found: list[tuple[str, int, int | None]] = []
    for chunk in chunks(list(dict.fromkeys(part_ids))):
        rows = await conn.execute(
            select(part_shares.c.part_id, part_shares.c.share_index, part_shares.c.node_id)
            .where(part_shares.c.part_id.in_(chunk))
            .order_by(part_shares.c.part_id, part_shares.c.share_index)
        )
        found.extend((row.part_id, row.share_index, row.node_id) for row in rows)
    return sorted(found)


async def part_in_use(conn: AsyncConnection, part_id: str) -> bool:
    """Whether a version or an open upload still refers to the part (gc must then leave it)."""
    owned = select(parts.c.id).where(
        parts.c.id == part_id, parts.c.object_id.is_not(None) | parts.c.upload_id.is_not(None)
    )
    linked = select(part_links.c.part_id).where(part_links.c.part_id == part_id)
    return (await conn.execute(owned.union_all(linked).limit(1))).first() is not None


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


async def shares_of_parts(conn: AsyncConnection, part_ids: Sequence[str]) -> dict[str, list[ShareRecord]]:
    """The shares of each given part (parts with none, or unknown ids, are absent)."""
    found: dict[str, list[ShareRecord]] = {}
    for chunk in chunks(list(dict.fromkeys(part_ids))):
        rows = await conn.execute(
            select(
                part_shares.c.part_id, part_shares.c.share_index, part_shares.c.node_id, part_shares.c.state
            )
            .where(part_shares.c.part_id.in_(chunk))
            .order_by(part_shares.c.part_id, part_shares.c.share_index)
        )
        for row in rows:
            found.setdefault(row.part_id, []).append(ShareRecord(row.share_index, row.node_id, row.state))
    return found
