"""Reading share ranges with O_DIRECT: device speed for the cold reads that dominate.

Shares are written with O_DIRECT (see ``local.py``), so a read almost always
starts with nothing in the page cache. Served by sendfile, such a read runs
at the speed of the kernel's small readahead inside the node's event loop;
measured here, 360-410 MB/s for five parallel 200 MB shares where ``dd
iflag=direct`` reads 1,050 MB/s. Large aligned O_DIRECT reads in a worker
thread, each overlapping the socket write of the one before, reach the
device's speed without blocking the loop.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import mmap
import os
from collections.abc import AsyncIterator
from pathlib import Path

from cargohold.concurrency import run_io

ALIGN = 4096
READ_SIZE = 4 * 1024 * 1024


class DirectFile:
    """An open share file: opened before any response byte, so a missing share is a clean 404."""

    def __init__(self, path: Path) -> None:
        try:
            self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # tmpfs and others refuse O_DIRECT
                raise
            self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size
        self.buffers: list[mmap.mmap] = []

    def read(self, which: int, offset: int, length: int) -> bytes:
        """Read ``length`` (aligned) bytes at an aligned ``offset`` into buffer ``which``; a copy."""
        buffer = self.buffers[which]
        with memoryview(buffer) as view:
            got = os.preadv(self.fd, [view[:length]], offset)
        return buffer[:got]

    def allocate(self, buffer_size: int) -> None:
        self.buffers = [mmap.mmap(-1, buffer_size), mmap.mmap(-1, buffer_size)]

    def close(self) -> None:
        os.close(self.fd)
        for buffer in self.buffers:
            buffer.close()


async def open_file(path: Path) -> DirectFile:
    """Open a share file for :func:`read_range` (FileNotFoundError if it is gone)."""
    return await run_io(DirectFile, path)


async def read_range(handle: DirectFile, start: int, end: int) -> AsyncIterator[bytes]:
    """Yield bytes [start, end] (inclusive) of an open file, reading ahead one chunk; closes it.

    Reads cover only the aligned blocks around the range, so a small range
    costs a few KiB of disk, not a whole read buffer.
    """
    offset = start - start % ALIGN
    stop = -(-(end + 1) // ALIGN) * ALIGN  # aligned end, exclusive

    def next_length(at: int) -> int:
        return min(READ_SIZE, stop - at)

    pending: asyncio.Future[bytes] | None = None
    try:
        await run_io(handle.allocate, next_length(offset))
        skip = start - offset
        remaining = end - start + 1
        which = 0
        # A task, not a bare coroutine: the next read must start now, in a
        # thread, while this one is being written to the socket.
        reading = asyncio.ensure_future(run_io(handle.read, which, offset, next_length(offset)))
        pending = reading
        while remaining > 0:
            data = await reading
            pending = None
            if not data:
                return
            offset += len(data)
            which ^= 1
            more = offset < stop and len(data) == READ_SIZE
            if more:
                reading = asyncio.ensure_future(run_io(handle.read, which, offset, next_length(offset)))
                pending = reading
            piece = data[skip : skip + remaining]
            skip = 0
            remaining -= len(piece)
            yield piece
            if not more:
                return
    finally:
        if pending is None:
            await run_io(handle.close)
        else:  # abandoned mid-range: never close the file under a running read
            pending.add_done_callback(functools.partial(_close_after, handle))


def _close_after(handle: DirectFile, read: asyncio.Future[bytes]) -> None:
    if not read.cancelled():
        read.exception()  # retrieved: an abandoned read's failure is of no interest
    handle.close()
