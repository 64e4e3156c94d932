"""Scripted faults around any share store, for tests of repair, scrub and failover.

:class:`FaultyShareStore` wraps a ``ShareStore`` and, until told otherwise,
behaves exactly like it (the contract suite runs against a wrapper with no
faults). Tests then script what a real node does on a bad day::

    store = FaultyShareStore(MemoryShareStore())
    store.fail("open", NodeUnavailable, share_ids={"p1.3"}, times=1)
    gate = asyncio.Event()
    stalled = store.stall("put", until=gate)   # stalled.fired is set once a put waits
    store.flip_byte(4096, share_ids={"p1.0"})  # bit rot in what open() returns
    store.cut_short(100)                       # every range breaks after 100 bytes
    store.down = True                          # everything: NodeUnavailable

Faults apply in the order they were added; each may be limited to some share
ids and to the next ``times`` calls that match, after which it is gone.
Every call is recorded in :attr:`FaultyShareStore.calls`.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from cargohold.errors import InvalidArgument, NodeUnavailable
from cargohold.storage import frames
from cargohold.storage.share_store import (
    DEFAULT_LIST_LIMIT,
    ShareInfo,
    ShareReader,
    ShareStore,
    VerifyReport,
)

Method = Literal["put", "append", "open", "verify", "list", "delete"]
METHODS: frozenset[str] = frozenset({"put", "open", "verify", "list", "delete"})
ErrorSpec = BaseException | type[BaseException]


@dataclass(eq=False)
class Fault:
    """One scripted fault. ``hits`` counts how often it fired; ``fired`` is set each time."""

    kind: Literal["fail", "stall", "flip", "cut"]
    method: str
    share_ids: frozenset[str] | None = None
    times: int | None = None  # matching calls left; None = every one
    error: ErrorSpec | None = None
    until: asyncio.Event | None = None
    seconds: float | None = None
    offset: int = 0  # flip: share offset of the byte; cut: bytes delivered before the break
    xor: int = 0xFF
    hits: int = 0
    fired: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, method: str, share_id: str | None) -> bool:
        if self.method != method or self.times == 0:
            return False
        return self.share_ids is None or share_id in self.share_ids

    def take(self) -> None:
        """Count one firing (and use up one of ``times``)."""
        if self.times is not None:
            self.times -= 1
        self.hits += 1
        self.fired.set()


class FaultyShareStore:
    """A ``ShareStore`` around ``inner`` that injects the faults a test scripts."""

    def __init__(self, inner: ShareStore, name: str | None = None) -> None:
        self.inner = inner
        self.name = name or inner.name
        #: While True every call, and every read of an open range, raises NodeUnavailable.
        self.down = False
        self.faults: list[Fault] = []
        #: (method, share id or None) of every call, in order, faulted or not.
        self.calls: list[tuple[str, str | None]] = []

    # -- scripting ------------------------------------------------------------

    def _add(self, fault: Fault) -> Fault:
        if fault.times is not None and fault.times < 1:
            raise ValueError("times must be at least 1 (or None for every call)")
        self.faults.append(fault)
        return fault

    @staticmethod
    def _ids(share_ids: Iterable[str] | None) -> frozenset[str] | None:
        return None if share_ids is None else frozenset(share_ids)

    def fail(
        self,
        method: Method,
        error: ErrorSpec,
        *,
        share_ids: Iterable[str] | None = None,
        times: int | None = None,
    ) -> Fault:
        """Make ``method`` raise ``error`` (an instance, or a class to instantiate)."""
        _check_method(method)
        return self._add(Fault("fail", method, self._ids(share_ids), times, error=error))

    def stall(
        self,
        method: Method,
        *,
        until: asyncio.Event | None = None,
        seconds: float | None = None,
        share_ids: Iterable[str] | None = None,
        times: int | None = None,
    ) -> Fault:
        """Make ``method`` wait for ``until`` to be set, or ``seconds``, before it runs."""
        _check_method(method)
        if (until is None) == (seconds is None):
            raise ValueError("stall needs exactly one of until= and seconds=")
        return self._add(Fault("stall", method, self._ids(share_ids), times, until=until, seconds=seconds))

    def flip_byte(
        self,
        offset: int,
        *,
        xor: int = 0xFF,
        share_ids: Iterable[str] | None = None,
        times: int | None = None,
    ) -> Fault:
        """XOR the byte at share offset ``offset`` in what ranges opened from now on return.

        The stored share is untouched (the store's own ``verify`` finds it
        clean); ``times`` counts ``open`` calls.
        """
        if not 1 <= xor <= 255:
            raise ValueError("xor must change the byte: 1..255")
        return self._add(Fault("flip", "open", self._ids(share_ids), times, offset=offset, xor=xor))

    def cut_short(
        self, after: int, *, share_ids: Iterable[str] | None = None, times: int | None = None
    ) -> Fault:
        """Ranges opened from now on deliver ``after`` bytes, then break (NodeUnavailable)."""
        return self._add(Fault("cut", "open", self._ids(share_ids), times, offset=after))

    def clear(self) -> None:
        """Remove every fault (``down`` is left as it is)."""
        self.faults.clear()

    # -- applying -------------------------------------------------------------

    async def _before(self, method: str, share_id: str | None) -> list[Fault]:
        """Record the call, apply stalls and errors; returns the read faults that match."""
        self.calls.append((method, share_id))
        self._check_up()
        read_faults = []
        for fault in list(self.faults):
            if not fault.matches(method, share_id):
                continue
            fault.take()
            if fault.times == 0:
                self.faults.remove(fault)
            if fault.kind == "stall":
                if fault.until is not None:
                    await fault.until.wait()
                else:
                    await asyncio.sleep(fault.seconds or 0)
                self._check_up()
            elif fault.kind == "fail":
                error = fault.error
                if isinstance(error, type):
                    error = error(f"injected fault: {method} {share_id or ''} on {self.name}".strip())
                assert error is not None
                raise error
            else:
                read_faults.append(fault)
        return read_faults

    def _check_up(self) -> None:
        if self.down:
            raise NodeUnavailable(f"{self.name} is down (injected)")

    # -- the contract ---------------------------------------------------------

    async def put(self, share_id: str, chunks: AsyncIterator[bytes], size: int | None = None) -> int:
        await self._before("put", share_id)
        return await self.inner.put(share_id, chunks, size)

    async def append(self, share_id: str, offset: int, chunks: AsyncIterator[bytes]) -> int:
        await self._before("append", share_id)
        return await self.inner.append(share_id, offset, chunks)

    async def open(self, share_id: str, start: int = 0, end: int | None = None) -> FaultyReader:
        read_faults = await self._before("open", share_id)
        reader = await self.inner.open(share_id, start, end)
        return FaultyReader(self, reader, start, read_faults, f"share {share_id} in {self.name}")

    async def verify(self, share_id: str, *, quarantine: bool = False) -> VerifyReport:
        await self._before("verify", share_id)
        return await self.inner.verify(share_id, quarantine=quarantine)

    async def list(self, after: str = "", limit: int = DEFAULT_LIST_LIMIT) -> builtins.list[ShareInfo]:
        await self._before("list", None)
        return await self.inner.list(after, limit)

    async def delete(self, share_id: str) -> bool:
        await self._before("delete", share_id)
        return await self.inner.delete(share_id)


class FaultyReader:
    """A range from the inner store, with flipped bytes and breaks applied on the way out."""

    def __init__(
        self, store: FaultyShareStore, inner: ShareReader, start: int, faults: list[Fault], where: str
    ) -> None:
        self._store = store
        self._inner = inner
        self._start = start
        self._consumed = 0
        self._flips = [(f.offset, f.xor) for f in faults if f.kind == "flip"]
        cuts = [f.offset for f in faults if f.kind == "cut"]
        self._cut = min(cuts) if cuts else None
        self._where = where
        self.length = inner.length
        self.total = inner.total

    @property
    def remaining(self) -> int | None:
        return None if self.length is None else self.length - self._consumed

    def _deliver(self, data: bytes) -> bytes:
        """Apply flips to ``data``, which sits at the current position; advance."""
        at = self._start + self._consumed
        if self._flips:
            changed = bytearray(data)
            for offset, xor in self._flips:
                if at <= offset < at + len(data):
                    changed[offset - at] ^= xor
            data = bytes(changed)
        self._consumed += len(data)
        return data

    def _broken(self) -> NodeUnavailable:
        return NodeUnavailable(f"{self._where}: range broke after {self._consumed} bytes (injected)")

    async def readexactly(self, n: int) -> bytes:
        self._store._check_up()
        if self._cut is not None and self._consumed + n > self._cut:
            raise self._broken()
        return self._deliver(await self._inner.readexactly(n))

    async def read_frame(self, expected_index: int) -> bytes:
        return await frames.read_frame(self.readexactly, self.remaining, expected_index, self._where)

    async def iter_raw(self, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        if chunk_size < 1:
            raise InvalidArgument(f"chunk size {chunk_size} must be positive")
        async for chunk in self._inner.iter_raw(chunk_size):
            self._store._check_up()
            if self._cut is not None and self._consumed + len(chunk) > self._cut:
                head = chunk[: self._cut - self._consumed]
                if head:
                    yield self._deliver(head)
                raise self._broken()
            yield self._deliver(chunk)

    async def close(self) -> None:
        await self._inner.close()

    async def __aenter__(self) -> FaultyReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"no such share-store method: {method!r}")


if TYPE_CHECKING:

    def _conforms(store: FaultyShareStore, reader: FaultyReader) -> tuple[ShareStore, ShareReader]:
        return store, reader
