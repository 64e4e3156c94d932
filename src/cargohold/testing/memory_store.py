"""An in-memory share store that honours the whole ``ShareStore`` contract.

For unit tests of repair, scrub, rebalance and gc: no disk, no sockets, yet
the same answers as a node (the contract suite in
``tests/integration/test_share_store_contract.py`` runs against it). That
includes the optional capacity with reservations for puts still streaming,
frame-aware ``verify`` (the walk is the node's own, :func:`walk_frames`) and
quarantine. :meth:`MemoryShareStore.corrupt` flips a stored byte, as bit rot
would.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cargohold.errors import (
    IncompleteBody,
    InsufficientStorage,
    InvalidArgument,
    NodeUnavailable,
    ShareCorrupt,
    ShareNotFound,
    ShareOffsetMismatch,
)
from cargohold.storage import frames
from cargohold.storage.inflight import PutsInFlight
from cargohold.storage.local import validate_share_id
from cargohold.storage.share_store import DEFAULT_LIST_LIMIT, ShareInfo, VerifyReport, check_listing

if TYPE_CHECKING:
    from cargohold.storage.share_store import ShareReader, ShareStore


@dataclass(frozen=True, slots=True)
class _Stored:
    data: bytes
    mtime: float


class MemoryShareReader(frames.KnownRangeReader):
    """A range of a share's bytes as they were when it was opened."""

    def __init__(self, data: bytes, start: int, length: int, total: int, where: str) -> None:
        self._data = memoryview(data)
        self._pos = start
        self._end = start + length
        self._where = where
        self._closed = False
        self.length: int | None = length
        self.total: int | None = total

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    async def readexactly(self, n: int) -> bytes:
        if self._closed:
            raise NodeUnavailable(f"{self._where}: reader is closed")
        if n > self.remaining:
            raise NodeUnavailable(f"{self._where}: range ended {n - self.remaining} bytes early")
        data = bytes(self._data[self._pos : self._pos + n])
        self._pos += n
        return data

    async def close(self) -> None:
        self._closed = True

    async def __aenter__(self) -> MemoryShareReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class MemoryShareStore:
    """Shares in a dict; ``capacity`` (bytes, optional) is enforced like a node's.

    ``quarantine`` maps ``<id>.<time_ns>`` to the bytes of each share that
    ``verify(quarantine=True)`` moved aside.
    """

    def __init__(self, name: str = "memory", capacity: int | None = None) -> None:
        self.name = name
        self.capacity = capacity
        self.quarantine: dict[str, bytes] = {}
        self._shares: dict[str, _Stored] = {}
        self._reserved = 0
        self._puts = PutsInFlight()  # a delete while a put runs undoes it, as on a node
        self._appending: set[str] = set()

    # -- figures and test helpers ---------------------------------------------

    @property
    def used(self) -> int:
        return sum(len(s.data) for s in self._shares.values())

    def stats(self) -> dict[str, Any]:
        """The node's health figures, for the same assertions."""
        used = self.used
        free = None if self.capacity is None else max(0, self.capacity - used)
        return {
            "capacity": self.capacity,
            "used": used,
            "free": free,
            "shares": len(self._shares),
            "quarantined": len(self.quarantine),
        }

    def data(self, share_id: str) -> bytes:
        """A stored share's bytes (ShareNotFound if absent)."""
        return self._get(share_id).data

    def corrupt(self, share_id: str, offset: int, xor: int = 0x01) -> None:
        """Flip bits of one stored byte in place, as bit rot would (no new mtime)."""
        stored = self._get(share_id)
        data = bytearray(stored.data)
        data[offset] ^= xor
        self._shares[share_id] = _Stored(bytes(data), stored.mtime)

    def _get(self, share_id: str) -> _Stored:
        stored = self._shares.get(validate_share_id(share_id))
        if stored is None:
            raise ShareNotFound(f"share {share_id!r} is not stored in {self.name}")
        return stored

    # -- the contract ---------------------------------------------------------

    async def put(self, share_id: str, chunks: AsyncIterator[bytes], size: int | None = None) -> int:
        validate_share_id(share_id)
        held = 0  # this put's part of _reserved
        if size is not None:
            if size < 0:
                raise InvalidArgument(f"share size {size} is negative")
            self._admit(share_id, size)
            held = size
        self._reserved += held
        parts: list[bytes] = []
        written = 0
        put = self._puts.begin(share_id)
        try:
            async for chunk in chunks:
                if size is None:
                    self._admit(share_id, len(chunk))
                    self._reserved += len(chunk)
                    held += len(chunk)
                elif written + len(chunk) > size:
                    raise InvalidArgument(f"share body exceeds the {size} bytes that were announced")
                parts.append(bytes(chunk))
                written += len(chunk)
            if size is not None and written < size:
                raise IncompleteBody(f"share body has {written} bytes, {size} were announced")
            if not put.doomed:  # a delete that arrived meanwhile came last
                self._shares[share_id] = _Stored(b"".join(parts), time.time())
        finally:
            self._puts.end(put)
            self._reserved -= held
        return written

    async def append(self, share_id: str, offset: int, chunks: AsyncIterator[bytes]) -> int:
        """Bytes are kept aside until the stream ends: a failed append leaves the share as it was."""
        validate_share_id(share_id)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidArgument(f"append offset {offset!r} must be a non-negative integer")
        if share_id in self._appending:
            raise ShareOffsetMismatch(f"share {share_id!r} has another append running")
        stored = self._shares.get(share_id)
        if stored is None and offset > 0:
            raise ShareNotFound(f"share {share_id!r} is not stored in {self.name}")
        size = 0 if stored is None else len(stored.data)
        if size != offset:
            raise ShareOffsetMismatch(
                f"share {share_id!r} is {size} bytes long, the append expected {offset}"
            )
        self._appending.add(share_id)
        held = 0
        parts: list[bytes] = []
        try:
            async for chunk in chunks:
                self._admit(share_id, len(chunk))
                self._reserved += len(chunk)
                held += len(chunk)
                parts.append(bytes(chunk))
            current = self._shares.get(share_id)
            base = current.data if current is not None else b""
            self._shares[share_id] = _Stored(base + b"".join(parts), time.time())
        finally:
            self._reserved -= held
            self._appending.discard(share_id)
        return offset + held

    def _admit(self, share_id: str, more: int) -> None:
        if self.capacity is not None and self.used + self._reserved + more > self.capacity:
            raise InsufficientStorage(f"share {share_id!r} does not fit in {self.name}")

    async def open(self, share_id: str, start: int = 0, end: int | None = None) -> MemoryShareReader:
        validate_share_id(share_id)
        if start < 0 or (end is not None and end < start):
            raise InvalidArgument(f"bad share range {start}-{end}")
        stored = self._get(share_id)
        size = len(stored.data)
        if start >= size and not start == size == 0:
            raise ShareCorrupt(f"share {share_id} in {self.name} is shorter than byte {start}")
        last = size - 1 if end is None else min(end, size - 1)
        return MemoryShareReader(
            stored.data, start, last - start + 1, size, f"share {share_id} in {self.name}"
        )

    async def verify(self, share_id: str, *, quarantine: bool = False) -> VerifyReport:
        data = self._get(share_id).data
        found, corrupt = frames.walk_frames(lambda n, at: data[at : at + n], len(data))
        moved = bool(corrupt) and quarantine
        if moved:
            self.quarantine[f"{share_id}.{time.time_ns()}"] = self._shares.pop(share_id).data
        return VerifyReport(share_id, found, tuple(corrupt), len(data), quarantined=moved)

    async def list(self, after: str = "", limit: int = DEFAULT_LIST_LIMIT) -> builtins.list[ShareInfo]:
        after, limit = check_listing(after, limit)
        ids = sorted(i for i in self._shares if i > after)[:limit]
        return [ShareInfo(i, len(self._shares[i].data), self._shares[i].mtime) for i in ids]

    async def delete(self, share_id: str) -> bool:
        doomed = self._puts.doom(validate_share_id(share_id))
        return self._shares.pop(share_id, None) is not None or doomed


if TYPE_CHECKING:

    def _conforms(store: MemoryShareStore, reader: MemoryShareReader) -> tuple[ShareStore, ShareReader]:
        return store, reader
