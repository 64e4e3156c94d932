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

import errno
import mmap
import os
from collections.abc import AsyncIterator
from pathlib import Path

from cargohold.concurrency import run_io

ALIGN = 4096
READ_SIZE = 4 * 1024 * 1024


class _DirectFile:
    def __init__(self, path: Path, buffer_size: int) -> None:
        try:
            self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # tmpfs and others refuse O_DIRECT
                raise
            self.fd = os.open(path, os.O_RDONLY)
        self.buffers = [mmap.mmap(-1, buffer_size), mmap.mmap(-1, buffer_size)]

    def read(self, which: int, offset: int, length: int) -> bytes:
        """Read ``length`` (aligned) bytes at an aligned ``offset`` into buffer ``which``; a copy."""
        buffer = self.buffers[which]
        with memoryview(buffer) as view:
            got = os.preadv(self.fd, [view[:length]], offset)
        return buffer[:got]

    def close(self) -> None:
        os.close(self.fd)
        for buffer in self.buffers:
            buffer.close()


async def read_range(path: Path, start: int, end: int) -> AsyncIterator[bytes]:
    """Yield bytes [start, end] (inclusive) of ``path``, reading ahead one chunk.

    Reads cover only the aligned blocks around the range, so a small range
    costs a few KiB of disk, not a whole read buffer.
    """
    offset = start - start % ALIGN
    stop = -(-(end + 1) // ALIGN) * ALIGN  # aligned end, exclusive

    def next_length(at: int) -> int:
        return min(READ_SIZE, stop - at)

    handle = await run_io(_DirectFile, path, next_length(offset))
    try:
        skip = start - offset
        remaining = end - start + 1
        which = 0
        pending = run_io(handle.read, which, offset, next_length(offset))
        while remaining > 0:
            data = await pending
            if not data:
                return
            offset += len(data)
            which ^= 1
            more = offset < stop and len(data) == READ_SIZE
            pending = run_io(handle.read, which, offset, next_length(offset)) if more else _nothing()
            piece = data[skip : skip + remaining]
            skip = 0
            remaining -= len(piece)
            yield piece
        await pending
    finally:
        await run_io(handle.close)


async def _nothing() -> bytes:
    return b""
