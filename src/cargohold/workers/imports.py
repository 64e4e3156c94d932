"""The ``import`` job: stream a source into an upload session part by part, then complete it.

The source goes straight into erasure-coded shares through the write path of
upload sessions (``UploadService.write_part``): nothing is staged on disk,
and memory holds the blocks in flight. Each part is durable once written (its
shares on a write quorum, recorded against the upload), so a connection that
drops costs at most the part in flight: the import reconnects from the last
part boundary with ``Range`` (and ``If-Range``: only the same file may
continue). A source that answers with the whole file again is read past the
stored bytes when its validator proves it the same file, and stored from
zero otherwise. A worker that dies leaves the parts; the job's lease lapses
and another worker continues after the last of them.

While the transfer runs, a tick once a second stores the progress (bytes,
rate, size) on condition that the import is still this run's: a cancel, or
another worker that took it over, makes that write fail, and the transfer
stops within the second. Expected md5/sha256 are computed as the bytes go by
(a part that fails is taken back out of them); an import resumed by another
worker has no such running digest, and completion reads the parts back to
verify instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cargohold.concurrency import run_cpu
from cargohold.config import Settings
from cargohold.domain import uploads as sm
from cargohold.domain.imports import (
    Import,
    Plan,
    Progress,
    SourceBrokeOff,
    SourceFailed,
    SourceMisbehaved,
    SourceTooLarge,
    backoff,
    failure_reason,
    part_size_for,
    plan_reconnection,
    stored_content_type,
)
from cargohold.domain.model import Bucket, PartRecord, Principal
from cargohold.domain.uploads import Upload
from cargohold.errors import CargoholdError, InsufficientNodes, NodeUnavailable
from cargohold.service.access import AccessService, Level
from cargohold.service.auth import AuthService
from cargohold.service.checksums import ExpectedDigests
from cargohold.service.imports import ImportService, Source
from cargohold.service.quota import QuotaService
from cargohold.service.uploads import UploadService
from cargohold.workers.jobs import MAX_ATTEMPTS, JobContext

log = logging.getLogger(__name__)

#: Seconds between progress reports (and checks for a cancel).
TICK = 1.0
#: Failures the storage side may cause that a later attempt can get past (nodes coming back).
_TRANSIENT = (SourceFailed, InsufficientNodes, NodeUnavailable)


class ImportRunner:
    """The handler of ``import`` jobs (one :class:`_Run` per claim of a job)."""

    def __init__(
        self,
        imports: ImportService,
        uploads: UploadService,
        access: AccessService,
        auth: AuthService,
        quota: QuotaService,
        source: Source,
        settings: Settings,
    ) -> None:
        self.imports = imports
        self.uploads = uploads
        self.access = access
        self.auth = auth
        self.quota = quota
        self.source = source
        self.settings = settings

    async def handle(self, ctx: JobContext) -> None:
        # Every claim of a job counts one more attempt: the claim's number fences its writes.
        fence = ctx.job.attempts
        record = await self.imports.begin(str(ctx.payload["import_id"]), fence)
        if record is None:
            return  # cancelled while queued, or finished by an earlier run
        run = _Run(self, record, fence)
        try:
            await run.execute(last_try=ctx.job.attempts >= MAX_ATTEMPTS)
        finally:
            ctx.done_bytes, ctx.total_bytes = run.progress.current(), run.total


class _Digests:
    """The whole file's md5/sha256 over bytes [0, size), as the import expects them."""

    def __init__(self, md5: bool, sha256: bool) -> None:
        self.hashers: dict[str, Any] = {}
        if md5:
            self.hashers["md5"] = hashlib.md5(usedforsecurity=False)
        if sha256:
            self.hashers["sha256"] = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        for hasher in self.hashers.values():
            hasher.update(data)
        self.size += len(data)

    def copy(self) -> _Digests:
        twin = _Digests(False, False)
        twin.hashers = {name: h.copy() for name, h in self.hashers.items()}
        twin.size = self.size
        return twin

    def hexdigests(self) -> dict[str, str]:
        return {name: h.hexdigest() for name, h in self.hashers.items()}


class _Stopped(Exception):
    """The import is no longer this run's: cancelled, or taken over by another worker."""


class _Run:
    def __init__(self, runner: ImportRunner, record: Import, fence: int) -> None:
        self.r = runner
        self.record = record
        self.fence = fence
        self.progress = Progress(shown=record.bytes_done)
        self.total = record.total_size
        self.validator = record.validator
        self.counts = {"attempts": record.attempts, "resumes": record.resumes, "restarts": record.restarts}
        self.wants_digests = bool(record.expected_md5 or record.expected_sha256)
        self.digests: _Digests | None = None  # over [0, progress.durable) when set
        self.upload_id = record.upload_id
        self.stop = asyncio.Event()  # set when the import is no longer this run's

    # -- the run and its ticker ----------------------------------------------------------

    async def execute(self, *, last_try: bool) -> None:
        transfer = asyncio.create_task(self._transfer(), name=f"import-{self.record.id}")
        stopped = False
        try:
            while not transfer.done():
                await asyncio.wait({transfer}, timeout=TICK)
                if not transfer.done() and not await self._report():
                    stopped = True
                    await self._stop_transfer(transfer)
            await transfer
        except _Stopped:
            log.info("import %s stopped: cancelled or taken over", self.record.id)
            return
        except asyncio.CancelledError:
            if stopped:
                log.info("import %s stopped: cancelled or taken over", self.record.id)
                return
            raise
        except CargoholdError as exc:
            if stopped:
                log.info("import %s stopped: cancelled or taken over", self.record.id)
                return
            await self._fail(exc)
        except Exception as exc:
            if not last_try:
                raise  # a database hiccup: the job is retried and resumes from the stored parts
            log.exception("import %s failed for good", self.record.id)
            await self._fail(exc)
        finally:
            if not transfer.done():
                transfer.cancel()
                with contextlib.suppress(BaseException):
                    await transfer

    async def _stop_transfer(self, transfer: asyncio.Task[None]) -> None:
        """Stop the transfer at its next chunk or wait; cancel it only if it does not stop (it
        waits on the source then), never in the middle of a database write."""
        self.stop.set()
        await asyncio.wait({transfer}, timeout=2 * TICK)
        if not transfer.done():
            transfer.cancel()

    async def _report(self) -> bool:
        rate = self.progress.rate(time.monotonic())
        return await self.r.imports.record(
            self.record.id,
            self.fence,
            announce=True,
            bytes_done=self.progress.current(),
            rate=int(rate) if rate is not None else None,
        )

    async def _fail(self, exc: BaseException) -> None:
        code, message = failure_reason(exc)
        if await self.r.imports.fail(self.record, self.fence, code, message):
            log.info("import %s failed: %s: %s", self.record.id, code, message)
        else:  # a cancel (or another worker) got there first: what failed here was its doing
            log.info("import %s stopped: cancelled or taken over (%s)", self.record.id, code)

    # -- the transfer ------------------------------------------------------------------------

    async def _transfer(self) -> None:
        user = await self.r.auth.active_user(self.record.user_id)
        who = Principal(user.id, user.name, user.role)
        bucket = await self.r.access.bucket(who, self.record.bucket, Level.WRITE)
        failures = 0
        while True:
            before = self.progress.durable
            try:
                await self._attempt(who, bucket)
                break
            except _TRANSIENT as exc:
                if isinstance(exc, SourceFailed) and not exc.retryable:
                    raise
                if self.progress.durable > before:
                    failures = 0  # a flaky source that keeps moving is not given up on
                failures += 1
                if failures > self.r.settings.import_retries:
                    exc.detail = f"gave up after {failures} attempts in a row: {exc.detail}"
                    raise
                delay = backoff(failures, self.r.settings.import_retry_backoff)
                log.info("import %s: %s; again in %.1f s", self.record.id, exc.detail, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
                if self.stop.is_set():
                    raise _Stopped from None
        await self._complete()

    async def _attempt(self, who: Principal, bucket: Bucket) -> None:
        upload = await self.r.uploads.load(self.upload_id) if self.upload_id else None
        if upload is not None:
            sm.check_open(upload, datetime.now(UTC))  # an upload that expired ends the import
        offset = upload.offset if upload is not None else 0
        self.progress.durable, self.progress.inflight = offset, 0
        if self.digests is not None and self.digests.size != offset:
            self.digests = None
        allowed = await self.r.imports.allow_private()
        self.counts["attempts"] += 1
        async with self.r.source.open(
            self.record.source,
            offset=offset,
            validator=self.validator if offset else None,
            allow_private=allowed,
        ) as reply:
            answer = reply.answer
            plan = plan_reconnection(offset, self.validator, self.total, answer)
            if offset > 0:
                self.counts["resumes" if plan is Plan.CONTINUE else "restarts"] += 1
            if plan is Plan.RESTART and offset > 0:
                await self._start_over(upload)
                offset = 0
                if answer.start != 0:
                    raise SourceMisbehaved("the source changed: reading it again from its start")
            if offset == 0:
                self.validator, self.total = answer.validator, answer.total
            await self._admit(bucket, offset)
            if upload is None:
                upload = await self._create_upload(who, bucket, reply.content_type)
            elif not await self._store_facts():
                raise _Stopped
            body = reply.body
            if plan is Plan.SKIP:
                body = await self._skip(body, offset)
            if self.digests is None and offset == 0 and self.wants_digests:
                self.digests = _Digests(bool(self.record.expected_md5), bool(self.record.expected_sha256))
            # After the parts stored without a gap (one that landed after a part that failed is
            # replaced when its number comes again).
            after = _contiguous(upload.parts) if offset else 0
            await self._parts(upload, _Slicer(body), offset, after + 1)

    async def _admit(self, bucket: Bucket, offset: int) -> None:
        """Refuse a source too large for the size cap or the owner's quota before reading it."""
        if self.total is None:
            return
        cap = self.r.settings.import_max_size
        if self.total > cap:
            raise SourceTooLarge(f"the source holds {self.total} bytes; imports take at most {cap}")
        await self.r.quota.admit(bucket, self.total - offset)

    async def _create_upload(self, who: Principal, bucket: Bucket, source_type: str | None) -> Upload:
        record = self.record
        upload = await self.r.uploads.create(
            who,
            bucket.name,
            record.key,
            content_type=stored_content_type(record.content_type, source_type),
            expected=ExpectedDigests(record.expected_md5, record.expected_sha256),
            protocol=sm.IMPORT,
        )
        self.upload_id = upload.id
        if not await self._store_facts(upload_id=upload.id):
            await self.r.imports.drop_upload(upload.id)
            raise _Stopped
        return upload

    async def _store_facts(self, **values: Any) -> bool:
        facts: dict[str, Any] = {
            "total_size": self.total,
            "validator": self.validator,
            "bytes_done": self.progress.current(),
            **self.counts,
            **values,
        }
        return await self.r.imports.record(self.record.id, self.fence, **facts)

    async def _start_over(self, upload: Upload | None) -> None:
        """The source is not the file the stored parts came from: free them, start from zero."""
        if upload is not None:
            await self.r.imports.discard_parts(upload.id)
        self.progress.durable = 0
        self.digests = None
        self.validator = self.total = None

    async def _skip(self, body: AsyncIterator[bytes], count: int) -> AsyncIterator[bytes]:
        """Read past the ``count`` bytes already stored (hashing them if no digest covers them)."""
        rehash = self.wants_digests and self.digests is None
        if rehash:
            self.digests = _Digests(bool(self.record.expected_md5), bool(self.record.expected_sha256))
        slicer = _Slicer(body)
        async for chunk in slicer.take(count, exact=True):
            if rehash and self.digests is not None:
                await run_cpu(self.digests.update, chunk)
        return slicer.rest()

    async def _parts(self, upload: Upload, source: _Slicer, offset: int, number: int) -> None:
        """Store the source from ``offset`` on as parts ``number``, ``number + 1``, ...

        A part's bytes are read, then its shares are made durable on the nodes
        and it is recorded; the next part streams meanwhile (at most two in
        flight), as a PUT streams on while its nodes write, so a part
        boundary costs no pause. Parts become durable in order; whatever is in
        flight when one fails is dropped, and taken back out of the digests.
        """
        size = part_size_for(self.total, self.r.settings.import_part_size)
        exact = self.total is not None
        finishing: asyncio.Task[PartRecord] | None = None
        streaming: asyncio.Task[PartRecord] | None = None
        snapshots: dict[int, _Digests | None] = {}  # the digests as each part in flight began
        try:
            while True:
                want = size if self.total is None else min(size, self.total - offset)
                if want == 0 or not await source.more():
                    if want and exact:
                        raise SourceBrokeOff(f"the source ended at byte {offset} of {self.total}")
                    break
                snapshots[number] = self.digests.copy() if self.digests is not None else None
                read = asyncio.Event()
                body = self._counted(source.take(want, exact=exact), read)
                streaming = asyncio.create_task(
                    self.r.uploads.write_part(
                        upload, number, body, want if exact else None, ExpectedDigests(), self.record.user_id
                    )
                )
                reading = asyncio.create_task(read.wait())
                while not read.is_set() and not streaming.done():
                    watched = {streaming, reading, *([finishing] if finishing else [])}
                    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                    if finishing is not None and finishing.done():
                        await self._landed(finishing, snapshots)
                        finishing = None
                reading.cancel()
                if finishing is not None:
                    await self._landed(finishing, snapshots)
                if not read.is_set():  # it ended before its bytes did: it failed
                    await self._landed(streaming, snapshots)
                finishing, streaming = streaming, None
                offset += want
                number += 1
            if finishing is not None:
                await self._landed(finishing, snapshots)
        except BaseException:
            for task in (finishing, streaming):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            if snapshots:
                self.digests = snapshots[min(snapshots)]
            self.progress.inflight = 0
            raise

    async def _landed(self, task: asyncio.Task[PartRecord], snapshots: dict[int, _Digests | None]) -> None:
        """A part in flight is durable (or raise why not)."""
        part = await task
        snapshots.pop(part.part_number, None)
        self.progress.durable += part.size
        self.progress.inflight -= part.size

    async def _counted(self, body: AsyncIterator[bytes], read: asyncio.Event) -> AsyncIterator[bytes]:
        """Pass a part's bytes on, counting them, holding the size cap, and hashing them in order
        off the event loop; ``read`` is set once the last byte is hashed and handed on."""
        cap = self.r.settings.import_max_size
        hashing: asyncio.Future[None] | None = None
        async for chunk in body:
            if self.stop.is_set():
                raise _Stopped
            self.progress.inflight += len(chunk)
            if self.progress.durable + self.progress.inflight > cap:
                raise SourceTooLarge(f"the source holds more than the {cap} bytes an import may take")
            if self.digests is not None:
                if hashing is not None:
                    await hashing
                hashing = asyncio.ensure_future(run_cpu(self.digests.update, chunk))
            yield chunk
        if hashing is not None:
            await hashing
        read.set()

    async def _complete(self) -> None:
        assert self.upload_id is not None
        upload = await self.r.uploads.load(self.upload_id)
        if upload is None:
            raise sm.UploadNotOpen(f"the upload of import {self.record.id} is gone")
        size = upload.offset
        digests = self.digests.hexdigests() if self.digests and self.digests.size == size else None
        await self.r.uploads.finish(
            upload,
            self.record.user_id,
            digests=digests,
            also=self.r.imports.uploaded(replace(self.record, upload_id=upload.id), self.fence, size),
        )
        self.total = size
        self.progress.durable = size


def _contiguous(parts: tuple[PartRecord, ...]) -> int:
    """How many parts run 1, 2, ... without a gap (the ones ``Upload.offset`` counts)."""
    numbers = {part.part_number for part in parts}
    count = 0
    while count + 1 in numbers:
        count += 1
    return count


class _Slicer:
    """Cuts a stream of chunks into consecutive pieces of given sizes, keeping the bytes of
    a chunk that straddles two pieces for the next one (memory: one chunk)."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self._body = body
        self._held = b""
        self._ended = False

    async def more(self) -> bool:
        """Whether any byte is left (reads ahead one chunk if none is held)."""
        while not self._held and not self._ended:
            try:
                self._held = bytes(await anext(self._body))
            except StopAsyncIteration:
                self._ended = True
        return bool(self._held)

    async def take(self, size: int, *, exact: bool) -> AsyncIterator[bytes]:
        """The next ``size`` bytes (fewer at the end, or SourceBrokeOff if ``exact``)."""
        left = size
        while left > 0 and await self.more():
            chunk, self._held = self._held[:left], self._held[left:]
            left -= len(chunk)
            yield chunk
        if left > 0 and exact:
            raise SourceBrokeOff(f"the source ended {left} bytes early")

    async def rest(self) -> AsyncIterator[bytes]:
        while await self.more():
            chunk, self._held = self._held, b""
            yield chunk
