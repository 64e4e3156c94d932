"""A put in parts: one upload session, parts sent by a thread pool, resumable.

The rules (part plan, which parts a resumed run re-sends, what may be retried,
where the state file lives) are in ``transfer.py``; this module runs them
against a :class:`GatewayClient` and reports to a Rich progress bar.

Memory stays bounded: each of the N workers streams its part straight from
the file in 1 MiB ``pread`` chunks, hashing as it sends, so at most N parts
are in flight and each holds one chunk. The md5 the gateway answers for a part
must equal ours, or the part is sent again (like a transport error or a 5xx,
up to three retries with backoff). Completion names every part with its md5;
only ``--verify`` adds whole-file digests, because the gateway must then read
the whole object back to check them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import Progress, TaskID

from cargohold.cli import transfer as plan
from cargohold.cli.api_client import CHUNK, ApiError, ClientError, GatewayClient

Say = Callable[[str], None]


@dataclass(frozen=True)
class PartOptions:
    parallel: int = plan.DEFAULT_PARALLEL
    part_size: int = plan.DEFAULT_PART_SIZE
    verify: bool = False
    retries: int = plan.RETRIES
    backoff: float = 0.5  # seconds before the first retry; doubles each time


class Cancelled(Exception):
    """Another part failed or the user pressed Ctrl-C: stop sending."""


class MultipartPut:
    """One run of ``put`` in parts for one regular file (see the module docstring)."""

    def __init__(
        self,
        api: GatewayClient,
        source: Path,
        bucket: str,
        key: str,
        *,
        content_type: str | None,
        options: PartOptions,
        progress: Progress,
        say: Say,
        states: Path | None = None,
    ) -> None:
        self.api, self.source, self.bucket, self.key = api, source, bucket, key
        self.content_type = content_type
        self.options = options
        self.progress = progress
        self.say = say
        self.states = plan.state_dir() if states is None else states
        self.upload_id: str | None = None
        self.resumed = False
        self.sha256: str | None = None  # of the whole file, with --verify
        self._cancel = threading.Event()
        self._task: TaskID | None = None
        self._fd = -1

    # ------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        """Send the file and complete the upload; return the object's JSON."""
        with self.source.open("rb") as fh:
            self._fd = fh.fileno()
            before = os.fstat(self._fd)
            size, mtime = before.st_size, before.st_mtime_ns
            ident = plan.state_key(self.api.url, self.bucket, self.key, self.source, size, mtime)
            state_file = self.states / f"{ident}.json"
            part_size = plan.fit_part_size(size, self.options.part_size)
            upload_id, part_size, stored = self._session(state_file, size, mtime, part_size)
            parts = plan.plan_parts(size, part_size)
            try:
                md5s = self._check_stored(upload_id, plan.resume_plan(parts, stored), len(parts))
                missing = [p for p in parts if p.number not in md5s]
                self._task = self.progress.add_task(
                    f"put {self.bucket}/{self.key}", total=size, completed=size - sum(p.size for p in missing)
                )
                whole = self._send_parts(upload_id, missing, md5s, size)
                after = os.fstat(self._fd)
                if (after.st_size, after.st_mtime_ns) != (size, mtime):
                    self._drop(upload_id, state_file)
                    raise ClientError("source_changed", f"{self.source} changed while it was uploaded")
                listed = [{"part_number": p.number, "md5": md5s[p.number]} for p in parts]
                answer = self.api.complete_upload(upload_id, listed, **(whole or {}))
            except ClientError as exc:
                if exc.code == "source_changed":
                    raise
                raise type(exc)(
                    exc.code,
                    f"{exc.detail} (run the same command again to resume upload {upload_id})",
                    exc.status,
                ) from exc
            except (KeyboardInterrupt, Cancelled):
                self.say(f"interrupted: run the same command again to resume upload {upload_id}")
                raise KeyboardInterrupt from None
        state_file.unlink(missing_ok=True)
        if self.resumed:
            self.say(
                f"completed upload {upload_id}: sent {len(missing)} parts, kept {len(parts) - len(missing)}"
            )
        self.sha256 = whole["sha256"] if whole else None
        obj = dict(answer.get("object") or {})
        etag, want = obj.get("etag"), plan.multipart_etag([md5s[p.number] for p in parts])
        if isinstance(etag, str) and etag.endswith(f"-{len(parts)}") and etag != want:
            raise ClientError(
                "checksum_mismatch", f"the gateway joined the parts into ETag {etag}, not {want}"
            )
        return obj

    def _check_stored(self, upload_id: str, todo: plan.ResumePlan, count: int) -> dict[int, str]:
        """Hash the stored parts' local bytes; return the md5 of each that matches."""
        if not self.resumed:
            return {}
        expected = {part.number: md5 for part, md5 in todo.check}
        local = self._in_pool(self._local_md5, [part for part, _ in todo.check])
        kept = {n: md5 for n, md5 in local.items() if md5 == expected[n]}
        differ = len(local) - len(kept)
        note = f" ({differ} differ from the file and are sent again)" if differ else ""
        self.say(f"resuming upload {upload_id}: {len(kept)}/{count} parts already stored{note}")
        return kept

    def _send_parts(
        self, upload_id: str, parts: list[plan.PartPlan], md5s: dict[int, str], size: int
    ) -> dict[str, str] | None:
        """Send ``parts`` (adding their md5s to ``md5s``); whole-file digests with --verify."""
        with ThreadPoolExecutor(1, thread_name_prefix="put-hash") as hasher:
            whole = hasher.submit(self._whole_file, size) if self.options.verify else None
            try:
                md5s.update(self._in_pool(lambda part: self._send(upload_id, part), parts))
                return whole.result() if whole is not None else None
            except BaseException:
                self._cancel.set()
                raise

    def _in_pool(self, work: Callable[[plan.PartPlan], str], parts: list[plan.PartPlan]) -> dict[int, str]:
        """``work(part)`` for every part on ``parallel`` threads; the first failure stops the rest.

        A failing worker raises the cancel flag itself, before it can take the
        next part; the error raised here is the first real one, not the
        :class:`Cancelled` of the parts it stopped.
        """

        def guarded(part: plan.PartPlan) -> str:
            try:
                return work(part)
            except BaseException:
                self._cancel.set()
                raise

        results: dict[int, str] = {}
        with ThreadPoolExecutor(self.options.parallel, thread_name_prefix="put-part") as pool:
            futures = {pool.submit(guarded, part): part for part in parts}
            try:
                for future in as_completed(futures):
                    results[futures[future].number] = future.result()
            except BaseException as first:
                self._cancel.set()
                for future in futures:
                    future.cancel()
                wait(futures)  # running parts stop at their next chunk
                if isinstance(first, Cancelled):
                    for future in futures:
                        error = None if future.cancelled() else future.exception()
                        if error is not None and not isinstance(error, Cancelled):
                            raise error from None
                raise
        return results

    def _session(
        self, state_file: Path, size: int, mtime: int, part_size: int
    ) -> tuple[str, int, dict[int, plan.StoredPart]]:
        """Resume the session the state file remembers, or create one and remember it."""
        state = plan.load_state(state_file)
        if state is not None:
            upload: dict[str, Any] | None = None
            try:
                upload = self.api.get_upload(state.upload_id)
            except ApiError as exc:
                if exc.status not in (404, 410):
                    raise
                problem: str | None = "it no longer exists"
            else:
                problem = plan.session_problem(
                    upload,
                    size=size,
                    part_size=state.part_size,
                    bucket=self.bucket,
                    key=self.key,
                    now=datetime.now(UTC),
                )
            if problem is None and upload is not None:
                self.upload_id, self.resumed = state.upload_id, True
                return state.upload_id, state.part_size, plan.stored_parts(upload)
            self.say(f"starting over: upload {state.upload_id} cannot be resumed ({problem})")
            if upload is not None and upload.get("status") in ("PENDING", "LOADING"):
                self._drop(state.upload_id, state_file)
            state_file.unlink(missing_ok=True)
        created = self.api.create_upload(
            self.bucket, self.key, size=size, content_type=self.content_type, part_size=part_size
        )
        self.upload_id = str(created["id"])
        plan.save_state(
            state_file,
            plan.UploadState(
                upload_id=self.upload_id,
                part_size=part_size,
                url=self.api.url,
                bucket=self.bucket,
                key=self.key,
                path=os.path.abspath(self.source),
                size=size,
                mtime_ns=mtime,
            ),
        )
        return self.upload_id, part_size, {}

    def _drop(self, upload_id: str, state_file: Path) -> None:
        """Abort a session we will not finish (best effort) and forget it."""
        state_file.unlink(missing_ok=True)
        with contextlib.suppress(ClientError):
            self.api.abort_upload(upload_id)

    # ------------------------------------------------------------ one part (in a worker)

    def _read(self, offset: int, size: int, *digests: Any) -> Iterator[bytes]:
        """The file's bytes [offset, offset + size) in 1 MiB chunks, hashed on the way."""
        end = offset + size
        while offset < end:
            if self._cancel.is_set():
                raise Cancelled
            chunk = os.pread(self._fd, min(CHUNK, end - offset), offset)
            if not chunk:
                raise ClientError("source_changed", f"{self.source} shrank while it was uploaded")
            for digest in digests:
                digest.update(chunk)
            offset += len(chunk)
            yield chunk

    def _local_md5(self, part: plan.PartPlan) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        for _ in self._read(part.offset, part.size, digest):
            pass
        return digest.hexdigest()

    def _send(self, upload_id: str, part: plan.PartPlan) -> str:
        assert self._task is not None
        task = self._task
        delays = plan.backoff_delays(self.options.retries, self.options.backoff)
        for attempt in range(len(delays) + 1):
            digest = hashlib.md5(usedforsecurity=False)
            sent = 0

            def body() -> Iterator[bytes]:
                nonlocal sent
                for chunk in self._read(part.offset, part.size, digest):  # noqa: B023
                    yield chunk
                    sent += len(chunk)
                    self.progress.advance(task, len(chunk))

            try:
                answer = self.api.put_part(upload_id, part.number, body(), part.size)
                ours = digest.hexdigest()
                theirs = str(answer.get("md5") or "").lower()
                if answer.get("size") != part.size or theirs != ours:
                    raise ClientError(
                        "part_mismatch",
                        f"part {part.number}: the gateway stored {answer.get('size')} bytes with md5 "
                        f"{theirs or '-'}, we sent {part.size} bytes with md5 {ours}",
                    )
                return ours
            except ClientError as exc:
                self.progress.advance(task, -sent)
                if attempt == len(delays) or not plan.is_retryable(exc) or self._cancel.is_set():
                    raise
                wait = delays[attempt]
                self.say(f"part {part.number} failed ({exc.code}: {exc.detail}); retrying in {wait:g}s")
                if self._cancel.wait(wait):
                    raise Cancelled from exc
        raise AssertionError("unreachable")

    def _whole_file(self, size: int) -> dict[str, str]:
        """md5 and SHA-256 of the whole file, read in order beside the part workers."""
        md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
        for _ in self._read(0, size, md5, sha256):
            pass
        return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}
