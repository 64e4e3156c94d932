"""Objects as a catalogue: deleting, listing, versions, restores and renames (metadata only).

Part of :class:`~cargohold.service.objects.ObjectService` (a base class of
it), kept apart so each module stays readable: nothing here reads or writes
a byte of an object. Freed parts are queued for deletion in the transaction
that frees them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.events import EventDraft, EventType
from cargohold.domain.jobs import DELETE_PART
from cargohold.domain.model import Bucket, ObjectRecord, Principal
from cargohold.domain.names import validate_key
from cargohold.domain.versions import (
    LayoutMismatch,
    NoSuchVersion,
    SameObject,
    VersionCursor,
    validate_version_id,
)
from cargohold.errors import InvalidArgument, NoSuchKey
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.access import AccessService, Level
from cargohold.service.quota import QuotaService


@dataclass(frozen=True, slots=True)
class Listing:
    objects: list[ObjectRecord]
    common_prefixes: list[str]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class VersionListing:
    versions: list[ObjectRecord]  # delete markers included; no parts, no inline data
    next_cursor: str | None


class CatalogOps:
    """The metadata-only half of the object service; ``ObjectService`` supplies what is declared here."""

    _db: Database
    _access: AccessService
    _quota: QuotaService

    async def find(self, bucket: Bucket, key: str, version_id: str | None = None) -> ObjectRecord:
        raise NotImplementedError

    def kick_gc(self) -> None:
        raise NotImplementedError

    # -- delete and list ------------------------------------------------------

    async def delete(
        self, who: Principal, bucket_name: str, key: str, version_id: str | None = None
    ) -> repo.Deletion:
        """Delete ``key`` by the bucket's rules (a marker when it versions), or exactly one version.

        Removing the latest version makes the newest remaining one the
        latest. Freed parts are queued for deletion in the same transaction.
        """
        bucket = await self._access.bucket(who, bucket_name, Level.WRITE)
        validate_key(key)
        if version_id is not None:
            validate_version_id(version_id)

        async def remove(conn):  # type: ignore[no-untyped-def]
            if version_id is None:
                deleted = await repo.delete_latest(conn, bucket.id, key)
                if deleted is None:
                    raise NoSuchKey(f"no object {key!r} in bucket {bucket_name!r}", key=key)
            else:
                deleted = await repo.delete_version(conn, bucket.id, key, version_id)
                if deleted is None:
                    raise no_such_version(bucket_name, key, version_id)
            await enqueue_deletions(conn, deleted.freed)
            await repo.events.append(
                conn,
                EventDraft(
                    EventType.OBJECT_DELETED,
                    who.user_id,
                    bucket=bucket.name,
                    bucket_id=bucket.id,
                    key=key,
                    version_id=deleted.version_id,
                    size=deleted.size,
                    detail={"delete_marker": deleted.delete_marker, "latest": deleted.latest},
                ),
            )
            return deleted

        deleted: repo.Deletion = await self._db.write(remove)
        if deleted.freed:
            self.kick_gc()
        return deleted

    # -- versions and renames ---------------------------------------------------

    async def versions(
        self,
        who: Principal,
        bucket_name: str,
        *,
        key: str | None = None,
        prefix: str = "",
        limit: int = 1000,
        cursor: str | None = None,
    ) -> VersionListing:
        """One page of the versions of ``key``, or of every key under ``prefix``."""
        bucket = await self._access.bucket(who, bucket_name, Level.READ)
        if key is not None:
            validate_key(key)
        if not 1 <= limit <= 1000:
            raise InvalidArgument("limit must be between 1 and 1000", field="limit")
        after = VersionCursor.resume(cursor) if cursor else None
        async with self._db.read() as conn:
            found, next_cursor = await repo.list_versions(
                conn, bucket.id, key=key, prefix=prefix, limit=limit, cursor=after
            )
        return VersionListing(found, next_cursor.encode() if next_cursor else None)

    async def restore(self, who: Principal, bucket_name: str, key: str, version_id: str) -> ObjectRecord:
        """Make an earlier version the latest again (metadata only; the former latest stays a version)."""
        bucket = await self._access.bucket(who, bucket_name, Level.WRITE)
        validate_key(key)
        validate_version_id(version_id)

        async def restore(conn):  # type: ignore[no-untyped-def]
            record = await repo.restore_version(conn, bucket.id, key, version_id)
            if record is None:
                raise no_such_version(bucket_name, key, version_id)
            await repo.events.append(
                conn,
                EventDraft(
                    EventType.OBJECT_RESTORED,
                    who.user_id,
                    bucket=bucket.name,
                    bucket_id=bucket.id,
                    key=key,
                    version_id=record.version_id,
                    size=record.size,
                    detail={"restored_from": version_id},
                ),
            )
            return record

        restored: ObjectRecord = await self._db.write(restore)
        return restored

    async def rename(
        self,
        who: Principal,
        bucket_name: str,
        key: str,
        to_key: str,
        *,
        to_bucket: str | None = None,
        overwrite: bool = False,
    ) -> repo.Renamed:
        """Move the latest version of ``key`` to ``to_key`` (in ``to_bucket``): metadata only, atomic.

        Needs write access to both buckets, and both must have one layout
        (parts stay where they are, so they must fit the destination's
        rules). See ``repositories.rename_object`` for what happens to the
        versions at either end.
        """
        source = await self._access.bucket(who, bucket_name, Level.WRITE)
        target = source
        if to_bucket is not None and to_bucket != bucket_name:
            target = await self._access.bucket(who, to_bucket, Level.WRITE)
        validate_key(key)
        validate_key(to_key)
        if source.id == target.id and key == to_key:
            raise SameObject(f"{key!r} would be renamed onto itself", field="to_key")
        if source.owner_id != target.owner_id:
            # The bytes change hands: the new owner's quota must hold them.
            await self._quota.admit(target, (await self.find(source, key)).size)
        if source.layout != target.layout:
            raise LayoutMismatch(
                f"bucket {source.name!r} stores {source.layout}, bucket {target.name!r} stores "
                f"{target.layout}: a rename moves no bytes, so the layouts must match",
                bucket=source.name,
                to_bucket=target.name,
            )

        async def move(conn):  # type: ignore[no-untyped-def]
            renamed = await repo.rename_object(conn, source.id, key, target.id, to_key, overwrite=overwrite)
            if renamed is None:
                raise NoSuchKey(f"no object {key!r} in bucket {bucket_name!r}", key=key)
            await enqueue_deletions(conn, renamed.freed)
            await repo.events.append(
                conn,
                EventDraft(
                    EventType.OBJECT_RENAMED,
                    who.user_id,
                    bucket=target.name,
                    bucket_id=target.id,
                    key=to_key,
                    version_id=renamed.record.version_id,
                    size=renamed.record.size,
                    detail={
                        "from_bucket": source.name,
                        "from_key": key,
                        "source_marker": renamed.source_marker,
                    },
                ),
            )
            return renamed

        renamed: repo.Renamed = await self._db.write(move)
        if renamed.freed:
            self.kick_gc()
        return renamed

    async def list_page(
        self, who: Principal, bucket_name: str, prefix: str, delimiter: str, limit: int, cursor: str | None
    ) -> Listing:
        bucket = await self._access.bucket(who, bucket_name, Level.READ)
        return await self.list_in(bucket, prefix, delimiter, limit, cursor)

    async def list_in(
        self,
        bucket: Bucket,
        prefix: str,
        delimiter: str,
        limit: int,
        cursor: str | None,
        *,
        max_delimiter: int = 1,
    ) -> Listing:
        """One listing page of a bucket already checked.

        The native API groups by one character; S3 lets a delimiter be any
        string (``max_delimiter``), which the listing handles alike.
        """
        if not 1 <= limit <= 1000:
            raise InvalidArgument("limit must be between 1 and 1000", field="limit")
        if len(delimiter) > max_delimiter:
            raise InvalidArgument(f"delimiter must be empty or at most {max_delimiter} character(s)")
        async with self._db.read() as conn:
            objects, prefixes, next_cursor = await repo.list_objects(
                conn, bucket.id, prefix, delimiter, limit, cursor
            )
        return Listing(objects, prefixes, next_cursor)


async def enqueue_deletions(conn: AsyncConnection, part_ids: list[str]) -> None:
    for part_id in part_ids:
        await repo.enqueue(conn, DELETE_PART, {"part_id": part_id})


def no_such_version(bucket_name: str, key: str, version_id: str) -> NoSuchVersion:
    return NoSuchVersion(
        f"object {key!r} in bucket {bucket_name!r} has no version {version_id!r}",
        key=key,
        version_id=version_id,
    )
