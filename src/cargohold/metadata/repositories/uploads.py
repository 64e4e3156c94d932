"""Upload sessions and the parts they hold until completion."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import PartRecord
from cargohold.domain.uploads import OPEN_STATES, Upload
from cargohold.metadata.repositories._sql import chunks
from cargohold.metadata.repositories.parts import PART_COLUMNS, collect_parts
from cargohold.metadata.tables import buckets, part_shares, parts, uploads, utcnow


def _upload(row: Row, found: tuple[PartRecord, ...]) -> Upload:
    return Upload(
        id=row.id,
        bucket_id=row.bucket_id,
        bucket=row.bucket_name,
        key=row.key,
        status=row.status,
        protocol=row.protocol,
        content_type=row.content_type,
        total_size=row.total_size,
        part_size=row.part_size,
        expected_md5=row.expected_md5,
        expected_sha256=row.expected_sha256,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        metadata=dict(row.metadata or {}),
        concat=row.concat,
        error=row.error,
        parts=found,
        headers=dict(row.headers or {}),
        owner=row.owner,
    )


async def create_upload(conn: AsyncConnection, upload: Upload, owner: str | None = None) -> None:
    await conn.execute(
        insert(uploads).values(
            id=upload.id,
            bucket_id=upload.bucket_id,
            key=upload.key,
            status=upload.status,
            protocol=upload.protocol,
            content_type=upload.content_type,
            total_size=upload.total_size,
            part_size=upload.part_size,
            expected_md5=upload.expected_md5,
            expected_sha256=upload.expected_sha256,
            metadata=upload.metadata,
            concat=upload.concat,
            owner=owner,
            created_at=upload.created_at,
            updated_at=upload.updated_at,
            expires_at=upload.expires_at,
            headers=upload.headers or None,
        )
    )


async def get_upload(
    conn: AsyncConnection, upload_id: str, *, for_update: bool = False, with_parts: bool = True
) -> Upload | None:
    """An upload with its current parts (ordered by part number) and their shares.

    ``for_update`` locks the row on PostgreSQL, serialising the writers of
    one upload (SQLite's single writer does that already). ``with_parts=False``
    skips the parts: storing part n of an upload with thousands must not
    read them all.
    """
    head = select(uploads, buckets.c.name.label("bucket_name")).join(
        buckets, buckets.c.id == uploads.c.bucket_id, isouter=True
    )
    head = head.where(uploads.c.id == upload_id)
    if for_update and conn.dialect.name == "postgresql":
        head = head.with_for_update(of=uploads)
    row = (await conn.execute(head)).first()
    if row is None:
        return None
    if not with_parts:
        return _upload(row, ())
    part_rows = (
        await conn.execute(
            select(*PART_COLUMNS)
            .select_from(parts.outerjoin(part_shares, part_shares.c.part_id == parts.c.id))
            .where(parts.c.upload_id == upload_id)
            .order_by(parts.c.part_number, parts.c.id, part_shares.c.share_index)
        )
    ).all()
    return _upload(row, collect_parts(part_rows))


async def list_uploads(
    conn: AsyncConnection, bucket_id: int | None = None, limit: int = 1000
) -> list[Upload]:
    """Open uploads (PENDING or LOADING), oldest first, with their parts but not the shares."""
    stmt = (
        select(uploads, buckets.c.name.label("bucket_name"))
        .join(buckets, buckets.c.id == uploads.c.bucket_id, isouter=True)
        .where(uploads.c.status.in_(sorted(OPEN_STATES)))
        .order_by(uploads.c.created_at, uploads.c.id)
        .limit(limit)
    )
    if bucket_id is not None:
        stmt = stmt.where(uploads.c.bucket_id == bucket_id)
    rows = (await conn.execute(stmt)).all()
    sizes: dict[str, list[PartRecord]] = {row.id: [] for row in rows}
    for chunk in chunks(list(sizes)):
        found = await conn.execute(
            select(parts.c.upload_id, *PART_COLUMNS[:7])
            .where(parts.c.upload_id.in_(chunk))
            .order_by(parts.c.upload_id, parts.c.part_number)
        )
        for part in found:
            sizes[part.upload_id].append(
                PartRecord(
                    part.p_id,
                    part.p_number,
                    part.p_offset,
                    part.p_size,
                    part.p_layout,
                    part.p_block_size,
                    part.p_etag,
                )
            )
    return [_upload(row, tuple(sizes[row.id])) for row in rows]


async def update_upload(
    conn: AsyncConnection, upload_id: str, *, only_if_status: str | None = None, **values: Any
) -> bool:
    """Change columns of an upload (status, expiry, size...); ``updated_at`` follows.

    ``only_if_status``: change it only while it has that status (a compare-and-set: a caller
    holding an old copy must not undo a change made since, such as an abort). Returns whether
    a row changed.
    """
    values.setdefault("updated_at", utcnow())
    statement = update(uploads).where(uploads.c.id == upload_id)
    if only_if_status is not None:
        statement = statement.where(uploads.c.status == only_if_status)
    result = await conn.execute(statement.values(**values))
    return bool(result.rowcount)


async def add_part(conn: AsyncConnection, upload_id: str, part: PartRecord) -> list[str]:
    """Store a part of an upload, replacing a part of the same number.

    Returns the ids of replaced parts, now detached, for the caller to queue
    for deletion in the same transaction.
    """
    replaced = await conn.execute(
        update(parts)
        .where(parts.c.upload_id == upload_id, parts.c.part_number == part.part_number)
        .values(upload_id=None)
        .returning(parts.c.id)
    )
    old = list(replaced.scalars())
    await conn.execute(
        insert(parts).values(
            id=part.id,
            object_id=None,
            upload_id=upload_id,
            part_number=part.part_number,
            offset=part.offset,
            size=part.size,
            layout=part.layout,
            block_size=part.block_size,
            etag=part.etag,
            created_at=utcnow(),
        )
    )
    if part.shares:
        await conn.execute(
            insert(part_shares),
            [
                {"part_id": part.id, "share_index": s.index, "node_id": s.node_id, "state": s.state}
                for s in part.shares
            ],
        )
    return old


async def grow_part(conn: AsyncConnection, upload_id: str, part: PartRecord) -> bool:
    """Record the new size and etag of an upload's part that grew by an append.

    Shares the append could not reach are marked missing (repair rebuilds
    them). False when the part is no longer the upload's.
    """
    result = await conn.execute(
        update(parts)
        .where(parts.c.id == part.id, parts.c.upload_id == upload_id)
        .values(size=part.size, etag=part.etag)
    )
    if result.rowcount != 1:
        return False
    for share in part.shares:
        if share.state != "ok":
            await conn.execute(
                update(part_shares)
                .where(part_shares.c.part_id == part.id, part_shares.c.share_index == share.index)
                .values(state=share.state)
            )
    return True


async def release_parts(conn: AsyncConnection, upload_id: str) -> list[str]:
    """Detach every part of an upload (abort, expiry); returns their ids for gc."""
    result = await conn.execute(
        update(parts).where(parts.c.upload_id == upload_id).values(upload_id=None).returning(parts.c.id)
    )
    return sorted(result.scalars())


async def expired_uploads(conn: AsyncConnection, now: datetime, limit: int = 100) -> list[str]:
    """Ids of open uploads whose expiry has passed."""
    rows = await conn.execute(
        select(uploads.c.id)
        .where(uploads.c.status.in_(sorted(OPEN_STATES)), uploads.c.expires_at <= now)
        .order_by(uploads.c.expires_at)
        .limit(limit)
    )
    return list(rows.scalars())


async def move_part(conn: AsyncConnection, part_id: str, upload_id: str, part_number: int) -> None:
    """Give a stored part to another upload under a new number (tus concatenation)."""
    await conn.execute(
        update(parts).where(parts.c.id == part_id).values(upload_id=upload_id, part_number=part_number)
    )


async def bytes_received(conn: AsyncConnection, upload_id: str) -> int:
    """Bytes in the parts an upload holds now (one indexed sum, without loading the parts)."""
    stmt = select(func.coalesce(func.sum(parts.c.size), 0)).where(parts.c.upload_id == upload_id)
    return int((await conn.execute(stmt)).scalar_one())
