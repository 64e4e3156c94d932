"""Share files on one local disk: the storage a node serves.

A share is acknowledged only once it is durable: bytes go to a temp file under
``root/tmp``, the file is fsynced, renamed over ``root/shares/<id[:2]>/<id>``
in one step and the directory is fsynced. A crash therefore leaves either the
old share, the new share or a stray temp file (removed at the next start),
never a torn share. A share found corrupt by ``verify(quarantine=True)`` is
renamed to ``root/quarantine/<id>.<time_ns>``: kept for inspection, never
served, listed or counted again. See docs/share-format.md.

All blocking file-system calls go through :func:`run_io`; the used-bytes,
share and quarantine counters are computed once at
:meth:`LocalShareStore.start` and then kept in memory, so health probes never
walk the disk.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import os
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cargohold.concurrency import run_io
from cargohold.errors import (
    IncompleteBody,
    InsufficientStorage,
    InvalidArgument,
    InvalidShareId,
    ShareCorrupt,
    ShareNotFound,
    ShareOffsetMismatch,
)
from cargohold.storage import frames
from cargohold.storage.inflight import PutsInFlight
from cargohold.storage.local_append import AppendFile
from cargohold.storage.local_reader import LocalShareReader
from cargohold.storage.share_store import (
    DEFAULT_LIST_LIMIT,
    ShareInfo,
    VerifyReport,
    check_listing,
)
from cargohold.storage.temp_file import TempShare, discard_after

if TYPE_CHECKING:
    from cargohold.storage.share_store import ShareReader, ShareStore

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
    more room; without it the disk's free space is the only limit. Call
    :meth:`start` once before anything else.
    """

    def __init__(self, root: Path, capacity: int | None = None) -> None:
        self.root = Path(root)
        self.name = str(self.root)
        self.capacity = capacity
        self._shares_dir = self.root / "shares"
        self._tmp_dir = self.root / "tmp"
        self._quarantine_dir = self.root / "quarantine"
        self._used = 0
        self._count = 0
        self._quarantined = 0
        # Bytes promised to puts still streaming: a sized put's whole size from
        # its start, an unsized put's bytes as they arrive.
        self._reserved = 0
        # Held (in I/O threads) around stat + rename/unlink + counter update so
        # concurrent puts, deletes and quarantines of one id keep the counters exact.
        self._commit_lock = threading.Lock()
        # Held for nanoseconds, never across I/O: _used and _reserved change
        # together under it (a commit turns a reservation into used bytes in
        # one step), so admission on the loop never counts a share twice.
        self._space_lock = threading.Lock()
        self._cleanups: set[asyncio.Task[None]] = set()
        # Shares with an append running: a second one is refused, not queued.
        self._appending: set[str] = set()
        # Puts running, so that a delete arriving meanwhile undoes them once durable.
        self._puts = PutsInFlight()

    # -- life cycle ---------------------------------------------------------

    async def start(self) -> None:
        """Create the directories, drop stale temp files and count what is stored.

        Only one process may do this for a root at a time (stale temp files
        of a running node would be deleted under it): nodes hold the lock of
        :mod:`cargohold.storage.node_lock` first.
        """
        self._used, self._count, self._quarantined = await run_io(self._start_sync)

    def _start_sync(self) -> tuple[int, int, int]:
        for directory in (self._shares_dir, self._tmp_dir, self._quarantine_dir):
            directory.mkdir(parents=True, exist_ok=True)
        for stale in self._tmp_dir.iterdir():
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                stale.unlink()
        used = count = 0
        for shard in self._shares_dir.iterdir():
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard):
                if entry.is_file(follow_symlinks=False) and self._is_share_name(shard.name, entry.name):
                    used += entry.stat(follow_symlinks=False).st_size
                    count += 1
        with os.scandir(self._quarantine_dir) as entries:
            quarantined = sum(1 for entry in entries if entry.is_file(follow_symlinks=False))
        return used, count, quarantined

    @staticmethod
    def _is_share_name(shard: str, name: str) -> bool:
        try:
            validate_share_id(name)
        except InvalidShareId:
            return False
        return name[:2] == shard

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
            "quarantined": self._quarantined,
        }

    # -- writes -------------------------------------------------------------

    async def put(self, share_id: str, chunks: AsyncIterator[bytes], size: int | None = None) -> int:
        """Store a share from a byte stream and return its size once it is durable.

        Memory stays at about two flush buffers: one being written by a thread
        while the next fills. Any error or cancellation (a client that hung
        up) removes the temp file; an existing share of the same id is only
        replaced, atomically, when the new one is complete. Space is reserved
        as described in :mod:`cargohold.storage.share_store`, so parallel puts
        of unknown size cannot together overrun the capacity.
        """
        final = self._final_path(share_id)
        ticket = _Reservation()
        if size is not None:
            if size < 0:
                raise InvalidArgument(f"share size {size} is negative")
            disk = self._disk_free()
            with self._space_lock:
                room = self._room(disk)
                if size > room:
                    raise InsufficientStorage(
                        f"share of {size} bytes does not fit in {max(0, room)} free bytes"
                    )
                self._reserved += size
                ticket.bytes = size
        tmp = TempShare(self._tmp_dir / f"{final.name}.{secrets.token_hex(8)}.tmp")
        # The one thread job that may still be using the temp file. It is
        # shielded so a cancelled put never closes or unlinks it under a
        # running write or rename; cleanup waits for it instead.
        # The file is created by its first write, so a small share costs one
        # hop to the I/O pool in all: create, write, fsync, rename, dir fsync.
        pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending.set_result(None)
        written = 0
        handed = 0  # bytes given to a thread to write: maybe on disk already
        put = self._puts.begin(share_id)
        try:
            # Chunks are collected, not joined: the worker thread copies them
            # straight into the aligned write buffer, once and off the loop.
            buf: list[bytes] = []
            buffered = 0
            async for chunk in chunks:
                if size is None:
                    self._reserve(share_id, ticket, len(chunk))
                elif written + len(chunk) > size:
                    raise InvalidArgument(f"share body exceeds the {size} bytes that were announced")
                buf.append(chunk)
                buffered += len(chunk)
                written += len(chunk)
                if buffered >= FLUSH_SIZE:
                    await asyncio.shield(pending)
                    pending = asyncio.ensure_future(run_io(tmp.write, buf))
                    handed = written
                    buf, buffered = [], 0
            await asyncio.shield(pending)
            if size is not None and written < size:
                raise IncompleteBody(f"share body has {written} bytes, {size} were announced")
            pending = asyncio.ensure_future(run_io(self._finish_sync, tmp, buf, final, written, ticket))
            handed = written
            await asyncio.shield(pending)
            if put.doomed:  # deleted while it was being made durable: the delete came last
                await run_io(self._delete_sync, final)
        except BaseException:
            # Bytes that never reached the disk are free for other puts at
            # once; the rest stay reserved until the temp file is gone, so
            # stored plus temp bytes never pass the capacity.
            self._release(ticket, keep=handed)
            cleanup = asyncio.ensure_future(discard_after(pending, tmp))
            self._cleanups.add(cleanup)
            cleanup.add_done_callback(self._cleanups.discard)
            await asyncio.shield(cleanup)  # if cancelled here, cleanup still runs
            raise
        finally:
            self._puts.end(put)
            self._release(ticket)  # what the commit did not turn into used bytes
        return written

    async def append(self, share_id: str, offset: int, chunks: AsyncIterator[bytes]) -> int:
        """Write a stream at the end of a share ``offset`` bytes long; see :mod:`.local_append`.

        Space is reserved chunk by chunk as for an unsized put. A failed
        append is cut back to ``offset`` before the error is raised, even
        when cancelled.
        """
        final = self._final_path(share_id)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidArgument(f"append offset {offset!r} must be a non-negative integer")
        if share_id in self._appending:
            raise ShareOffsetMismatch(f"share {share_id!r} has another append running")
        self._appending.add(share_id)
        target = AppendFile(final, share_id, offset)
        ticket = _Reservation()
        pending: asyncio.Future[None] = asyncio.ensure_future(run_io(self._open_append_sync, target))
        try:
            await asyncio.shield(pending)
            buf: list[bytes] = []
            buffered = written = 0
            async for chunk in chunks:
                self._reserve(share_id, ticket, len(chunk))
                buf.append(chunk)
                buffered += len(chunk)
                written += len(chunk)
                if buffered >= FLUSH_SIZE:
                    await asyncio.shield(pending)
                    pending = asyncio.ensure_future(run_io(target.write, buf))
                    buf, buffered = [], 0
            await asyncio.shield(pending)
            pending = asyncio.ensure_future(run_io(self._finish_append_sync, target, buf, written, ticket))
            await asyncio.shield(pending)
        except BaseException:
            cleanup = asyncio.ensure_future(self._undo_append(pending, target, ticket))
            self._cleanups.add(cleanup)
            cleanup.add_done_callback(self._cleanups.discard)
            await asyncio.shield(cleanup)
            raise
        self._appending.discard(share_id)
        return offset + written

    def _open_append_sync(self, target: AppendFile) -> None:
        shard = target.path.parent
        if target.offset == 0 and not shard.is_dir():
            with contextlib.suppress(FileExistsError):
                shard.mkdir()
                _fsync_dir(self._shares_dir)
        target.open()

    def _finish_append_sync(
        self, target: AppendFile, tail: list[bytes], size: int, ticket: _Reservation
    ) -> None:
        if tail:
            target.write(tail)
        target.finish()
        with self._commit_lock:
            with self._space_lock:
                self._used += size
                self._reserved -= ticket.bytes
                ticket.bytes = 0
            self._count += target.created

    async def _undo_append(
        self, pending: asyncio.Future[None], target: AppendFile, ticket: _Reservation
    ) -> None:
        """Wait for the write that may still use the descriptor, then cut the share back."""
        with contextlib.suppress(BaseException):
            await pending
        try:
            await run_io(target.undo)
        finally:
            self._release(ticket)
            self._appending.discard(target.share_id)

    def _release(self, ticket: _Reservation, keep: int = 0) -> None:
        with self._space_lock:
            freed = max(0, ticket.bytes - keep)
            self._reserved -= freed
            ticket.bytes -= freed

    def _room(self, disk_free: int) -> int:
        """Bytes not yet stored or promised (call holding _space_lock)."""
        room = disk_free - self._reserved
        if self.capacity is not None:
            room = min(room, self.capacity - self._used - self._reserved)
        return room

    def _reserve(self, share_id: str, ticket: _Reservation, more: int) -> None:
        """Reserve the next chunk of an unsized put, or refuse it if it does not fit.

        Stored bytes plus every reservation (sized puts' whole sizes, unsized
        puts' bytes so far) are compared with the capacity in one step, so
        parallel puts see each other. Without a capacity only the disk limits
        a put, and its exhaustion surfaces as ENOSPC from the write.
        """
        if self.capacity is None:
            return
        with self._space_lock:
            if self._used + self._reserved + more > self.capacity:
                raise InsufficientStorage(f"share {share_id!r} outgrew the node's capacity")
            self._reserved += more
            ticket.bytes += more

    def _finish_sync(
        self, tmp: TempShare, tail: list[bytes], final: Path, size: int, ticket: _Reservation
    ) -> None:
        tmp.write(tail, finish=True)
        self._commit_sync(tmp.path, final, size, ticket)

    def _commit_sync(self, tmp: Path, final: Path, size: int, ticket: _Reservation) -> None:
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
            with self._space_lock:
                self._used += size - (old_size or 0)
                self._reserved -= ticket.bytes
                ticket.bytes = 0
            self._count += old_size is None
        _fsync_dir(shard)

    async def delete(self, share_id: str) -> bool:
        """Remove a share; False if it was not there.

        No directory fsync: a delete undone by a crash leaves an unreferenced
        share that garbage collection removes again. A put of the same id
        still running is undone once durable (see :mod:`cargohold.storage.inflight`).
        """
        doomed = self._puts.doom(share_id)
        return await run_io(self._delete_sync, self._final_path(share_id)) or doomed

    def _delete_sync(self, final: Path) -> bool:
        with self._commit_lock:
            try:
                size = os.stat(final).st_size
                os.unlink(final)
            except FileNotFoundError:
                return False
            with self._space_lock:
                self._used -= size
            self._count -= 1
        return True

    # -- reads ----------------------------------------------------------------

    async def open(self, share_id: str, start: int = 0, end: int | None = None) -> LocalShareReader:
        """Open bytes ``start``..``end`` (inclusive; None = to the end) of a share.

        The reader holds its own file descriptor, so it keeps reading the file
        it opened even if a put replaces the share or a delete removes it.
        """
        final = self._final_path(share_id)
        if start < 0 or (end is not None and end < start):
            raise InvalidArgument(f"bad share range {start}-{end}")
        fd, size = await run_io(self._open_sync, share_id, final)
        if start >= size and not start == size == 0:
            os.close(fd)
            raise ShareCorrupt(f"share {share_id} in {self.name} is shorter than byte {start}")
        last = size - 1 if end is None else min(end, size - 1)
        return LocalShareReader(fd, start, last - start + 1, size, f"share {share_id} in {self.name}")

    def _open_sync(self, share_id: str, final: Path) -> tuple[int, int]:
        try:
            fd = os.open(final, os.O_RDONLY)
        except FileNotFoundError:
            raise ShareNotFound(f"share {share_id!r} is not stored on this node") from None
        return fd, os.fstat(fd).st_size

    async def list(self, after: str = "", limit: int = DEFAULT_LIST_LIMIT) -> list[ShareInfo]:
        """Up to ``limit`` shares with ids greater than ``after``, in id order.

        Ids sort like their first two characters, the shard directory names,
        so shards before ``after``'s are skipped unread and the walk stops at
        the shard that fills the page: one call reads the (small) top
        directory, a few shards, and stats only the shares it returns.
        """
        after, limit = check_listing(after, limit)
        return await run_io(self._list_sync, after, limit)

    def _list_sync(self, after: str, limit: int) -> builtins.list[ShareInfo]:
        page: list[ShareInfo] = []
        with os.scandir(self._shares_dir) as top:
            shards = sorted(e.name for e in top if e.name >= after[:2] and e.is_dir(follow_symlinks=False))
        for shard in shards:
            try:
                with os.scandir(self._shares_dir / shard) as entries:
                    names = sorted(
                        e.name
                        for e in entries
                        if e.name > after
                        and self._is_share_name(shard, e.name)
                        and e.is_file(follow_symlinks=False)
                    )
            except FileNotFoundError:
                continue
            for name in names:
                try:
                    st = os.stat(self._shares_dir / shard / name)
                except FileNotFoundError:  # deleted or quarantined since the scan
                    continue
                page.append(ShareInfo(name, st.st_size, st.st_mtime))
                if len(page) == limit:
                    return page
        return page

    # -- scrub ----------------------------------------------------------------

    async def verify(self, share_id: str, *, quarantine: bool = False) -> VerifyReport:
        """Re-read a share frame by frame; with ``quarantine``, move it aside if corrupt.

        A share with an append running ends in a frame still arriving: it is
        reported as found, never quarantined for it.
        """
        quarantine = quarantine and share_id not in self._appending
        return await run_io(self._verify_sync, share_id, self._final_path(share_id), quarantine)

    def _verify_sync(self, share_id: str, final: Path, quarantine: bool) -> VerifyReport:
        """Verify, then quarantine exactly the file that was verified.

        A put may replace the share between the walk and the rename; the
        rename happens only if the path still names the verified inode, and
        otherwise the new file is verified in turn.
        """
        while True:
            fd, size = self._open_sync(share_id, final)
            try:
                found, corrupt = frames.walk_frames(functools.partial(os.pread, fd), size)
                verified = os.fstat(fd)
            finally:
                os.close(fd)
            report = VerifyReport(share_id, found, tuple(corrupt), size)
            if not corrupt or not quarantine:
                return report
            if self._quarantine_sync(share_id, final, (verified.st_dev, verified.st_ino)):
                return VerifyReport(share_id, found, tuple(corrupt), size, quarantined=True)

    def _quarantine_sync(self, share_id: str, final: Path, inode: tuple[int, int]) -> bool:
        """Move the verified file aside; False if the path now names another file."""
        target = self._quarantine_dir / f"{share_id}.{time.time_ns()}"
        with self._commit_lock:
            try:
                st = os.stat(final)
            except FileNotFoundError:
                raise ShareNotFound(f"share {share_id!r} was deleted while it was verified") from None
            if (st.st_dev, st.st_ino) != inode:
                return False
            os.rename(final, target)
            with self._space_lock:
                self._used -= st.st_size
            self._count -= 1
            self._quarantined += 1
        _fsync_dir(self._quarantine_dir)
        _fsync_dir(final.parent)
        return True


class _Reservation:
    """Bytes one put holds in ``_reserved``; whoever releases them zeroes this."""

    __slots__ = ("bytes",)

    def __init__(self) -> None:
        self.bytes = 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


if TYPE_CHECKING:

    def _conforms(store: LocalShareStore, reader: LocalShareReader) -> tuple[ShareStore, ShareReader]:
        return store, reader
