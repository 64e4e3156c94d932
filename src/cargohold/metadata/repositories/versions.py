"""Versions of a key, and renames: the write rules that name one version or move one.

These build on the rules of :mod:`.objects` (which versions a put or a plain
delete keeps) and take the same locks: ``_lock_bucket`` keeps a bucket from
being deleted underneath, ``_lock_current`` serialises every writer of a key.
A rename locks two keys, always in (bucket id, key) order, so two renames in
opposite directions cannot deadlock (a put locks one key only).

Parts never move between versions here and no byte is copied: a deleted
version's parts are detached and handed back for the caller to queue for
deletion in the same transaction; a renamed version keeps its parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import ObjectRecord
from cargohold.domain.versions import DeleteMarkerNotRestorable, KeyExists, VersionCursor
from cargohold.metadata.listing import prefix_successor
from cargohold.metadata.repositories.object_listing import listed
from cargohold.metadata.repositories.objects import (
    _LISTED_COLUMNS,
    Deletion,
    _Current,
    _is_marker,
    _lock_bucket,
    _lock_current,
    _make_room,
    _remove,
    get_object,
    insert_marker,
)
from cargohold.metadata.tables import objects


@dataclass(frozen=True, slots=True)
class _Version:
    id: int
    is_latest: bool
    delete_marker: bool
    size: int


async def _find_version(conn: AsyncConnection, bucket_id: int, key: str, version_id: str) -> _Version | None:
    stmt = select(objects.c.id, objects.c.is_latest, objects.c.delete_marker, objects.c.size).where(
        objects.c.bucket_id == bucket_id, objects.c.key == key, objects.c.version_id == version_id
    )
    row = (await conn.execute(stmt)).first()
    return None if row is None else _Version(row.id, row.is_latest, row.delete_marker, row.size)


async def _newest(conn: AsyncConnection, bucket_id: int, key: str) -> tuple[int, str] | None:
    stmt = (
        select(objects.c.id, objects.c.version_id)
        .where(objects.c.bucket_id == bucket_id, objects.c.key == key)
        .order_by(objects.c.id.desc())
        .limit(1)
    )
    row = (await conn.execute(stmt)).first()
    return None if row is None else (row.id, row.version_id)


async def _set_latest(conn: AsyncConnection, object_id: int, latest: bool) -> None:
    await conn.execute(update(objects).where(objects.c.id == object_id).values(is_latest=latest))


async def delete_version(conn: AsyncConnection, bucket_id: int, key: str, version_id: str) -> Deletion | None:
    """Remove exactly one version (a delete marker too); ``None`` if the key has no such version.

    When it was the latest, the newest remaining version (by id) becomes the
    latest in this transaction; when none remains the key is gone. No marker
    is ever added: naming a version means "this one, permanently".
    """
    await _lock_bucket(conn, bucket_id)
    await _lock_current(conn, bucket_id, key)
    found = await _find_version(conn, bucket_id, key, version_id)
    if found is None:
        return None
    freed = await _remove(conn, found.id)
    if found.is_latest:
        newest = await _newest(conn, bucket_id, key)
        if newest is not None:
            await _set_latest(conn, newest[0], True)
    latest = await _latest_version_id(conn, bucket_id, key)
    return Deletion(freed, version_id, delete_marker=found.delete_marker, latest=latest, size=found.size)


async def _latest_version_id(conn: AsyncConnection, bucket_id: int, key: str) -> str | None:
    stmt = select(objects.c.version_id).where(
        objects.c.bucket_id == bucket_id, objects.c.key == key, objects.c.is_latest
    )
    return (await conn.execute(stmt)).scalar_one_or_none()


async def restore_version(
    conn: AsyncConnection, bucket_id: int, key: str, version_id: str
) -> ObjectRecord | None:
    """Make an existing version the latest again; ``None`` if the key has no such version.

    Metadata only: the former latest stays as a non-current version, no
    part moves. ``DeleteMarkerNotRestorable`` for a marker: a delete is
    undone by restoring a version below its marker, or deleting the marker.
    """
    await _lock_bucket(conn, bucket_id)
    current = await _lock_current(conn, bucket_id, key)
    found = await _find_version(conn, bucket_id, key, version_id)
    if found is None:
        return None
    if found.delete_marker:
        raise DeleteMarkerNotRestorable(
            f"version {version_id!r} of {key!r} is a delete marker", key=key, version_id=version_id
        )
    if not found.is_latest:
        if current.latest is not None:
            await _set_latest(conn, current.latest, False)  # first: one latest per key, always
        await _set_latest(conn, found.id, True)
    return await get_object(conn, bucket_id, key)


@dataclass(frozen=True, slots=True)
class Renamed:
    record: ObjectRecord  # the moved version at its new bucket and key
    freed: list[str]  # parts of a destination version the move replaced
    source_marker: str | None  # the delete marker left at the source, if versions remain there


async def rename_object(
    conn: AsyncConnection,
    src_bucket_id: int,
    src_key: str,
    dst_bucket_id: int,
    dst_key: str,
    *,
    overwrite: bool = False,
) -> Renamed | None:
    """Move the latest version of a key to another key (in this bucket or another), atomically.

    ``None`` when the source key does not exist or its latest is a marker.
    The version's row changes bucket and key and nothing else: same parts,
    same version id, no byte copied. The caller checks the two buckets share
    a layout.

    At the destination, a live latest version means ``KeyExists`` unless
    ``overwrite``; then it is retired by that bucket's write rules (kept as a
    non-current version when the bucket versions, else freed), exactly as
    a put would. At the source, versions that remain are hidden by a delete
    marker, so the key reads as deleted; with none left the key is gone.
    """
    source, target = (src_bucket_id, src_key), (dst_bucket_id, dst_key)
    versioned = {b: await _lock_bucket(conn, b) for b in sorted({src_bucket_id, dst_bucket_id})}
    current: dict[tuple[int, str], _Current] = {}
    for bucket_id, key in sorted({source, target}):
        current[(bucket_id, key)] = await _lock_current(conn, bucket_id, key)
    moving = current[source].latest
    if moving is None or await _is_marker(conn, moving):
        return None
    if source == target:
        return Renamed(await _get(conn, *target), [], None)
    dst = current[target]
    if dst.latest is not None and not overwrite and not await _is_marker(conn, dst.latest):
        raise KeyExists(
            f"object {dst_key!r} exists in the destination bucket", key=dst_key, bucket_id=dst_bucket_id
        )
    freed = await _make_room(conn, dst, versioned[dst_bucket_id])
    await conn.execute(
        update(objects)
        .where(objects.c.id == moving)
        .values(bucket_id=dst_bucket_id, key=dst_key, versioned=versioned[dst_bucket_id])
    )
    marker = None
    if await _newest(conn, *source) is not None:
        src = current[source]
        # A marker is the key's unversioned version unless one (non-current) is left already.
        keeps_null = src.unversioned is not None and src.unversioned != moving
        marker = await insert_marker(conn, *source, versioned[src_bucket_id] or keeps_null)
    return Renamed(await _get(conn, *target), freed, marker)


async def _get(conn: AsyncConnection, bucket_id: int, key: str) -> ObjectRecord:
    record = await get_object(conn, bucket_id, key)
    assert record is not None  # read in the transaction that wrote it, under the key's lock
    return record


async def list_versions(
    conn: AsyncConnection,
    bucket_id: int,
    *,
    key: str | None = None,
    prefix: str = "",
    limit: int = 1000,
    cursor: VersionCursor | None = None,
) -> tuple[list[ObjectRecord], VersionCursor | None]:
    """One page of versions, delete markers included: ``(versions, next_cursor)``.

    Of one ``key``, or of every key starting with ``prefix``. Keys ascend;
    within a key the latest comes first, then the others newest first (see
    :mod:`cargohold.domain.versions`). Records carry no parts or inline data.

    One range read of ``ix_objects_bucket_id_key_id`` from the cursor's key
    (``key >= cursor.key`` is the seek; the rest of the cursor only filters
    the versions of that one key), so a page deep in a bucket costs what the
    first one does.
    """
    stmt = select(*_LISTED_COLUMNS).where(objects.c.bucket_id == bucket_id)
    if key is not None:
        stmt = stmt.where(objects.c.key == key)
    elif prefix:
        stmt = stmt.where(objects.c.key >= prefix)
        upper = prefix_successor(prefix)
        if upper is not None:
            stmt = stmt.where(objects.c.key < upper)
    if cursor is not None:
        rest_of_key = objects.c.key == cursor.key
        if cursor.latest_id is not None:
            rest_of_key &= objects.c.id != cursor.latest_id
        if cursor.row_id != cursor.latest_id:
            rest_of_key &= objects.c.id < cursor.row_id
        stmt = stmt.where(objects.c.key >= cursor.key, (objects.c.key > cursor.key) | rest_of_key)
    stmt = stmt.order_by(objects.c.key, objects.c.is_latest.desc(), objects.c.id.desc()).limit(limit + 1)
    rows = (await conn.execute(stmt)).all()
    found = [listed(row) for row in rows[:limit]]
    if len(rows) <= limit:
        return found, None
    last = found[-1]
    latest = next((v.id for v in found if v.key == last.key and v.is_latest), None)
    if latest is None and cursor is not None and cursor.key == last.key:
        latest = cursor.latest_id
    return found, VersionCursor(last.key, last.id, latest)
