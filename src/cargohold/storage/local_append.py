"""Appending to a share file in place, for chunked uploads that grow one part.

A put writes a temp file and renames it over the share, so a share is never
seen torn. An append cannot: the bytes before it are already acknowledged
and a copy of them would cost what the append saves. It writes at the end of
the share file itself instead, and its promise is about lengths: once
``finish`` returns (``fdatasync`` of the file, and of the directory when the
append created it) the new length is durable; if the stream fails first,
``undo`` cuts the file back to the length the append started from. Bytes
past the acknowledged length that a crash leaves behind are never asked for
by a reader: the part's recorded size ends before them.

Every method blocks and is called through ``run_io``, one at a time per file.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from cargohold.errors import InsufficientStorage, ShareNotFound, ShareOffsetMismatch
from cargohold.storage.temp_file import start_writeback


class AppendFile:
    """One append to ``path``, expected to be ``offset`` bytes long when it starts."""

    def __init__(self, path: Path, share_id: str, offset: int) -> None:
        self.path = path
        self.share_id = share_id
        self.offset = offset
        self.position = offset
        self.created = False
        self.finished = False
        self.fd = -1

    def open(self) -> None:
        """Open (or, at offset 0, create) the share and check its length."""
        if self.offset == 0:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                self.created = True
                return
            except FileExistsError:
                pass
        try:
            self.fd = os.open(self.path, os.O_WRONLY)
        except FileNotFoundError:
            raise ShareNotFound(f"share {self.share_id!r} is not stored on this node") from None
        size = os.fstat(self.fd).st_size
        if size != self.offset:
            self.close()
            raise ShareOffsetMismatch(
                f"share {self.share_id!r} is {size} bytes long, the append expected {self.offset}",
                size=size,
            )

    def write(self, pieces: list[bytes]) -> None:
        try:
            for piece in pieces:
                view = memoryview(piece)
                while view:
                    done = os.pwrite(self.fd, view, self.position)
                    self.position += done
                    view = view[done:]
            # Start writeback now so the fsync at the end has little left to do.
            start_writeback(self.fd, self.offset, self.position - self.offset)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage("the node's disk is full") from exc
            raise

    def finish(self) -> None:
        os.fdatasync(self.fd)
        self.close()
        if self.created:
            _fsync_dir(self.path.parent)
        self.finished = True

    def undo(self) -> None:
        """Cut the share back to where this append started (remove it if the append made it)."""
        if self.fd < 0 or self.finished:
            return
        try:
            if self.created:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            else:
                os.ftruncate(self.fd, self.offset)
                os.fdatasync(self.fd)
        finally:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
