"""Share files on one local disk: the storage a node serves.

A share is acknowledged only once it is durable: bytes go to a temp file under
``root/tmp``, the file is fsynced, renamed over ``root/shares/<id[:2]>/<id>``
in one step and the directory is fsynced. A crash therefore leaves either the
old share, the new share or a stray temp file (removed at the next open),
never a torn share. See docs/share-format.md.

All blocking file-system calls go through :func:`run_io`; the used-bytes and
share counters are computed once at :meth:`LocalShareStore.open` and then kept
in memory, so health probes never walk the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import functools
import mmap
import os
import re
import secrets
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cargohold.concurrency import run_io
from cargohold.erasure import framing
from cargohold.errors import (
    IncompleteBody,
    InsufficientStorage,
    InvalidArgument,
    InvalidShareId,
    ShareCorrupt,
    ShareNotFound,
)

#: Incoming chunks are gathered to this size before one thread hop writes them.
FLUSH_SIZE = 2 * 1024 * 1024

_SHARE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,159}")


def validate_share_id(share_id: object) -> str:
    """Return ``share_id`` if it is safe as one file name, else raise InvalidShareId.

    The alphabet has no separator and ``..`` is refused outright, so a share
    id can never name anything outside its shard directory, whatever the
    caller did (or forgot) to decode.
    """
    if not isinstance(share_id, str) or _SHARE_ID.fullmatch(share_id) is None or ".." in share_id:
        raise InvalidShareId(
            f"share id {str(share_id)[:200]!r} must be 1-160 of [A-Za-z0-9._-], "
            "start with a letter or digit and not contain '..'"
        )
    return share_id


class LocalShareStore:
    """Share files under one root directory, with a capacity the node advertises.

    ``capacity`` (bytes) caps what the node accepts even when the disk has
    more room; without it the disk's free space is the only limit.
    """

    def __init__(self, root: Path, capacity: int | None = None) -> None:
        self.root = Path(root)
        self.capacity = capacity
        self._shares_dir = self.root / "shares"
        self._tmp_dir = self.root / "tmp"
        self._used = 0
        self._count = 0
        self._reserved = 0  # bytes promised to puts still streaming
        # Held (in I/O threads) around stat + rename/unlink + counter update so
        # concurrent puts and deletes of one id keep the counters exact.
        self._commit_lock = threading.Lock()
        self._cleanups: set[asyncio.Task[None]] = set()

    # -- life cycle ---------------------------------------------------------

    async def open(self) -> None:
        """Create the directories, drop stale temp files and count what is stored."""
        self._used, self._count = await run_io(self._open_sync)

    def _open_sync(self) -> tuple[int, int]:
        self._shares_dir.mkdir(parents=True, exist_ok=True)
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        for stale in self._tmp_dir.iterdir():
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                stale.unlink()
        used = count = 0
        for shard in self._shares_dir.iterdir():
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard):
                if entry.is_file(follow_symlinks=False) and self._is_share_name(shard, entry.name):
                    used += entry.stat(follow_symlinks=False).st_size
                    count += 1
        return used, count

    @staticmethod
    def _is_share_name(shard: Path, name: str) -> bool:
        try:
            validate_share_id(name)
        except InvalidShareId:
            return False
        return name[:2] == shard.name

    # -- paths and figures --------------------------------------------------

    def _final_path(self, share_id: str) -> Path:
        share_id = validate_share_id(share_id)
        return self._shares_dir / share_id[:2] / share_id

    def path(self, share_id: str) -> Path:
        """Where the share lives; raises ShareNotFound if it is not stored (one stat)."""
        final = self._final_path(share_id)
        if not final.is_file():
            raise ShareNotFound(f"share {share_id!r} is not stored on this node")
        return final

    def _disk_free(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def free(self) -> int:
        """Bytes this node may still accept (one statvfs call, no disk walk)."""
        disk = self._disk_free()
        if self.capacity is None:
            return max(0, disk)
        return max(0, min(self.capacity - self._used, disk))

    def stats(self) -> dict[str, Any]:
        """Capacity figures for health probes and placement weights.

        Without a configured capacity a node may grow into all the free space
        of its disk, so it reports ``used + free`` as its capacity: fill
        fractions then stay comparable between nodes that share one disk.
        """
        free = self.free()
        return {
            "capacity": self.capacity if self.capacity is not None else self._used + free,
            "used": self._used,
            "free": free,
            "shares": self._count,
        }

    # -- writes -------------------------------------------------------------

    async def put(self, share_id: str, chunks: AsyncIterator[bytes], expected_size: int | None = None) -> int:
        """Store a share from a byte stream and return its size once it is durable.

        Memory stays at about two flush buffers: one being written by a thread
        while the next fills. Any error or cancellation (a client that hung
        up) removes the temp file; an existing share of the same id is only
        replaced, atomically, when the new one is complete.
        """
        final = self._final_path(share_id)
        if expected_size is not None:
            if expected_size < 0:
                raise InvalidArgument(f"expected size {expected_size} is negative")
            room = self.free() - self._reserved
            if expected_size > room:
                raise InsufficientStorage(
                    f"share of {expected_size} bytes does not fit in {max(0, room)} free bytes"
                )
        reservation = expected_size or 0
        self._reserved += reservation
        tmp = _TempShare(self._tmp_dir / f"{final.name}.{secrets.token_hex(8)}.tmp")
        # The one thread job that may still be using the temp file. It is
        # shielded so a cancelled put never closes or unlinks it under a
        # running write or rename; cleanup waits for it instead.
        # The file is created by its first write, so a small share costs one
        # hop to the I/O pool in all: create, write, fsync, rename, dir fsync.
        pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending.set_result(None)
        written = 0
        try:
            # Chunks are collected, not joined: the worker thread copies them
            # straight into the aligned write buffer, once and off the loop.
            buf: list[bytes] = []
            buffered = 0
            async for chunk in chunks:
                buf.append(chunk)
                buffered += len(chunk)
                written += len(chunk)
                self._check_growth(share_id, written, expected_size)
                if buffered >= FLUSH_SIZE:
                    await asyncio.shield(pending)
                    pending = asyncio.ensure_future(run_io(tmp.write, buf))
                    buf, buffered = [], 0
            await asyncio.shield(pending)
            if expected_size is not None and written < expected_size:
                raise IncompleteBody(f"share body has {written} bytes, {expected_size} were announced")
            pending = asyncio.ensure_future(run_io(self._finish_sync, tmp, buf, final, written))
            await asyncio.shield(pending)
        except BaseException:
            cleanup = asyncio.ensure_future(_discard(pending, tmp))
            self._cleanups.add(cleanup)
            cleanup.add_done_callback(self._cleanups.discard)
            await asyncio.shield(cleanup)  # if cancelled here, cleanup still runs
            raise
        finally:
            self._reserved -= reservation
        return written

    def _check_growth(self, share_id: str, written: int, expected_size: int | None) -> None:
        """Stop a stream as soon as it outgrows what was announced or what is left.

        Disk exhaustion itself surfaces as ENOSPC from the write; this only
        enforces the announced size and the configured capacity.
        """
        if expected_size is not None and written > expected_size:
            raise InvalidArgument(f"share body exceeds the {expected_size} bytes that were announced")
        if (
            expected_size is None
            and self.capacity is not None
            and self._used + self._reserved + written > self.capacity
        ):
            raise InsufficientStorage(f"share {share_id!r} outgrew the node's capacity")

    def _finish_sync(self, tmp: _TempShare, tail: list[bytes], final: Path, size: int) -> None:
        tmp.write(tail, finish=True)
        self._commit_sync(tmp.path, final, size)

    def _commit_sync(self, tmp: Path, final: Path, size: int) -> None:
        """Rename the synced temp file into place, count it, fsync the directory.

        The counters change under the lock together with the rename, so they
        follow the disk even if the directory fsync then fails.
        """
        shard = final.parent
        try:
            shard.mkdir()
        except FileExistsError:
            pass
        else:
            _fsync_dir(self._shares_dir)
        with self._commit_lock:
            try:
                old_size: int | None = os.stat(final).st_size
            except FileNotFoundError:
                old_size = None
            os.replace(tmp, final)
            self._used += size - (old_size or 0)
            self._count += old_size is None
        _fsync_dir(shard)

    async def delete(self, share_id: str) -> bool:
        """Remove a share; False if it was not there.

        No directory fsync: a delete undone by a crash leaves an unreferenced
        share that garbage collection removes again.
        """
        return await run_io(self._delete_sync, self._final_path(share_id))

    def _delete_sync(self, final: Path) -> bool:
        with self._commit_lock:
            try:
                size = os.stat(final).st_size
                os.unlink(final)
            except FileNotFoundError:
                return False
            self._used -= size
            self._count -= 1
        return True

    # -- scrub --------------------------------------------------------------

    async def verify(self, share_id: str) -> dict[str, Any]:
        """Re-read a share frame by frame and report blocks whose checksum fails."""
        final = self.path(share_id)
        try:
            return await run_io(verify_share_file, final)
        except FileNotFoundError:
            raise ShareNotFound(f"share {share_id!r} is not stored on this node") from None


def verify_share_file(path: Path) -> dict[str, Any]:
    """Walk a share file's frames (blocking; call through run_io).

    A frame whose header cannot be trusted is reported corrupt and skipped
    using the size of the first frame, since every full block of a part has
    frames of one size; if the very first header is bad there is no way to
    find the next frame, so the walk stops there.
    """
    corrupt: list[int] = []
    frames = offset = 0
    stride: int | None = None
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        while offset < size:
            index = frames
            frames += 1
            try:
                length, intact = _read_frame_at(f.fileno(), offset, index, size, stride)
            except ShareCorrupt:
                corrupt.append(index)
                if stride is None:
                    break
                offset += stride
                continue
            if not intact:
                corrupt.append(index)
            stride = stride or framing.frame_size(length)
            offset += framing.frame_size(length)
    return {"frames": frames, "corrupt_blocks": corrupt, "bytes": size}


def _read_frame_at(fd: int, offset: int, index: int, size: int, stride: int | None) -> tuple[int, bool]:
    """(payload length, checksum ok) of the frame at ``offset``.

    Raises ShareCorrupt when the header itself cannot be trusted to say where
    the frame ends.
    """
    header = os.pread(fd, framing.HEADER_SIZE, offset)
    _, length, digest = framing.parse_header(header, expected_index=index)
    end = offset + framing.frame_size(length)
    if end > size:
        raise ShareCorrupt(f"frame {index} runs past the end of the file")
    if stride is not None and framing.frame_size(length) != stride and end != size:
        raise ShareCorrupt(f"frame {index} has a different size than its neighbours")
    payload = os.pread(fd, length, offset + framing.HEADER_SIZE)
    try:
        framing.verify_payload(index, payload, digest)
    except ShareCorrupt:
        return length, False
    return length, True


_ALIGN = 4096
_DIRECT_BUFFER = 4 * 1024 * 1024


class _AlignedBuffers:
    """Page-aligned buffers for O_DIRECT writes, reused so their pages are touched once."""

    def __init__(self, keep: int = 64) -> None:
        self._free: list[mmap.mmap] = []
        self._keep = keep
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, _DIRECT_BUFFER)

    def give(self, buffer: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buffer)
                return
        buffer.close()


_BUFFERS = _AlignedBuffers()


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


class _TempShare:
    """A temp file being filled; its fd is used by one thread job at a time.

    Shares are written with O_DIRECT where the file system allows it: the
    bytes go from one reused aligned buffer to the disk, not through the page
    cache. Copying into never-used page-cache pages was measured as the
    largest cost of a node (over half its CPU time during a 1 GiB PUT), and
    a share just written is rarely read back at once. O_DIRECT needs whole
    4 KiB blocks, so a tail of under 4 KiB waits for the next write, and the
    very last one is written through the page cache.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1
        self.offset = 0
        self.direct = False
        self._buffer: mmap.mmap | None = None
        self._held = 0  # bytes at the start of the buffer not yet written

    def create(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        direct = getattr(os, "O_DIRECT", 0)
        try:
            self.fd = os.open(self.path, flags | direct, 0o644)
            self.direct = bool(direct)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # tmpfs and some others refuse O_DIRECT
                raise
            self.fd = os.open(self.path, flags, 0o644)

    def write(self, pieces: list[bytes], finish: bool = False) -> None:
        """Write every byte of ``pieces``; ``finish`` writes the tail, fsyncs and closes."""
        try:
            if self.fd < 0:
                self.create()
            for piece in pieces:
                if self.direct:
                    self._write_direct(memoryview(piece))
                else:
                    _write_all(self.fd, memoryview(piece))
            if self.direct:
                self._flush_whole_blocks()
                if finish:
                    self._write_tail()
            if not self.direct:
                size = sum(len(p) for p in pieces)
                if size and not finish:
                    # Start writeback now so the final fsync has little left to do.
                    start_writeback(self.fd, self.offset, size)
                self.offset += size
            if finish:
                os.fsync(self.fd)
                fd, self.fd = self.fd, -1
                os.close(fd)
                self._release()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage("the node's disk is full") from exc
            raise

    def _write_direct(self, view: memoryview) -> None:
        if self._buffer is None:
            self._buffer = _BUFFERS.take()
        buffer = self._buffer
        while view:
            taken = min(len(buffer) - self._held, len(view))
            buffer[self._held : self._held + taken] = view[:taken]
            self._held += taken
            view = view[taken:]
            if self._held == len(buffer):
                self._flush_whole_blocks()

    def _flush_whole_blocks(self) -> None:
        """Write the whole 4 KiB blocks held; keep the remainder for the next write."""
        buffer = self._buffer
        whole = self._held - self._held % _ALIGN
        if buffer is None or not whole:
            return
        with memoryview(buffer) as aligned:
            _write_all(self.fd, aligned[:whole])
        rest = self._held - whole
        if rest:
            buffer[:rest] = buffer[whole : self._held]
        self._held = rest

    def _write_tail(self) -> None:
        """O_DIRECT takes whole blocks only: the last partial one goes through the page cache."""
        buffer = self._buffer
        if buffer is not None and self._held:
            flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
            fcntl.fcntl(self.fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
            with memoryview(buffer) as tail:
                _write_all(self.fd, tail[: self._held])
            self._held = 0

    def _release(self) -> None:
        if self._buffer is not None:
            buffer, self._buffer = self._buffer, None
            _BUFFERS.give(buffer)

    def discard(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)
        self._release()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Any:
    libc_name = ctypes.util.find_library("c")
    fn = getattr(ctypes.CDLL(libc_name, use_errno=True), "sync_file_range", None) if libc_name else None
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return fn


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range to disk now, without waiting for it.

    Linux otherwise keeps up to ~10% of RAM dirty before writing back, so a
    large share would sit in the page cache until the final fsync and the
    disk would idle while the network is busy. Python's os module has no
    sync_file_range, hence ctypes; elsewhere this is a no-op.
    """
    fn = _sync_file_range()
    if fn is not None:
        fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _discard(pending: asyncio.Future[None], tmp: _TempShare) -> None:
    """Remove a failed put's temp file, after the write that may still use its fd ends."""
    with contextlib.suppress(BaseException):
        await pending
    await run_io(tmp.discard)
