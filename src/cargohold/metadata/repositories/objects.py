"""Objects and the parts/shares that hold their bytes.

An object row is one visible version of a key. Replacing or deleting it
detaches its parts (``object_id`` set to NULL) and hands their ids back, so
the caller can enqueue their deletion in the *same* transaction: the share
files stay readable by anyone who already started a GET, and no part is ever
forgotten. Every version gets a fresh object id.

The rules for versions named by id (delete one, restore one) and for renames
live in :mod:`.versions`, on the same locks as the rules here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.conditions import WriteCondition
from cargohold.domain.model import ObjectRecord, PartRecord
from cargohold.errors import Conflict, NoSuchBucket
from cargohold.metadata.repositories import links
from cargohold.metadata.repositories._sql import insert_or_nothing
from cargohold.metadata.repositories.parts import PART_COLUMNS, collect_parts
from cargohold.metadata.tables import buckets, objects, part_shares, utcnow
from cargohold.metadata.tables import parts as part_rows

# What a listing reads, in the order ``object_listing.listed`` unpacks.
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
    objects.c.version_id,
    objects.c.is_latest,
    objects.c.delete_marker,
    objects.c.versioned,
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
        version_id=row.version_id,
        is_latest=row.is_latest,
        delete_marker=row.delete_marker,
        versioned=row.versioned,
        headers=dict(getattr(row, "headers", None) or {}),  # listings do not select it
    )


def new_version_id() -> str:
    """A fresh version id: 32 hex digits, random (ids never say when or how many)."""
    return uuid.uuid4().hex


def _object_query(which: ColumnElement[bool]) -> Select[Any]:
    return (
        select(objects, *PART_COLUMNS)
        .select_from(
            objects.outerjoin(part_rows, part_rows.c.object_id == objects.c.id).outerjoin(
                part_shares, part_shares.c.part_id == part_rows.c.id
            )
        )
        .where(objects.c.bucket_id == bindparam("o_bucket"), objects.c.key == bindparam("o_key"), which)
        .order_by(part_rows.c.part_number, part_rows.c.id, part_shares.c.share_index)
    )


# Built once: every GET runs one of them, and building a statement (and its cache key) each
# time cost more CPU than SQLite's answer.
_LATEST = _object_query(objects.c.is_latest)
_VERSION = _object_query(objects.c.version_id == bindparam("o_version"))


async def get_object(
    conn: AsyncConnection, bucket_id: int, key: str, version_id: str | None = None
) -> ObjectRecord | None:
    """The latest version of ``key`` (or ``version_id``) with its parts and shares, in one query.

    The latest version may be a delete marker; callers decide what that
    means. Parts come ordered by ``part_number``, shares by index.
    """
    params: dict[str, Any] = {"o_bucket": bucket_id, "o_key": key}
    if version_id is not None:
        params["o_version"] = version_id
    stmt = _LATEST if version_id is None else _VERSION
    rows = (await conn.execute(stmt, params)).all()
    if not rows:
        return None
    own = collect_parts(rows)
    if rows[0].inline_data is None and sum(p.size for p in own) < rows[0].size:
        # The rest is linked (a copy made by reference): a second read, only for such versions.
        shared = await links.linked_parts(conn, rows[0].id)
        own = tuple(sorted((*own, *shared), key=lambda p: p.part_number))
    return _object(rows[0], with_inline=True, with_parts=own)


async def _detach(conn: AsyncConnection, object_id: int) -> list[str]:
    """Unlink an object's parts from it; returns their ids."""
    result = await conn.execute(
        update(part_rows)
        .where(part_rows.c.object_id == object_id)
        .values(object_id=None)
        .returning(part_rows.c.id)
    )
    return sorted(result.scalars())


async def _lock_bucket(conn: AsyncConnection, bucket_id: int) -> bool:
    """``NoSuchBucket`` unless the bucket exists, and keep it from being deleted.

    Returns whether versioning is on, read in this transaction: a bucket's
    versioning state is never taken from a cache.

    ``FOR KEY SHARE`` (PostgreSQL) blocks a concurrent ``delete_bucket`` but no
    other writer; without it a racing delete would surface here as a foreign
    key violation that aborts the caller's transaction.
    """
    stmt = select(buckets.c.versioning).where(buckets.c.id == bucket_id)
    found = (await conn.execute(stmt.with_for_update(read=True, key_share=True))).first()
    if found is None:
        raise NoSuchBucket(f"bucket {bucket_id} does not exist", bucket_id=bucket_id)
    return bool(found.versioning == "enabled")


@dataclass(frozen=True, slots=True)
class _Current:
    latest: int | None  # id of the latest version (perhaps a delete marker)
    unversioned: int | None  # id of the key's unversioned ("null") version, if any


async def _lock_current(conn: AsyncConnection, bucket_id: int, key: str) -> _Current:
    """Serialise writers of one key, then return its latest and its unversioned version.

    A row lock alone cannot do it on PostgreSQL: every replace deletes the
    row it locked, so a waiter wakes up to find nothing and races the next
    insert. A transaction-scoped advisory lock on (bucket, hash of key) does
    not go away; after it is granted, READ COMMITTED sees the latest version.
    (A hash collision only serialises two unrelated keys.) SQLite needs
    neither: its single writer already serialises.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(bucket_id, func.hashtext(key))))
    stmt = select(objects.c.id, objects.c.is_latest).where(
        objects.c.bucket_id == bucket_id,
        objects.c.key == key,
        objects.c.is_latest | ~objects.c.versioned,
    )
    latest = unversioned = None
    for row in await conn.execute(stmt.add_columns(objects.c.versioned)):
        if row.is_latest:
            latest = row.id
        if not row.versioned:
            unversioned = row.id
    return _Current(latest, unversioned)


async def _make_room(conn: AsyncConnection, current: _Current, versioned: bool) -> list[str]:
    """Retire the latest version so a new one can take its place; returns freed part ids.

    With versioning on, the latest stays as a non-current version. Otherwise
    the unversioned version is replaced (its parts freed) and a versioned
    latest, kept from when versioning was on, becomes non-current.
    """
    freed: list[str] = []
    removed = None
    if not versioned and current.unversioned is not None:
        freed = await _remove(conn, current.unversioned)
        removed = current.unversioned
    if current.latest is not None and current.latest != removed:
        await conn.execute(update(objects).where(objects.c.id == current.latest).values(is_latest=False))
    return freed


async def _remove(conn: AsyncConnection, object_id: int) -> list[str]:
    """Delete one version row; returns its (now detached) part ids."""
    freed = await links.release(conn, object_id, await _detach(conn, object_id))
    await conn.execute(delete(objects).where(objects.c.id == object_id))
    return freed


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
    linked: Sequence[PartRecord] = (),
    headers: dict[str, str] | None = None,
    condition: WriteCondition | None = None,
) -> tuple[ObjectRecord, list[str]]:
    """Make a new version of ``key`` the latest.

    With the bucket's versioning on, the previous latest stays as a version;
    otherwise the key's unversioned version is replaced (see ``_make_room``).

    ``parts`` are inserted; ``attach`` are parts already stored by an upload
    session, which move to the new object with the offsets given (no bytes
    are copied, so completing an upload of any size is this one statement).
    ``linked`` are parts of another version the new one shares, under its
    own numbers and offsets (a copy by reference, see :mod:`.links`).

    Inserts the object row, its parts and their shares. Returns the new
    record and the ids of the replaced version's parts (now detached), which
    the caller must enqueue for deletion in the same transaction.

    ``headers`` are stored with the version and returned with it. A
    ``condition`` (If-Match / If-None-Match on a write) is checked against
    the key's latest version under the key's lock, so two conditional
    writers cannot both win.

    ``NoSuchBucket`` if the bucket is gone. Concurrent writers of one key
    are serialised (see ``_lock_current``); the insert still uses ``ON
    CONFLICT DO NOTHING`` and retries, so a writer that bypassed the lock
    costs a retry, not an error.
    """
    now = utcnow()
    replaced: list[str] = []
    adopt: set[str] = set()
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
        "version_id": new_version_id(),
        "is_latest": True,
        "delete_marker": False,
        "headers": headers or None,
    }
    versioned = await _lock_bucket(conn, bucket_id)
    values["versioned"] = versioned
    for _ in range(_PUT_RETRIES):
        current = await _lock_current(conn, bucket_id, key)
        if condition is not None:
            condition.check(await _live_etag(conn, current.latest), key)
        replaced += await _make_room(conn, current, versioned)
        # A copy onto the key it replaces: the parts it links are the ones just released.
        adopt = {p.id for p in linked}.intersection(replaced)
        replaced = [part_id for part_id in replaced if part_id not in adopt]
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
    if linked:
        await links.add_links(conn, new_id, linked, adopt=adopt)
    ordered = tuple(sorted([*parts, *attach, *linked], key=lambda p: p.part_number))
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
        version_id=str(values["version_id"]),
        versioned=versioned,
        headers=dict(headers or {}),
    )
    return record, sorted(replaced)


async def _live_etag(conn: AsyncConnection, latest: int | None) -> str | None:
    """The ETag of the key's latest version, or None when there is none or it is a delete marker."""
    if latest is None:
        return None
    stmt = select(objects.c.etag, objects.c.delete_marker).where(objects.c.id == latest)
    row = (await conn.execute(stmt)).one()
    return None if row.delete_marker else str(row.etag)


@dataclass(frozen=True, slots=True)
class Deletion:
    """What a delete changed; ``freed`` parts must be queued for deletion in the same transaction."""

    freed: list[str]
    version_id: str  # the delete marker added, or else the version removed
    delete_marker: bool  # ``version_id`` names a delete marker
    latest: str | None = None  # the key's latest version afterwards (None: the key is gone)
    size: int = 0  # bytes in the version removed or hidden


async def delete_object(conn: AsyncConnection, bucket_id: int, key: str) -> list[str] | None:
    """Delete ``key`` as a plain DELETE does; the freed part ids, or ``None`` (see ``delete_latest``)."""
    deleted = await delete_latest(conn, bucket_id, key)
    return None if deleted is None else deleted.freed


async def delete_latest(conn: AsyncConnection, bucket_id: int, key: str) -> Deletion | None:
    """Delete ``key`` as a plain DELETE does (no version named).

    Without versioning ever used on the key, its one version is removed.
    With versioning on, a delete marker becomes the latest and every version
    stays. With it suspended, the unversioned version is removed and a
    marker hides the versions that remain.

    ``None`` when the key does not exist (or is already deleted: its latest
    is a marker).
    """
    versioned = await _lock_bucket(conn, bucket_id)
    current = await _lock_current(conn, bucket_id, key)
    if current.latest is None or await _is_marker(conn, current.latest):
        return None
    removed, size = await _version_and_size(conn, current.latest)
    freed = await _make_room(conn, current, versioned)
    remaining = select(objects.c.id).where(objects.c.bucket_id == bucket_id, objects.c.key == key).limit(1)
    if not versioned and (await conn.execute(remaining)).first() is None:
        return Deletion(freed, removed, delete_marker=False, size=size)
    marker = await insert_marker(conn, bucket_id, key, versioned)
    return Deletion(freed, marker, delete_marker=True, latest=marker, size=size)


async def insert_marker(conn: AsyncConnection, bucket_id: int, key: str, versioned: bool) -> str:
    """Add a delete marker as the key's latest version (the caller retired the old latest)."""
    version_id = new_version_id()
    await conn.execute(
        insert(objects).values(
            bucket_id=bucket_id,
            key=key,
            size=0,
            etag="",
            content_type="",
            created_at=utcnow(),
            version_id=version_id,
            is_latest=True,
            delete_marker=True,
            versioned=versioned,
        )
    )
    return version_id


async def _version_and_size(conn: AsyncConnection, object_id: int) -> tuple[str, int]:
    stmt = select(objects.c.version_id, objects.c.size).where(objects.c.id == object_id)
    row = (await conn.execute(stmt)).one()
    return str(row.version_id), int(row.size)


async def _is_marker(conn: AsyncConnection, object_id: int) -> bool:
    stmt = select(objects.c.delete_marker).where(objects.c.id == object_id)
    return bool((await conn.execute(stmt)).scalar_one())
