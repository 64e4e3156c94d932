"""Upload sessions: one state machine behind sessions with parts, Content-Range chunks and tus.

Every part is streamed straight into erasure-coded shares (never staged on the
gateway) and recorded against its upload in one transaction. Completion moves
the parts to a new object version in one transaction: no byte is copied, so
completing a 100 GiB upload costs what completing a 1 MiB one does. The only
exception is a whole-file md5/sha256 the client asked us to verify: that needs
the bytes, so completion reads the parts back once, before committing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.concurrency import run_cpu
from cargohold.config import Settings
from cargohold.domain import uploads as sm
from cargohold.domain.digests import native_etag
from cargohold.domain.events import EventDraft, EventType
from cargohold.domain.jobs import DELETE_PART
from cargohold.domain.layout import Layout
from cargohold.domain.model import ObjectRecord, PartRecord, Principal
from cargohold.domain.names import validate_key
from cargohold.domain.uploads import Upload
from cargohold.errors import NoSuchBucket, NotFound, PayloadTooLarge
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.access import AccessService, Level
from cargohold.service.appends import Appended
from cargohold.service.buckets import BucketService
from cargohold.service.checksums import ExpectedDigests
from cargohold.service.objects import Chunk, ObjectService, object_created
from cargohold.service.quota import QuotaService, quota_exceeded

log = logging.getLogger(__name__)

EXPIRED = "expired"
#: ``upload.progress`` events: at most one per upload per PROGRESS_SECONDS, or per PROGRESS_STEP
#: percent of a known size.
PROGRESS_SECONDS = 1.0
PROGRESS_STEP = 5.0

T = TypeVar("T")
#: A part sent whole is tagged with its md5 (32 hex digits); one grown by appends with
#: an xxh3-64 (16), see ``service.appends``.
MD5_HEX = 32


class NoSuchUpload(NotFound):
    code = "no_such_upload"
    title = "Upload does not exist"


def _now() -> datetime:
    return datetime.now(UTC)


class UploadService:
    def __init__(
        self,
        db: Database,
        buckets: BucketService,
        access: AccessService,
        quota: QuotaService,
        objects: ObjectService,
        settings: Settings,
    ) -> None:
        self._db = db
        self._buckets = buckets
        self._access = access
        self._quota = quota
        self._objects = objects
        self._settings = settings
        self._ttl = timedelta(seconds=settings.upload_ttl)
        self._changed: dict[str, asyncio.Event] = {}
        self._inflight: dict[str, int] = {}
        #: Upload id -> (monotonic time, percent) of its last progress event from this gateway.
        self._progressed: dict[str, tuple[float, float | None]] = {}

    # -- create and read ------------------------------------------------------

    async def create(
        self,
        who: Principal,
        bucket_name: str,
        key: str,
        *,
        total_size: int | None = None,
        content_type: str = "application/octet-stream",
        expected: ExpectedDigests | None = None,
        part_size: int | None = None,
        protocol: str = "session",
        metadata: dict[str, str] | None = None,
        concat: str | None = None,
        headers: dict[str, str] | None = None,
        upload_id: str | None = None,
    ) -> Upload:
        """A new upload; ``upload_id`` fixes its id (a tus upload named after its own id needs it first)."""
        bucket = await self._access.bucket(who, bucket_name, Level.WRITE)
        validate_key(key)
        if total_size is not None and not 0 <= total_size <= self._settings.max_object_size:
            raise PayloadTooLarge(f"an upload may declare at most {self._settings.max_object_size} bytes")
        if concat != "final":  # a final tus upload takes parts already stored and counted
            await self._quota.admit(bucket, total_size or 0)
        if part_size is not None and part_size <= 0:
            raise sm.InvalidPart("part size must be positive")
        now = _now()
        expected = expected or ExpectedDigests()
        upload = Upload(
            id=upload_id or uuid.uuid4().hex,
            bucket_id=bucket.id,
            bucket=bucket.name,
            key=key,
            status=sm.PENDING,
            protocol=protocol,
            content_type=content_type,
            total_size=total_size,
            part_size=part_size,
            expected_md5=expected.md5,
            expected_sha256=expected.sha256,
            created_at=now,
            updated_at=now,
            expires_at=now + self._ttl,
            metadata=metadata or {},
            concat=concat,
            headers=headers or {},
        )

        async def create(conn):  # type: ignore[no-untyped-def]
            await repo.create_upload(conn, upload, who.name)
            await _announce(
                conn,
                _upload_event(EventType.UPLOAD_CREATED, upload, who.user_id, content_type=content_type),
            )

        await self._db.write(create)
        return upload

    async def get(
        self, who: Principal, upload_id: str, *, with_parts: bool = True, need: Level = Level.READ
    ) -> Upload:
        """The upload, if ``who`` may ``need`` on its bucket (404 when it may not see it)."""
        upload = await self.load(upload_id, with_parts=with_parts)
        if upload is None or upload.protocol == sm.IMPORT:
            raise NoSuchUpload(f"no upload {upload_id!r}", upload_id=upload_id)
        try:
            await self._access.bucket(who, upload.bucket, need)
        except NoSuchBucket:
            raise NoSuchUpload(f"no upload {upload_id!r}", upload_id=upload_id) from None
        return upload

    async def load(self, upload_id: str, *, with_parts: bool = True) -> Upload | None:
        """The upload whoever asks: for the owner of an upload that checked access itself (imports)."""
        async with self._db.read() as conn:
            return await repo.get_upload(conn, upload_id, with_parts=with_parts)

    async def list_open(self, who: Principal, bucket_name: str | None = None) -> list[Upload]:
        """Open uploads in one bucket, or in every bucket ``who`` may see.

        Listing is a read: a read grant shows the uploads (as it shows each
        one), only sending bytes, completing and aborting need ``write``.
        """
        if bucket_name is not None:
            buckets = [await self._access.bucket(who, bucket_name, Level.READ)]
        else:
            buckets = await self._access.visible_buckets(who)
        found: list[Upload] = []
        async with self._db.read() as conn:
            if who.is_admin and not bucket_name:
                found = await repo.list_uploads(conn, None)
            else:
                for bucket in buckets:
                    found += await repo.list_uploads(conn, bucket.id)
        return [upload for upload in found if upload.protocol != sm.IMPORT]

    @property
    def max_size(self) -> int:
        """Largest upload accepted, in bytes (tus advertises it as Tus-Max-Size)."""
        return self._settings.max_object_size

    def inflight(self, upload_id: str) -> int:
        """Bytes of parts still streaming into this gateway (for progress reports)."""
        return self._inflight.get(upload_id, 0)

    # -- send bytes -----------------------------------------------------------

    async def put_part(
        self,
        who: Principal,
        upload_id: str,
        number: int,
        body: AsyncIterator[bytes],
        content_length: int | None,
        expected: ExpectedDigests,
    ) -> PartRecord:
        """Store part ``number``; sending a number again replaces that part atomically."""
        sm.check_part_number(number)
        upload = await self._open(who, upload_id, with_parts=False)
        return await self.write_part(upload, number, body, content_length, expected, who.user_id)

    async def write_part(
        self,
        upload: Upload,
        number: int,
        body: AsyncIterator[bytes],
        content_length: int | None,
        expected: ExpectedDigests,
        actor_id: int,
    ) -> PartRecord:
        """Store part ``number`` of an upload its caller has checked (``put_part``, an import).

        The part is durable when this returns: its shares are on a write
        quorum and it is recorded against the upload (which must still be open).
        """
        limit = upload.part_size or self._settings.max_part_size
        if content_length is not None and content_length > limit:
            raise sm.PartTooLarge(f"part of {content_length} bytes exceeds the {limit}-byte limit")

        def store(layout: Layout, counted: AsyncIterator[bytes], room: int | None) -> Awaitable[PartRecord]:
            # Session, tus and S3 parts report their md5; an import's parts are its own business,
            # and md5 is the dearest step of a write (see ObjectService.put).
            md5 = upload.protocol != sm.IMPORT
            return self._whole_part(layout, counted, content_length, expected, number, 0, room, md5=md5)

        part = await self._store(upload, body, content_length, limit, store)
        await self._commit_part(upload, part, None, actor_id)
        return part

    async def append(
        self,
        who: Principal,
        upload_id: str,
        offset: int,
        body: AsyncIterator[bytes],
        content_length: int | None,
        *,
        expected: ExpectedDigests | None = None,
        keep_partial: bool = False,
        whole_blocks: bool = False,
    ) -> Upload:
        """Store the bytes of a chunk that starts at ``offset``, growing the upload's open part.

        See :mod:`cargohold.service.appends` for when a chunk opens a new part
        and what happens to a tail shorter than a block: with ``whole_blocks``
        (tus) it is left for the client to send again. With ``keep_partial``
        (tus), a body that breaks off keeps every whole block that arrived: the
        offset advances by those and the client resumes. A chunk with digests
        to verify is a part of its own.
        """
        upload = await self._open(who, upload_id)
        sm.check_append(upload, offset, content_length)
        if content_length == 0:
            return upload
        source = _until_disconnect(body) if keep_partial else body
        limit = upload.total_size - offset if upload.total_size is not None else None
        exact = None if keep_partial else content_length
        if expected is not None and (expected.md5 or expected.sha256):
            number = len(upload.parts) + 1
            digests = expected

            def whole(
                layout: Layout, counted: AsyncIterator[bytes], room: int | None
            ) -> Awaitable[PartRecord]:
                return self._whole_part(layout, counted, exact, digests, number, offset, room)

            part = await self._store(upload, source, exact, limit, whole, announced=content_length)
            if part.size == 0:
                self._objects.forget_part(part)
                return upload

            def fits(current: Upload) -> None:
                # A concurrent append may have landed first: the chunk no longer fits.
                sm.check_append(current, offset, part.size)

            return await self._commit_part(upload, part, fits, who.user_id)

        appender = self._objects.appender

        def grow(
            layout: Layout, counted: AsyncIterator[bytes], room: int | None
        ) -> Awaitable[Appended | None]:
            return appender.append(
                upload,
                layout,
                counted,
                offset=offset,
                expected_size=exact,
                max_size=room if room is not None else self._settings.max_object_size,
                whole_blocks=whole_blocks,
            )

        appended = await self._store(upload, source, exact, limit, grow, announced=content_length)
        if appended is None:
            return upload
        grown = appended.part

        def still_at(current: Upload) -> None:
            sm.check_append(current, offset, appended.added)
            if appended.grown:
                before = next((p for p in current.parts if p.id == grown.id), None)
                if before is None or before.size + appended.added != grown.size:
                    raise sm.OffsetMismatch(
                        "the part changed while the chunk was stored", offset=current.offset
                    )

        try:
            updated = await self._commit_part(upload, grown, still_at, who.user_id, grown=appended.grown)
        except BaseException:
            appender.abandon(upload.id, appended)
            raise
        appender.committed(upload.id, grown)
        return updated

    async def _whole_part(
        self,
        layout: Layout,
        body: AsyncIterator[bytes],
        content_length: int | None,
        expected: ExpectedDigests,
        number: int,
        offset: int,
        limit: int | None,
        *,
        md5: bool = True,
    ) -> PartRecord:
        part, _ = await self._objects.store_part(
            layout,
            body,
            content_length,
            expected,
            part_number=number,
            offset=offset,
            md5=md5,
            max_size=limit,
        )
        return part

    async def _store(
        self,
        upload: Upload,
        body: AsyncIterator[bytes],
        content_length: int | None,
        limit: int | None,
        write: Callable[[Layout, AsyncIterator[bytes], int | None], Awaitable[T]],
        *,
        announced: int | None = None,
    ) -> T:
        """Stream a body into shares with ``write(layout, body, most bytes allowed)``, within the
        bucket owner's quota.

        ``announced`` is the size the client declared when the body is read
        without holding it to that size (tus keeps a chunk that breaks off):
        it is still checked against the quota before any byte is read.
        """
        bucket = await self._buckets.get(upload.bucket)
        room = await self._quota.admit(bucket, content_length if content_length is not None else announced)
        quota_binds = room is not None and (limit is None or room < limit)
        if room is not None:
            limit = room if limit is None else min(limit, room)
        if upload.status == sm.PENDING:
            # Only from PENDING: ``upload`` may be an old copy (an import holds one for all its
            # parts), and an abort since then must stay an abort.
            await self._db.write(
                lambda conn: repo.update_upload(conn, upload.id, only_if_status=sm.PENDING, status=sm.LOADING)
            )
            self._notify(upload.id)
        seen = [0]
        counted = self._count(upload.id, body, seen)
        try:
            return await write(Layout.parse(bucket.layout), counted, limit)
        except PayloadTooLarge:
            if quota_binds and room is not None:
                raise quota_exceeded(bucket, room) from None
            raise
        finally:
            left = self._inflight.get(upload.id, 0) - seen[0]
            if left > 0:
                self._inflight[upload.id] = left
            else:
                self._inflight.pop(upload.id, None)

    async def _commit_part(
        self,
        upload: Upload,
        part: PartRecord,
        check: Callable[[Upload], None] | None,
        actor_id: int,
        *,
        grown: bool = False,
    ) -> Any:
        """Record a stored part; ``check`` (appends) re-validates against the parts as they are now.

        Without a check the other parts are not read, so storing part n costs
        the same whatever the number of parts already there. ``grown``: the
        part is already the upload's and only its size changed (an append);
        if that cannot be recorded its shares stay, at the recorded size. An
        ``upload.progress`` event joins the transaction when one is due.
        """
        now = _now()
        last = self._progressed.get(upload.id)
        progressed: list[tuple[float, float | None]] = []

        async def commit(conn):  # type: ignore[no-untyped-def]
            current = await repo.get_upload(conn, upload.id, for_update=True, with_parts=check is not None)
            if current is None:
                raise NoSuchUpload(f"no upload {upload.id!r}")
            sm.check_open(current, now)
            if check is not None:
                check(current)
            if grown:
                replaced = []
                if not await repo.grow_part(conn, upload.id, part):
                    raise sm.OffsetMismatch("the part being appended to left the upload")
            else:
                replaced = await repo.add_part(conn, upload.id, part)
            for part_id in replaced:
                await repo.enqueue(conn, DELETE_PART, {"part_id": part_id})
            if any(s.state != "ok" for s in part.shares):
                await repo.enqueue_repair(conn, part.id)
            await repo.update_upload(conn, upload.id, status=sm.LOADING, expires_at=now + self._ttl)
            parts = [p for p in current.parts if p.part_number != part.part_number] + [part]
            progressed.clear()  # a replayed batch runs this again
            progress = await _progress_event(conn, current, parts, check is None, last, actor_id)
            if progress is not None:
                progressed.append(progress)
            return replace(
                current,
                status=sm.LOADING,
                expires_at=now + self._ttl,
                parts=tuple(sorted(parts, key=_number)),
            )

        try:
            updated = await self._db.write(commit)
        except BaseException:
            if not grown:
                self._objects.forget_part(part)
            raise
        if progressed:
            self._progressed[upload.id] = progressed[-1]
        self._objects.kick_gc()
        self._notify(upload.id)
        return updated

    async def declare_length(self, who: Principal, upload_id: str, total_size: int) -> Upload:
        """Fix the total size of an upload created without one (tus creation-defer-length)."""
        upload = await self._open(who, upload_id)
        if upload.total_size is not None:
            raise sm.SizeMismatch("the upload's length is already known")
        if total_size > self._settings.max_object_size:
            raise PayloadTooLarge(f"an upload may declare at most {self._settings.max_object_size} bytes")
        if total_size < upload.offset:
            raise sm.SizeMismatch(f"length {total_size} is below the {upload.offset} bytes received")
        await self._db.write(lambda conn: repo.update_upload(conn, upload_id, total_size=total_size))
        return replace(upload, total_size=total_size)

    # -- finish -----------------------------------------------------------------

    async def complete(
        self,
        who: Principal,
        upload_id: str,
        requested: Sequence[tuple[int, str | None]] | None = None,
        expected: ExpectedDigests | None = None,
    ) -> ObjectRecord:
        """Make the object visible from the upload's parts, in one transaction.

        A whole-file md5/sha256 (given now or at creation) is verified first;
        a mismatch raises DigestMismatch and leaves the session open to fix parts.
        """
        upload = await self._open(who, upload_id)
        return await self.finish(upload, who.user_id, requested, expected)

    async def finish(
        self,
        upload: Upload,
        actor_id: int,
        requested: Sequence[tuple[int, str | None]] | None = None,
        expected: ExpectedDigests | None = None,
        *,
        digests: dict[str, str] | None = None,
        also: Callable[[AsyncConnection, ObjectRecord], Awaitable[None]] | None = None,
    ) -> ObjectRecord:
        """Complete an upload its caller has checked (``complete``, an import), with its parts.

        ``digests``: the whole file's md5/sha256 as the caller computed them
        while the bytes went by; the expected ones are checked against them
        instead of reading the parts back. ``also`` runs in the transaction
        that makes the object visible (an import's status changes with it).
        """
        upload_id = upload.id
        ordered = sm.completion_order(upload, requested, min_part_size=sm.S3_MIN_PART_SIZE)
        expected = expected or ExpectedDigests()
        md5 = expected.md5 or upload.expected_md5
        sha256 = expected.sha256 or upload.expected_sha256
        placed = _with_offsets(ordered)
        # A lone part's md5 is the file's md5 (an import's parts carry an xxh3 instead).
        lone = placed[0].etag if len(placed) == 1 else ""
        lone_md5 = lone if len(lone) == MD5_HEX and upload.protocol != sm.IMPORT else None
        if digests is not None:
            ExpectedDigests(md5, sha256).verify(digests)
            digests = {name: value for name, value in digests.items() if name in ("md5", "sha256")}
            if "md5" not in digests and lone_md5 is not None:
                digests["md5"] = lone_md5
        else:
            digests = await self._verify(placed, md5, sha256, lone_md5)
        etag = _multipart_etag(placed, always_count=upload.protocol == sm.S3)
        now = _now()

        async def commit(conn):  # type: ignore[no-untyped-def]
            current = await repo.get_upload(conn, upload_id, for_update=True)
            if current is None:
                raise NoSuchUpload(f"no upload {upload_id!r}")
            sm.check_open(current, now)
            again = sm.completion_order(current, requested, min_part_size=sm.S3_MIN_PART_SIZE)
            # Sizes too: an append may have grown the last part since it was read.
            if [(p.id, p.size) for p in again] != [(p.id, p.size) for p in placed]:
                raise sm.UploadNotOpen("parts changed while the upload was completing")
            record, replaced = await repo.put_object(
                conn,
                current.bucket_id,
                current.key,
                size=sum(p.size for p in placed),
                etag=etag,
                content_type=current.content_type,
                md5=digests.get("md5"),
                sha256=digests.get("sha256"),
                attach=placed,
                headers=current.headers,
            )
            for part_id in replaced + await repo.release_parts(conn, upload_id):
                await repo.enqueue(conn, DELETE_PART, {"part_id": part_id})
            await repo.update_upload(conn, upload_id, status=sm.UPLOADED)
            bucket = await repo.get_bucket_by_id(conn, current.bucket_id)
            if bucket is not None:
                await repo.events.append(conn, object_created(bucket, record, actor_id, upload_id=upload_id))
            await _announce(
                conn,
                _upload_event(
                    EventType.UPLOAD_COMPLETED,
                    current,
                    actor_id,
                    size=record.size,
                    version_id=record.version_id,
                    etag=record.etag,
                ),
            )
            if also is not None:
                await also(conn, record)
            return record

        record = await self._db.write(commit)
        self._objects.appender.close(upload_id)
        self._progressed.pop(upload_id, None)
        self._objects.kick_gc()
        self._notify(upload_id)
        return record

    async def _verify(
        self, parts: list[PartRecord], md5: str | None, sha256: str | None, lone_md5: str | None
    ) -> dict[str, str]:
        """Hash the assembled bytes when the client gave a whole-file digest to check."""
        if md5 is None and sha256 is None:
            return {"md5": lone_md5} if lone_md5 is not None else {}
        hashers: dict[str, Any] = {}
        if md5 is not None:
            hashers["md5"] = hashlib.md5(usedforsecurity=False)
        if sha256 is not None:
            hashers["sha256"] = hashlib.sha256()
        total = sum(p.size for p in parts)

        def update(chunk: Chunk) -> None:
            for h in hashers.values():
                h.update(chunk)

        async for chunk in self._objects.stream_parts(parts, 0, total):
            await run_cpu(update, chunk)
        digests = {name: h.hexdigest() for name, h in hashers.items()}
        for name, want in (("md5", md5), ("sha256", sha256)):
            if want is not None and digests[name] != want:
                raise sm.DigestMismatch(f"{name} of the assembled file is {digests[name]}, expected {want}")
        return digests

    async def abort(self, who: Principal, upload_id: str) -> Upload:
        """Stop an upload for good: status DELETED, its shares queued for deletion."""
        upload = await self.get(who, upload_id, need=Level.WRITE)
        if upload.status not in sm.OPEN_STATES:
            raise sm.UploadNotOpen(f"upload {upload_id} is {upload.status}", upload_status=upload.status)
        await self._db.write(
            functools.partial(
                close_upload, upload_id=upload_id, status=sm.DELETED, error=None, actor_id=who.user_id
            )
        )
        self._progressed.pop(upload_id, None)
        self._objects.appender.close(upload_id)
        self._objects.kick_gc()
        self._notify(upload_id)
        return replace(upload, status=sm.DELETED, parts=())

    async def concatenate(self, who: Principal, final: Upload, partial_ids: Sequence[str]) -> ObjectRecord:
        """tus concatenation: the final upload takes the partial uploads' parts, in order."""
        now = _now()
        for partial_id in partial_ids:
            await self.get(who, partial_id, with_parts=False, need=Level.WRITE)

        async def gather(conn):  # type: ignore[no-untyped-def]
            number = 0
            for partial_id in partial_ids:
                partial = await repo.get_upload(conn, partial_id, for_update=True)
                if partial is None or partial.concat != "partial":
                    raise NoSuchUpload(f"{partial_id!r} is not a partial upload")
                sm.check_open(partial, now)
                if partial.total_size is None or partial.offset != partial.total_size:
                    raise sm.MissingParts(f"partial upload {partial_id} is not finished")
                for part in partial.parts:
                    number += 1
                    await repo.move_part(conn, part.id, final.id, number)
                await repo.update_upload(conn, partial_id, status=sm.UPLOADED)
            return number

        await self._db.write(gather)
        return await self.complete(who, final.id)

    # -- expiry -------------------------------------------------------------------

    async def sweep(self, now: datetime | None = None) -> int:
        """Close every expired open upload (status FAILED, error 'expired') and free its shares."""
        now = now or _now()
        async with self._db.read() as conn:
            expired = await repo.expired_uploads(conn, now)
        for upload_id in expired:
            await self._db.write(
                functools.partial(
                    close_upload, upload_id=upload_id, status=sm.FAILED, error=EXPIRED, actor_id=None
                )
            )
            self._objects.appender.close(upload_id)
            self._progressed.pop(upload_id, None)
            self._notify(upload_id)
        if expired:
            self._objects.kick_gc()
        return len(expired)

    async def _open(self, who: Principal, upload_id: str, with_parts: bool = True) -> Upload:
        upload = await self.get(who, upload_id, with_parts=with_parts, need=Level.WRITE)
        if upload.status == sm.FAILED and upload.error == EXPIRED:
            raise sm.UploadExpired(f"upload {upload_id} expired")
        sm.check_open(upload, _now())
        return upload

    # -- progress events ------------------------------------------------------------

    def _notify(self, upload_id: str) -> None:
        event = self._changed.pop(upload_id, None)
        if event is not None:
            event.set()

    async def wait_change(self, upload_id: str, timeout: float) -> None:
        """Return when this gateway changes the upload, or after ``timeout`` (other gateways)."""
        event = self._changed.setdefault(upload_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def _count(
        self, upload_id: str, body: AsyncIterator[bytes], seen: list[int]
    ) -> AsyncIterator[bytes]:
        """Pass the body through, adding to the upload's in-flight bytes (parts may run in
        parallel, so each stream adds its own share) and publishing progress twice a second."""
        last = time.monotonic()
        async for chunk in body:
            seen[0] += len(chunk)
            self._inflight[upload_id] = self._inflight.get(upload_id, 0) + len(chunk)
            if time.monotonic() - last > 0.5:
                last = time.monotonic()
                self._notify(upload_id)
            yield chunk


async def close_upload(
    conn: AsyncConnection, *, upload_id: str, status: str, error: str | None, actor_id: int | None
) -> None:
    """In the caller's transaction: end an upload (aborted: DELETED; expired or given up: FAILED),
    queue its parts for deletion, and say so in an event."""
    # Locked first: a part committed meanwhile (which locks it too) is then among those released.
    closing = await repo.get_upload(conn, upload_id, for_update=True, with_parts=False)
    await release_upload_parts(conn, upload_id=upload_id)
    await repo.update_upload(conn, upload_id, status=status, error=error)
    if closing is not None:
        kind = EventType.UPLOAD_ABORTED if status == sm.DELETED else EventType.UPLOAD_FAILED
        extra: dict[str, Any] = {"reason": error} if error else {}
        await _announce(conn, _upload_event(kind, closing, actor_id, detail=extra))


async def release_upload_parts(conn: AsyncConnection, *, upload_id: str) -> None:
    """In the caller's transaction: detach every part of an upload and queue their deletion."""
    for part_id in await repo.release_parts(conn, upload_id):
        await repo.enqueue(conn, DELETE_PART, {"part_id": part_id})


async def _announce(conn: AsyncConnection, draft: EventDraft) -> None:
    """Append an ``upload.*`` event, except for the upload behind an import: the import's own
    ``import.*`` events tell of it, and its upload is not one the user can see."""
    if draft.detail.get("protocol") != sm.IMPORT:
        await repo.events.append(conn, draft)


def _upload_event(
    kind: EventType,
    upload: Upload,
    actor_id: int | None,
    *,
    size: int | None = None,
    version_id: str | None = None,
    detail: dict[str, Any] | None = None,
    **more: Any,
) -> EventDraft:
    return EventDraft(
        kind,
        actor_id,
        bucket=upload.bucket,
        bucket_id=upload.bucket_id,
        key=upload.key,
        version_id=version_id,
        size=size if size is not None else upload.total_size,
        detail={"upload_id": upload.id, "protocol": upload.protocol, **(detail or {}), **more},
    )


async def _progress_event(
    conn: AsyncConnection,
    upload: Upload,
    parts: list[PartRecord],
    partial: bool,
    last: tuple[float, float | None] | None,
    actor_id: int,
) -> tuple[float, float | None] | None:
    """Append ``upload.progress`` if one is due (see PROGRESS_SECONDS); returns what to remember.

    ``partial``: ``parts`` holds only the new part (numbered parts are committed
    without reading the others), so the bytes received are summed here.
    """
    now = time.monotonic()
    received = await repo.bytes_received(conn, upload.id) if partial else sum(p.size for p in parts)
    percent = sm.percentage_of(received, upload.total_size)
    due = last is None or now - last[0] >= PROGRESS_SECONDS
    if not due and percent is not None and last is not None and last[1] is not None:
        due = percent // PROGRESS_STEP > last[1] // PROGRESS_STEP
    if not due:
        return None
    await _announce(
        conn,
        _upload_event(
            EventType.UPLOAD_PROGRESS,
            upload,
            actor_id,
            bytes_received=received,
            uploaded_percentage=percent,
            status=sm.LOADING,
        ),
    )
    return now, percent


def _number(part: PartRecord) -> int:
    return part.part_number


def _with_offsets(parts: Sequence[PartRecord]) -> list[PartRecord]:
    placed, offset = [], 0
    for part in parts:
        placed.append(replace(part, offset=offset))
        offset += part.size
    return placed


def _multipart_etag(parts: Sequence[PartRecord], *, always_count: bool = False) -> str:
    """S3's convention: md5 of the parts' binary md5s, then '-N'.

    A lone part of a session or tus upload gives its own md5 (the file's); S3
    clients expect '-1' for a multipart upload of one part, so S3 uploads
    (``always_count``) get it. A lone part grown by appends has no md5: its
    xxh3-64, marked '-1' as not being one (``native_etag``).
    """
    if len(parts) == 1 and not always_count:
        etag = parts[0].etag
        return etag if len(etag) == MD5_HEX else native_etag(etag)
    joined = b"".join(bytes.fromhex(p.etag) for p in parts)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(parts)}"


async def _until_disconnect(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """End the stream quietly when the client goes away: what arrived is kept."""
    try:
        async for chunk in body:
            yield chunk
    except (aiohttp.ClientError, ConnectionError, asyncio.IncompleteReadError) as exc:
        log.info("upload body broke off: %s; keeping what arrived", exc)
