"""The temp file a share is written into before it is renamed into place.

Shares are written with O_DIRECT where the file system allows it, from
reused page-aligned buffers; see :class:`TempShare` for why. Every method is
blocking and is called through ``run_io`` by :mod:`cargohold.storage.local`,
one thread job at a time per file.
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
import threading
from pathlib import Path
from typing import Any

from cargohold.concurrency import run_io
from cargohold.errors import InsufficientStorage

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


class TempShare:
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


async def discard_after(pending: asyncio.Future[None], tmp: TempShare) -> None:
    """Remove a failed put's temp file, after the write that may still use its fd ends."""
    with contextlib.suppress(BaseException):
        await pending
    await run_io(tmp.discard)
