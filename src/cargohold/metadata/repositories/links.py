"""Parts shared by reference: a copy's version links its source's parts instead of owning copies.

Invariant: every live part has exactly one owner, a version (``parts.object_id``)
or an open upload, whatever the number of versions that link it. So gc, repair,
scrub and health, which know only owners, need nothing new: a part is freed
when its owner goes and no version links it; if one does, the version with the
lowest id takes it over in the same transaction (the part row gets that
version's part number and offset, and the link goes).

A copy links only parts that are live when its transaction commits: it locks
the part rows (``FOR UPDATE`` on PostgreSQL; SQLite's single writer already
serialises) and refuses (:class:`SourceChanged`) when one lost its owner
meanwhile, so a part being freed can never gain a link.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import PartRecord
from cargohold.errors import Conflict
from cargohold.metadata.repositories.parts import PART_COLUMNS, collect_parts
from cargohold.metadata.tables import part_links, part_shares, parts


class SourceChanged(Conflict):
    code = "source_changed"
    title = "The copy's source changed while it was copied"


async def add_links(
    conn: AsyncConnection, object_id: int, linked: Sequence[PartRecord], *, adopt: Collection[str] = ()
) -> None:
    """Make ``object_id`` use ``linked`` (part ids, with this version's numbers and offsets).

    ``adopt``: parts of the version this one just replaced (a copy onto its
    own key) that nothing else refers to: the new version owns them instead.
    """
    for part in linked:
        if part.id in adopt:
            await conn.execute(
                update(parts)
                .where(parts.c.id == part.id, parts.c.object_id.is_(None))
                .values(object_id=object_id, part_number=part.part_number, offset=part.offset)
            )
    linked = [p for p in linked if p.id not in adopt]
    if not linked:
        return
    ids = [p.id for p in linked]
    stmt = select(parts.c.id).where(parts.c.id.in_(ids), parts.c.object_id.is_not(None))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    live = set((await conn.execute(stmt)).scalars())
    if live != set(ids):
        raise SourceChanged("the source version was replaced or deleted during the copy")
    await conn.execute(
        insert(part_links),
        [
            {"object_id": object_id, "part_number": p.part_number, "part_id": p.id, "offset": p.offset}
            for p in linked
        ],
    )


async def linked_parts(conn: AsyncConnection, object_id: int) -> tuple[PartRecord, ...]:
    """The parts ``object_id`` links, with its own part numbers and offsets, and their shares."""
    rows = (
        await conn.execute(
            select(
                *PART_COLUMNS,
                part_links.c.part_number.label("l_number"),
                part_links.c.offset.label("l_offset"),
            )
            .select_from(
                part_links.join(parts, parts.c.id == part_links.c.part_id).outerjoin(
                    part_shares, part_shares.c.part_id == parts.c.id
                )
            )
            .where(part_links.c.object_id == object_id)
            .order_by(part_links.c.part_number, part_shares.c.share_index)
        )
    ).all()
    numbering = {row.p_id: (row.l_number, row.l_offset) for row in rows}
    return tuple(
        PartRecord(
            p.id, numbering[p.id][0], numbering[p.id][1], p.size, p.layout, p.block_size, p.etag, p.shares
        )
        for p in collect_parts(rows)
    )


async def release(conn: AsyncConnection, object_id: int, detached: list[str]) -> list[str]:
    """A version is being removed: drop its links and hand its ``detached`` parts on.

    Returns the parts nothing refers to any more (for the caller to queue
    for deletion in this transaction); the others now belong to the linking
    version with the lowest id.
    """
    await conn.execute(delete(part_links).where(part_links.c.object_id == object_id))
    if not detached:
        return []
    heirs = (
        await conn.execute(
            select(
                part_links.c.part_id, part_links.c.object_id, part_links.c.part_number, part_links.c.offset
            )
            .where(part_links.c.part_id.in_(detached))
            .order_by(part_links.c.part_id, part_links.c.object_id)
        )
    ).all()
    taken: dict[str, tuple[int, int, int]] = {}
    for row in heirs:
        taken.setdefault(row.part_id, (row.object_id, row.part_number, row.offset))
    for part_id, (heir, number, offset) in taken.items():
        await conn.execute(
            update(parts)
            .where(parts.c.id == part_id)
            .values(object_id=heir, part_number=number, offset=offset)
        )
        await conn.execute(
            delete(part_links).where(part_links.c.part_id == part_id, part_links.c.object_id == heir)
        )
    return [part_id for part_id in detached if part_id not in taken]
