"""Objects and the parts/shares that hold their bytes.

An object row is one visible version of a key. Replacing or deleting it
detaches its parts (``object_id`` set to NULL) and hands their ids back, so
the caller can enqueue their deletion in the *same* transaction: the share
files stay readable by anyone who already started a GET, and no part is ever
forgotten. Every version gets a fresh object id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import ObjectRecord, PartRecord
from cargohold.errors import Conflict, NoSuchBucket
from cargohold.metadata.listing import Lister, Step
from cargohold.metadata.repositories._sql import insert_or_nothing
from cargohold.metadata.repositories.parts import PART_COLUMNS, collect_parts
from cargohold.metadata.tables import buckets, objects, part_shares, utcnow
from cargohold.metadata.tables import parts as part_rows

_LISTED_COLUMNS = (
    objects.c.id,
    objects.c.bucket_id,
    objects.c.key,
    objects.c.size,
    objects.c.etag,
    objects.c.content_type,
    objects.c.md5,
    objects.c.sha256,
    objects.c.created_at,
)
_PUT_RETRIES = 10


def _object(row: Row, *, with_inline: bool, with_parts: tuple[PartRecord, ...] = ()) -> ObjectRecord:
    return ObjectRecord(
        id=row.id,
        bucket_id=row.bucket_id,
        key=row.key,
        size=row.size,
        etag=row.etag,
        content_type=row.content_type,
        created_at=row.created_at,
        md5=row.md5,
        sha256=row.sha256,
        inline_data=row.inline_data if with_inline else None,
        parts=with_parts,
    )


async def get_object(conn: AsyncConnection, bucket_id: int, key: str) -> ObjectRecord | None:
    """The current version of ``key`` with its parts and shares, in one query.

    Parts come ordered by ``part_number``, shares by index.
    """
    stmt = (
        select(objects, *PART_COLUMNS)
        .select_from(
            objects.outerjoin(part_rows, part_rows.c.object_id == objects.c.id).outerjoin(
                part_shares, part_shares.c.part_id == part_rows.c.id
            )
        )
        .where(objects.c.bucket_id == bucket_id, objects.c.key == key)
        .order_by(part_rows.c.part_number, part_rows.c.id, part_shares.c.share_index)
    )
    rows = (await conn.execute(stmt)).all()
    if not rows:
        return None
    return _object(rows[0], with_inline=True, with_parts=collect_parts(rows))


async def _detach(conn: AsyncConnection, object_id: int) -> list[str]:
    """Unlink an object's parts from it; returns their ids."""
    result = await conn.execute(
        update(part_rows)
        .where(part_rows.c.object_id == object_id)
        .values(object_id=None)
        .returning(part_rows.c.id)
    )
    return sorted(result.scalars())


async def _lock_bucket(conn: AsyncConnection, bucket_id: int) -> None:
    """``NoSuchBucket`` unless the bucket exists, and keep it from being deleted.

    ``FOR KEY SHARE`` (PostgreSQL) blocks a concurrent ``delete_bucket`` but no
    other writer; without it a racing delete would surface here as a foreign
    key violation that aborts the caller's transaction.
    """
    stmt = select(buckets.c.id).where(buckets.c.id == bucket_id)
    found = await conn.execute(stmt.with_for_update(read=True, key_share=True))
    if found.first() is None:
        raise NoSuchBucket(f"bucket {bucket_id} does not exist", bucket_id=bucket_id)


async def _lock_current(conn: AsyncConnection, bucket_id: int, key: str) -> int | None:
    """Serialise writers of one key, then return the id of its current version.

    A row lock alone cannot do it on PostgreSQL: every replace deletes the
    row it locked, so a waiter wakes up to find nothing and races the next
    insert. A transaction-scoped advisory lock on (bucket, hash of key) does
    not go away; after it is granted, READ COMMITTED sees the latest version.
    (A hash collision only serialises two unrelated keys.) SQLite needs
    neither: its single writer already serialises.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(bucket_id, func.hashtext(key))))
    stmt = select(objects.c.id).where(objects.c.bucket_id == bucket_id, objects.c.key == key)
    return (await conn.execute(stmt)).scalar_one_or_none()


async def put_object(
    conn: AsyncConnection,
    bucket_id: int,
    key: str,
    size: int,
    etag: str,
    content_type: str,
    md5: str | None = None,
    sha256: str | None = None,
    inline_data: bytes | None = None,
    parts: Sequence[PartRecord] = (),
    attach: Sequence[PartRecord] = (),
) -> tuple[ObjectRecord, list[str]]:
    """Make a new version of ``key`` visible, replacing the current one if any.

    ``parts`` are inserted; ``attach`` are parts already stored by an upload
    session, which move to the new object with the offsets given (no bytes
    are copied, so completing an upload of any size is this one statement).

    Inserts the object row, its parts and their shares. Returns the new
    record and the ids of the replaced version's parts (now detached), which
    the caller must enqueue for deletion in the same transaction.

    ``NoSuchBucket`` if the bucket is gone. Concurrent writers of one key
    are serialised (see ``_lock_current``); the insert still uses ``ON
    CONFLICT DO NOTHING`` and retries, so a writer that bypassed the lock
    costs a retry, not an error.
    """
    now = utcnow()
    replaced: list[str] = []
    values = {
        "bucket_id": bucket_id,
        "key": key,
        "size": size,
        "etag": etag,
        "content_type": content_type,
        "md5": md5,
        "sha256": sha256,
        "inline_data": inline_data,
        "created_at": now,
    }
    await _lock_bucket(conn, bucket_id)
    for _ in range(_PUT_RETRIES):
        old_id = await _lock_current(conn, bucket_id, key)
        if old_id is not None:
            replaced += await _detach(conn, old_id)
            await conn.execute(delete(objects).where(objects.c.id == old_id))
        inserted = await conn.execute(insert_or_nothing(conn, objects, values).returning(objects.c.id))
        new_id = inserted.scalar_one_or_none()
        if new_id is not None:
            break
    else:
        raise Conflict(f"too many concurrent writes to {key!r}", key=key)

    if attach:
        await conn.execute(
            update(part_rows)
            .where(part_rows.c.id == bindparam("b_id"))
            .values(object_id=new_id, offset=bindparam("b_offset"), upload_id=None),
            [{"b_id": p.id, "b_offset": p.offset} for p in attach],
        )
    ordered = tuple(sorted([*parts, *attach], key=lambda p: p.part_number))
    if parts:
        await conn.execute(
            insert(part_rows),
            [
                {
                    "id": p.id,
                    "object_id": new_id,
                    "part_number": p.part_number,
                    "offset": p.offset,
                    "size": p.size,
                    "layout": p.layout,
                    "block_size": p.block_size,
                    "etag": p.etag,
                    "created_at": now,
                }
                for p in parts
            ],
        )
        share_rows = [
            {"part_id": p.id, "share_index": s.index, "node_id": s.node_id, "state": s.state}
            for p in parts
            for s in p.shares
        ]
        if share_rows:
            await conn.execute(insert(part_shares), share_rows)
    record = ObjectRecord(
        id=new_id,
        bucket_id=bucket_id,
        key=key,
        size=size,
        etag=etag,
        content_type=content_type,
        created_at=now,
        md5=md5,
        sha256=sha256,
        inline_data=inline_data,
        parts=tuple(replace(p, shares=tuple(sorted(p.shares, key=lambda s: s.index))) for p in ordered),
    )
    return record, sorted(replaced)


async def delete_object(conn: AsyncConnection, bucket_id: int, key: str) -> list[str] | None:
    """Remove the current version of ``key``.

    Returns the ids of its (now detached) parts for the caller to enqueue for
    deletion, or ``None`` when the key does not exist.
    """
    object_id = await _lock_current(conn, bucket_id, key)
    if object_id is None:
        return None
    freed = await _detach(conn, object_id)
    await conn.execute(delete(objects).where(objects.c.id == object_id))
    return freed


async def list_objects(
    conn: AsyncConnection,
    bucket_id: int,
    prefix: str = "",
    delimiter: str | None = None,
    limit: int = 1000,
    cursor: str | None = None,
) -> tuple[list[ObjectRecord], list[str], str | None]:
    """One page of an S3-style listing: ``(objects, common_prefixes, next_cursor)``.

    Grouping and pagination rules are in :mod:`cargohold.metadata.listing`.
    Records carry no parts and no inline data (a listing never needs bytes).
    Each read is an index range scan on ``(bucket_id, key)``; a common prefix
    is skipped with one seek, however many keys it holds.
    """
    lister = Lister(prefix, delimiter, limit, cursor)
    found: list[ObjectRecord] = []
    while not lister.done:
        pos = lister.position
        lower = objects.c.key >= pos.key if pos.inclusive else objects.c.key > pos.key
        stmt = select(*_LISTED_COLUMNS).where(objects.c.bucket_id == bucket_id, lower)
        if lister.upper is not None:
            stmt = stmt.where(objects.c.key < lister.upper)
        want = lister.wanted()
        rows = (await conn.execute(stmt.order_by(objects.c.key).limit(want))).all()
        for row in rows:
            step = lister.feed(row.key)
            if step is Step.OBJECT:
                found.append(_object(row, with_inline=False))
            elif step in (Step.SKIP, Step.STOP):
                break
        else:
            if len(rows) < want:
                lister.exhausted()
    return found, lister.prefixes, lister.next_cursor
