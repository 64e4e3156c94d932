"""Objects: the write path (inline or erasure-coded), the read path and deletion.

The commit point of every write is one metadata transaction that makes the new
version visible and, in the same transaction, queues the deletion of whatever
version it replaced. Shares written before a failure are never referenced by
a committed row: they are deleted at once on a clean failure, and are garbage
for gc after a crash. A reader therefore never sees a torn object.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cargohold.config import Settings
from cargohold.domain.conditions import WriteCondition
from cargohold.domain.digests import ContentHasher, native_etag
from cargohold.domain.events import EventDraft, EventType
from cargohold.domain.layout import Layout, block_span
from cargohold.domain.model import Bucket, ObjectRecord, PartRecord, Principal, ShareRecord
from cargohold.domain.names import validate_key
from cargohold.domain.ranges import ByteRange
from cargohold.domain.versions import validate_version_id
from cargohold.domain.zones import zone_cost
from cargohold.erasure.codec import codec_for
from cargohold.erasure.reader import FrameStream, OpenShare, full_frame_size, read_range
from cargohold.erasure.writer import PartWriteResult, write_part
from cargohold.errors import (
    CargoholdError,
    IncompleteBody,
    NodeUnavailable,
    NoSuchKey,
    PayloadTooLarge,
    ShareCorrupt,
    ShareNotFound,
)
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.metrics import ZONE_READ_BYTES
from cargohold.service.access import AccessService, Level
from cargohold.service.appends import PartAppender
from cargohold.service.catalog import CatalogOps, enqueue_deletions, no_such_version
from cargohold.service.checksums import ExpectedDigests
from cargohold.service.nodes import NodeRegistry
from cargohold.service.quota import QuotaService, quota_exceeded
from cargohold.service.zones import READER_ZONE, ZONE_BYTES, ZoneService

log = logging.getLogger(__name__)

#: What reads yield: bytes, or views into verified share frames (no copy).
Chunk = bytes | memoryview


@dataclass(frozen=True, slots=True)
class NewVersion:
    """Where a new version goes and what is stored with it besides its bytes."""

    bucket: Bucket
    key: str
    content_type: str
    md5_etag: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    condition: WriteCondition | None = None
    #: The user writing it (the ``object.created`` event's actor).
    actor_id: int | None = None


class ObjectService(CatalogOps):
    def __init__(
        self,
        db: Database,
        access: AccessService,
        quota: QuotaService,
        nodes: NodeRegistry,
        settings: Settings,
        zones: ZoneService | None = None,
    ) -> None:
        self._zones = zones
        self._db = db
        self._access = access
        self._quota = quota
        self._nodes = nodes
        self._settings = settings
        self._background: set[asyncio.Task[None]] = set()
        self.gc_wakeup = asyncio.Event()
        #: Chunked uploads (tus, Content-Range) grow their parts through it.
        self.appender = PartAppender(nodes, settings, self.forget_part)

    # -- write --------------------------------------------------------------

    async def put(
        self,
        who: Principal,
        bucket_name: str,
        key: str,
        body: AsyncIterator[bytes],
        *,
        content_length: int | None,
        content_type: str,
        expected: ExpectedDigests,
        md5_etag: bool = False,
        headers: dict[str, str] | None = None,
        condition: WriteCondition | None = None,
    ) -> ObjectRecord:
        """Store a new version of ``key`` from a streamed body.

        ``md5_etag``: the ETag is the body's md5 (what S3 clients check)
        instead of its xxh3-128 (``native_etag``). md5 is the dearest step of such a write:
        1.3 ms of CPU per MiB on an idle core (760 MB/s, against 0.02 ms
        for xxh3 and ~0.1 ms for encoding), 3.1 ms measured on this
        machine under load; it runs on the CPU pool beside the encoding,
        never on the event loop, and caps one stream near 760 MB/s.
        ``headers`` are stored with the version.
        ``condition`` is checked before any byte is read, and again when the
        version is committed.
        """
        bucket = await self._access.bucket(who, bucket_name, Level.WRITE)
        validate_key(key)
        limit = self._settings.max_object_size
        if content_length is not None and content_length > limit:
            raise PayloadTooLarge(f"object of {content_length} bytes exceeds the {limit}-byte limit")
        if condition is not None:
            condition.check(await self._live_etag(bucket, key), key)
        room = await self._quota.admit(bucket, content_length)
        # The same dict: a body's trailing checksums join it once the body has arrived.
        write = NewVersion(
            bucket,
            key,
            content_type,
            md5_etag,
            headers if headers is not None else {},
            condition,
            actor_id=who.user_id,
        )
        head, body = await _peek(body, self._settings.inline_threshold, content_length)
        if head is not None:
            if room is not None and len(head) > room:
                await self._quota.admit(bucket, len(head))
            return await self._put_inline(write, head, content_length, expected)
        try:
            part, digests = await self.store_part(
                Layout.parse(bucket.layout),
                body,
                content_length,
                expected,
                md5=md5_etag,
                max_size=min(limit, room) if room is not None else None,
            )
        except PayloadTooLarge:
            if room is not None and room < limit:
                raise quota_exceeded(bucket, room) from None
            raise
        return await self.commit(write, part.size, digests, None, [part])

    async def _live_etag(self, bucket: Bucket, key: str) -> str | None:
        async with self._db.read() as conn:
            record = await repo.get_object(conn, bucket.id, key)
        return None if record is None or record.delete_marker else record.etag

    async def store_part(
        self,
        layout: Layout,
        body: AsyncIterator[bytes],
        content_length: int | None,
        expected: ExpectedDigests,
        *,
        part_number: int = 1,
        offset: int = 0,
        md5: bool = False,
        max_size: int | None = None,
    ) -> tuple[PartRecord, dict[str, str]]:
        """Stream one part into shares on a quorum of nodes; nothing is visible yet.

        The caller commits the returned record (or, on failure, nothing: the
        shares are deleted here or left for gc). ``md5`` computes the part's
        md5 as upload sessions report it; the record's etag is then that md5.
        """
        part_id = uuid.uuid4().hex
        result, node_ids = await self._write_shares(
            part_id, layout, body, content_length, expected, md5=md5, max_size=max_size
        )
        part = PartRecord(
            id=part_id,
            part_number=part_number,
            offset=offset,
            size=result.size,
            layout=layout.spec,
            block_size=layout.block_size,
            etag=result.digests["md5"] if md5 else result.etag,
            shares=tuple(
                ShareRecord(o.index, node_ids[o.index], "ok" if o.stored else "missing")
                for o in result.outcomes
            ),
        )
        return part, result.digests

    def forget_part(self, part: PartRecord) -> None:
        """Delete the shares of a part that will never be committed."""
        self._spawn(self._delete_shares(part.id, [(s.index, s.node_id) for s in part.shares]))

    async def _write_shares(
        self,
        part_id: str,
        layout: Layout,
        body: AsyncIterator[bytes],
        content_length: int | None,
        expected: ExpectedDigests,
        *,
        md5: bool,
        max_size: int | None,
    ) -> tuple[PartWriteResult, list[int | None]]:
        codec = codec_for(layout)
        per_share = (content_length or layout.block_size) // layout.k
        # Fewer writable nodes than shares (but at least the quorum): the
        # shares without a node are recorded missing and repair places them.
        node_ids = self._nodes.place(layout.width, per_share, minimum=layout.write_quorum)
        writers = [
            functools.partial(self._nodes.client(node_id).put, f"{part_id}.{index}")
            if node_id is not None
            else functools.partial(_no_node, f"{part_id}.{index}")
            for index, node_id in enumerate(node_ids)
        ]
        hasher = ContentHasher(expected.algorithms() | ({"md5"} if md5 else set()))
        try:
            result = await write_part(
                body,
                codec,
                writers,
                hasher=hasher,
                expected_size=content_length,
                max_size=max_size or self._settings.max_object_size,
                depth=self._settings.blocks_in_flight,
                stall_timeout=self._settings.node_timeout,
            )
            expected.verify(result.digests)
        except BaseException:
            self._spawn(self._delete_shares(part_id, list(enumerate(node_ids))))
            raise
        for outcome in result.outcomes:
            node_id = node_ids[outcome.index]
            if not outcome.stored and node_id is not None:
                log.warning("share %s.%s not stored: %s", part_id, outcome.index, outcome.error)
                self._nodes.mark_down(node_id)
        return result, node_ids

    async def _put_inline(
        self, write: NewVersion, data: bytes, content_length: int | None, expected: ExpectedDigests
    ) -> ObjectRecord:
        if content_length is not None and len(data) != content_length:
            raise IncompleteBody(f"received {len(data)} of {content_length} bytes")
        # Hashing a few KiB costs less than the hop to a worker thread.
        hasher = ContentHasher(expected.algorithms() | ({"md5"} if write.md5_etag else set()))
        hasher.update(data)
        digests = hasher.hexdigests()
        expected.verify(digests)
        return await self.commit(write, len(data), digests, data, [])

    async def commit(
        self,
        write: NewVersion,
        size: int,
        digests: dict[str, str],
        inline: bytes | None,
        parts: list[PartRecord],
        etag: str | None = None,
        linked: Sequence[PartRecord] = (),
    ) -> ObjectRecord:
        """Make a version of stored ``parts`` (or ``inline`` bytes) visible; on failure the parts go.

        ``etag`` overrides the one taken from ``digests`` (a copy keeps its source's).
        ``linked`` are another version's parts the new one shares (a copy by
        reference); a failure leaves them alone.
        """
        bucket = write.bucket

        async def commit(conn):  # type: ignore[no-untyped-def]
            record, replaced = await repo.put_object(
                conn,
                bucket.id,
                write.key,
                size=size,
                etag=etag or (digests["md5"] if write.md5_etag else native_etag(digests["xxh3"])),
                content_type=write.content_type,
                md5=digests.get("md5"),
                sha256=digests.get("sha256"),
                inline_data=inline,
                parts=parts,
                linked=linked,
                headers=write.headers,
                condition=write.condition,
            )
            await enqueue_deletions(conn, replaced)
            for part in parts:
                if any(s.state != "ok" for s in part.shares):
                    await repo.enqueue_repair(conn, part.id)
            await repo.events.append(conn, object_created(bucket, record, write.actor_id))
            return record, bool(replaced)

        try:
            record, replaced_any = await self._db.write(commit)
        except BaseException:
            for part in parts:
                self._spawn(self._delete_shares(part.id, [(s.index, s.node_id) for s in part.shares]))
            raise
        if replaced_any:
            self.kick_gc()
        return record

    # -- read ---------------------------------------------------------------

    async def head(
        self, who: Principal, bucket_name: str, key: str, version_id: str | None = None
    ) -> ObjectRecord:
        bucket = await self._access.bucket(who, bucket_name, Level.READ)
        return await self.find(bucket, key, version_id)

    async def find(self, bucket: Bucket, key: str, version_id: str | None = None) -> ObjectRecord:
        """The latest version of ``key`` (or ``version_id``) in a bucket already checked.

        ``NoSuchKey`` when there is none, or when it is a delete marker (with
        ``delete_marker`` set); ``NoSuchVersion`` when the key has no version
        ``version_id``.
        """
        validate_key(key)
        if version_id is not None:
            validate_version_id(version_id)
        async with self._db.read() as conn:
            record = await repo.get_object(conn, bucket.id, key, version_id)
        if record is None and version_id is not None:
            raise no_such_version(bucket.name, key, version_id)
        if record is None or record.delete_marker:
            which = f"version {version_id!r} of " if version_id else ""
            marker = {"delete_marker": True, "version_id": record.version_id} if record is not None else {}
            raise NoSuchKey(f"no {which}object {key!r} in bucket {bucket.name!r}", key=key, **marker)
        return record

    async def stream(self, record: ObjectRecord, byte_range: ByteRange | None) -> AsyncIterator[Chunk]:
        """Yield the object's bytes, or those of ``byte_range``."""
        start = byte_range.start if byte_range else 0
        end = byte_range.end + 1 if byte_range else record.size
        if record.inline_data is not None:
            if end > start:
                yield record.inline_data[start:end]
            return
        async for chunk in self.stream_parts(record.parts, start, end):
            yield chunk

    async def stream_parts(self, parts: Sequence[PartRecord], start: int, end: int) -> AsyncIterator[Chunk]:
        """Bytes [start, end) of the object these parts make up (parts carry their offsets)."""
        for part in parts:
            lo, hi = max(start, part.offset), min(end, part.offset + part.size)
            if lo >= hi:
                continue
            async for chunk in self._read_part(part, lo - part.offset, hi - lo):
                yield chunk

    def _read_part(self, part: PartRecord, start: int, length: int) -> AsyncIterator[Chunk]:
        layout = Layout.parse(part.layout, part.block_size)
        codec = codec_for(layout)
        full_frame_size(codec)  # warm the cache outside the hot loop
        return read_range(
            codec,
            part.size,
            start,
            length,
            share_candidates(part, self._nodes, self._distances()),
            share_opener(part, self._nodes, READER_ZONE.get()),
            functools.partial(self.report_bad_share, part),
            self._settings.node_timeout,
            window=self._settings.blocks_in_flight,
        )

    @property
    def debug(self) -> bool:
        return self._settings.debug

    def zone_plan(self, record: ObjectRecord, byte_range: ByteRange | None) -> dict[str, int]:
        """Share bytes a read of ``record`` will pull from each zone if every chosen share answers.

        The k shares first in each part's order, times the frames covering
        the range: what the debug header shows, since headers leave before
        the bytes are read.
        """
        start = byte_range.start if byte_range else 0
        end = byte_range.end + 1 if byte_range else record.size
        plan: dict[str, int] = {}
        distances = self._distances()
        for part in record.parts:
            lo, hi = max(start, part.offset), min(end, part.offset + part.size)
            layout = Layout.parse(part.layout, part.block_size)
            span = block_span(layout, part.size, lo - part.offset, hi - lo) if lo < hi else None
            if span is None:
                continue
            frames = (span.last_block - span.first_block + 1) * full_frame_size(codec_for(layout))
            by_index = {s.index: s.node_id for s in part.shares}
            for index in share_candidates(part, self._nodes, distances)[: layout.k]:
                zone = self._nodes.zone_of(by_index[index]) or "-"
                plan[zone] = plan.get(zone, 0) + frames
        return plan

    def _distances(self) -> dict[str, float] | None:
        """km from the current reader's zone to every zone, or None to read data shares first."""
        zone = READER_ZONE.get()
        if zone is None or self._zones is None or not self._settings.nearest_reads:
            return None
        return self._zones.distances(zone)

    def report_bad_share(self, part: PartRecord, index: int, error: Exception) -> None:
        """A read had to do without share ``index``: queue a repair if the share itself is bad.

        A missing or corrupt share is recorded (only while it is still placed
        on the node that failed: it may have just been moved) and its part
        queued for repair; a node that does not answer is only marked down,
        since it may come back, and becomes a repair source only once lost.
        """
        node_id = next(s.node_id for s in part.shares if s.index == index)
        log.warning("share %s.%s on node %s failed: %s", part.id, index, node_id, error)
        if isinstance(error, ShareCorrupt | ShareNotFound):
            self._spawn(self._record_missing(part.id, index, node_id))
        elif isinstance(error, NodeUnavailable | OSError | TimeoutError) and node_id is not None:
            self._nodes.mark_down(node_id)

    async def _record_missing(self, part_id: str, index: int, node_id: int | None) -> None:
        async def mark(conn):  # type: ignore[no-untyped-def]
            if await repo.mark_share_missing(conn, part_id, index, node_id):
                await repo.enqueue_repair(conn, part_id, priority=1)

        await self._db.write(mark)

    # -- share garbage --------------------------------------------------------

    def kick_gc(self) -> None:
        """Ask the gc worker to run soon (it also runs on its own timer)."""
        self.gc_wakeup.set()

    async def _delete_shares(self, part_id: str, shares: Sequence[tuple[int, int | None]]) -> None:
        """Best-effort removal of shares that were never committed."""
        for index, node_id in shares:
            if node_id is None:
                continue
            try:
                await self._nodes.client(node_id).delete(f"{part_id}.{index}")
            except (CargoholdError, OSError) as exc:
                log.info("left uncommitted share %s.%s for gc: %s", part_id, index, exc)

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def object_created(bucket: Bucket, record: ObjectRecord, actor_id: int | None, **detail: str) -> EventDraft:
    """The ``object.created`` event of a version just committed (in its transaction)."""
    return EventDraft(
        EventType.OBJECT_CREATED,
        actor_id,
        bucket=bucket.name,
        bucket_id=bucket.id,
        key=record.key,
        version_id=record.version_id,
        size=record.size,
        detail={"etag": record.etag, "content_type": record.content_type, **detail},
    )


async def _no_node(share_id: str, body: AsyncIterator[bytes]) -> int:
    """The writer of a share that found no writable node: fails at once, so the quorum decides."""
    raise NodeUnavailable(f"no writable node for share {share_id}")


def share_candidates(
    part: PartRecord, nodes: NodeRegistry, distances: dict[str, float] | None = None
) -> list[int]:
    """Indexes of the part's shares worth trying, best first.

    Readable nodes first; then, for a reader with ``distances`` (km from its
    zone), the nearest zones, so a parity share in the reader's zone goes
    before a data share across the world (any k shares decode); then data
    before parity, which spares the decode when distance does not decide.
    """
    usable = [s for s in part.shares if s.state == "ok" and s.node_id is not None]
    if distances is None:
        return [s.index for s in sorted(usable, key=lambda s: (not nodes.readable(s.node_id), s.index))]
    return [
        s.index
        for s in sorted(
            usable,
            key=lambda s: (
                not nodes.readable(s.node_id),
                zone_cost(distances, nodes.zone_of(s.node_id)),
                s.index,
            ),
        )
    ]


def share_opener(part: PartRecord, nodes: NodeRegistry, reader_zone: str | None = None) -> OpenShare:
    """Opens share ``index`` of ``part`` for a byte range, on whichever node holds it.

    Every frame read is counted per zone pair (``cargohold_zone_read_bytes``).
    """
    by_index = {s.index: s.node_id for s in part.shares}

    async def open_share(index: int, first: int, last: int) -> FrameStream:
        node_id = by_index[index]
        if node_id is None:
            raise NodeUnavailable(f"share {part.id}.{index} has no node")
        stream = await nodes.client(node_id).open(f"{part.id}.{index}", first, last)
        zone = nodes.zone_of(node_id) or "-"
        return _CountedStream(
            stream, ZONE_READ_BYTES.labels(reader_zone or "-", zone), ZONE_BYTES.get(), zone
        )

    return open_share


class _CountedStream:
    """A share stream that counts the payload bytes it hands out, by zone."""

    __slots__ = ("_counter", "_inner", "_tally", "_zone")

    def __init__(self, inner: FrameStream, counter: Any, tally: dict[str, int] | None, zone: str) -> None:
        self._inner = inner
        self._counter = counter
        self._tally = tally
        self._zone = zone

    async def read_frame(self, expected_index: int) -> bytes:
        frame = await self._inner.read_frame(expected_index)
        self._counter.inc(len(frame))
        if self._tally is not None:
            self._tally[self._zone] = self._tally.get(self._zone, 0) + len(frame)
        return frame

    async def close(self) -> None:
        await self._inner.close()


async def _peek(
    body: AsyncIterator[bytes], threshold: int, content_length: int | None
) -> tuple[bytes | None, AsyncIterator[bytes]]:
    """Read up to ``threshold`` bytes: the whole body if it is that small, else a stream.

    Returns (data, empty) for a small body, or (None, stream) where the stream
    replays what was read and continues with the rest.
    """
    if content_length is not None and content_length > threshold:
        return None, body
    buffered: list[bytes] = []
    size = 0
    async for chunk in body:
        buffered.append(chunk)
        size += len(chunk)
        if size > threshold:
            break
    else:
        return b"".join(buffered), _empty()

    async def replay() -> AsyncIterator[bytes]:
        for chunk in buffered:
            yield chunk
        async for chunk in body:
            yield chunk

    return None, replay()


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover
