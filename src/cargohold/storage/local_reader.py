"""Reading a byte range of a local share file: what ``LocalShareStore.open`` returns."""

from __future__ import annotations

import os

from cargohold.concurrency import run_io
from cargohold.errors import NodeUnavailable
from cargohold.storage import frames

#: A local reader fetches at least this much per thread hop, so reading a
#: 20-byte frame header does not cost a hop of its own.
READ_AHEAD = 1024 * 1024


class LocalShareReader(frames.KnownRangeReader):
    """One byte range of a share file, read with pread in I/O threads.

    Reads go through a read-ahead buffer of at most ``READ_AHEAD`` bytes
    beyond what the caller asked for, so memory stays bounded whatever the
    range's size.
    """

    def __init__(self, fd: int, start: int, length: int, total: int, where: str) -> None:
        self._fd = fd
        self._offset = start  # next file offset to pread
        self._unread = length  # bytes of the range not yet pread
        self._buffer = b""  # pread but not yet returned: self._buffer[self._pos:]
        self._pos = 0
        self._where = where
        self.length: int | None = length
        self.total: int | None = total

    @property
    def remaining(self) -> int:
        return self._unread + len(self._buffer) - self._pos

    async def readexactly(self, n: int) -> bytes:
        if n > self.remaining:
            raise NodeUnavailable(f"{self._where}: range ended {n - self.remaining} bytes early")
        held = len(self._buffer) - self._pos
        if held < n:
            want = min(max(n - held, READ_AHEAD), self._unread)
            data = await self._pread(want)
            if held == 0 and want == n:  # a big read: hand it over without a copy
                return data
            self._buffer, self._pos = self._buffer[self._pos :] + data, 0
        with memoryview(self._buffer) as view:
            data = bytes(view[self._pos : self._pos + n])
        self._pos += n
        return data

    async def _pread(self, want: int) -> bytes:
        if self._fd < 0:
            raise NodeUnavailable(f"{self._where}: reader is closed")
        data = await run_io(os.pread, self._fd, want, self._offset)
        if len(data) < want:  # share files never shrink in place: the disk failed us
            raise NodeUnavailable(f"{self._where}: file ended {want - len(data)} bytes early")
        self._offset += want
        self._unread -= want
        return data

    async def close(self) -> None:
        """Close the file (closing a read-only descriptor does not wait for the disk)."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
        self._buffer, self._pos = b"", 0

    async def __aenter__(self) -> LocalShareReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
