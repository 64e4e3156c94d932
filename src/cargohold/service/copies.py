"""Server-side copies: a new version of one key made from another's, no byte through the client.

When source and destination buckets share a layout, a copy is metadata
only: the new version links the source's parts (``repositories.links``),
whatever their size, and a part lives while any version refers to it.
Across layouts the gateway reads the source part by part and stores each as
a new part in the destination's layout, part numbers and offsets kept, with
memory bounded by the blocks in flight like any write. Either way the copy
is the same bytes in the same parts, so the source's ETag (an md5, or an
md5 of part md5s) holds for it and is kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from cargohold.domain.conditions import ReadConditions, WriteCondition
from cargohold.domain.layout import Layout
from cargohold.domain.model import Bucket, ObjectRecord, PartRecord, Principal
from cargohold.domain.names import validate_key
from cargohold.metadata.repositories.links import SourceChanged
from cargohold.service.access import AccessService, Level
from cargohold.service.checksums import ExpectedDigests
from cargohold.service.objects import Chunk, NewVersion, ObjectService
from cargohold.service.quota import QuotaService

#: How often a copy by reference reads its source again when the source changed under it.
COPY_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Copied:
    record: ObjectRecord  # the new version
    source: ObjectRecord  # the version copied


@dataclass(frozen=True, slots=True)
class CopySource:
    bucket: str
    key: str
    version_id: str | None = None
    conditions: ReadConditions = field(default_factory=ReadConditions)


class CopyService:
    def __init__(self, access: AccessService, quota: QuotaService, objects: ObjectService) -> None:
        self._access = access
        self._quota = quota
        self._objects = objects

    async def source(self, who: Principal, source: CopySource) -> tuple[Bucket, ObjectRecord]:
        """The version a copy reads (needs ``read``), its conditions checked (412 when they fail)."""
        bucket = await self._access.bucket(who, source.bucket, Level.READ)
        record = await self._objects.find(bucket, source.key, source.version_id)
        source.conditions.evaluate(record.etag, record.created_at, copy=True)
        return bucket, record

    async def copy(
        self,
        who: Principal,
        source: CopySource,
        bucket_name: str,
        key: str,
        *,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        condition: WriteCondition | None = None,
    ) -> Copied:
        """Copy ``source`` to ``key``; ``content_type``/``headers`` None keep the source's.

        A source replaced or deleted between reading it and committing a copy
        by reference (``SourceChanged``) is read again, a few times at most.
        """
        for attempt in range(1, COPY_ATTEMPTS + 1):
            try:
                return await self._copy(who, source, bucket_name, key, content_type, headers, condition)
            except SourceChanged:
                if attempt == COPY_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _copy(
        self,
        who: Principal,
        source: CopySource,
        bucket_name: str,
        key: str,
        content_type: str | None,
        headers: dict[str, str] | None,
        condition: WriteCondition | None,
    ) -> Copied:
        _, found = await self.source(who, source)
        target = await self._access.bucket(who, bucket_name, Level.WRITE)
        validate_key(key)
        await self._quota.admit(target, found.size)
        write = NewVersion(
            target,
            key,
            content_type if content_type is not None else found.content_type,
            headers=dict(found.headers if headers is None else headers),
            condition=condition,
            actor_id=who.user_id,
        )
        digests = {name: value for name, value in (("md5", found.md5), ("sha256", found.sha256)) if value}
        if found.inline_data is not None:
            record = await self._objects.commit(
                write, found.size, digests, found.inline_data, [], etag=found.etag
            )
            return Copied(record, found)
        source_bucket = await self._access.bucket(who, source.bucket, Level.READ)
        if source_bucket.layout == target.layout:
            record = await self._objects.commit(
                write, found.size, digests, None, [], etag=found.etag, linked=found.parts
            )
            return Copied(record, found)
        parts = await self._store_copies(found.parts, Layout.parse(target.layout))
        record = await self._objects.commit(write, found.size, digests, None, parts, etag=found.etag)
        return Copied(record, found)

    async def _store_copies(self, parts: tuple[PartRecord, ...], layout: Layout) -> list[PartRecord]:
        stored: list[PartRecord] = []
        try:
            for part in parts:
                copy, _ = await self._objects.store_part(
                    layout,
                    _bytes(self._objects.stream_parts([part], part.offset, part.offset + part.size)),
                    part.size,
                    ExpectedDigests(),
                    part_number=part.part_number,
                    offset=part.offset,
                )
                stored.append(copy)
        except BaseException:
            for part in stored:
                self._objects.forget_part(part)
            raise
        return stored

    def read_range(self, record: ObjectRecord, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes [start, end) of a version, as a body another write can consume (UploadPartCopy)."""
        if record.inline_data is not None:
            return _once(record.inline_data[start:end])
        return _bytes(self._objects.stream_parts(record.parts, start, end))


async def _bytes(chunks: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield bytes(chunk)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data
