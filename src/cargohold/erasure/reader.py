"""The read pipeline of one part: share streams -> verified frames -> blocks -> bytes.

A read opens the k data shares over exactly the frames that cover the range
and hands out each block as views into those shares: no decode call and no
copy when every data share answers. When a share fails (node down, file gone,
checksum mismatch, stall) it is dropped for the rest of the read and a parity
share is opened from the current block on; blocks are then decoded.

Each share is one HTTP response whose socket and stream buffers fill in the
background; the k frames of a block are read concurrently, and a ranged read
runs one block-reading task ahead of its consumer: up to ``window`` blocks
wait, verified (and decoded on the CPU pool where a share was missing), while
the caller writes earlier ones to its client. Memory stays at ``window + 2``
blocks whatever the size of the range, and a slow client stops the reading
once the window is full (backpressure reaches the nodes through TCP).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from cargohold.concurrency import run_cpu
from cargohold.domain.layout import BlockSpan, Layout, block_span
from cargohold.erasure.codec import Codec, codec_for
from cargohold.erasure.framing import HEADER_SIZE
from cargohold.errors import CargoholdError, ReadUnavailable


class FrameStream(Protocol):
    async def read_frame(self, expected_index: int) -> bytes: ...

    async def close(self) -> None: ...


#: Opens share ``index`` for the byte range [start, end] of its share file.
OpenShare = Callable[[int, int, int], Awaitable[FrameStream]]
#: Told about every share that failed during a read (for repair bookkeeping).
ReportBadShare = Callable[[int, Exception], None]


def full_frame_size(codec: Codec) -> int:
    """Size of the frame a full block produces in each share file of this layout."""
    return _frame_size(codec.layout)


@functools.lru_cache(maxsize=64)
def _frame_size(layout: Layout) -> int:
    return HEADER_SIZE + len(codec_for(layout).encode(bytes(layout.block_size))[0])


class _PartReader:
    """The open share streams of one ranged read, and their replacement on failure."""

    def __init__(
        self,
        codec: Codec,
        part_size: int,
        span: BlockSpan,
        candidates: Sequence[int],
        open_share: OpenShare,
        report: ReportBadShare,
        stall_timeout: float,
    ) -> None:
        self.codec = codec
        self.layout: Layout = codec.layout
        self.part_size = part_size
        self.span = span
        self.rank = {index: position for position, index in enumerate(candidates)}
        self.spare = list(candidates)
        self.sources: dict[int, FrameStream] = {}
        self.open_share = open_share
        self.report = report
        self.stall = stall_timeout
        self.frame = full_frame_size(codec)

    async def _open(self, index: int, block: int) -> None:
        last = (self.span.last_block + 1) * self.frame - 1
        try:
            async with asyncio.timeout(self.stall):
                self.sources[index] = await self.open_share(index, block * self.frame, last)
        except (CargoholdError, OSError, TimeoutError) as exc:
            self.report(index, exc)

    async def fill(self, block: int) -> None:
        """Open spare shares, best first, until k are open or none is left."""
        while len(self.sources) < self.layout.k:
            wanted = self.layout.k - len(self.sources)
            if not self.spare:
                raise ReadUnavailable(
                    f"fewer than {self.layout.k} shares of a part are readable", needed=self.layout.k
                )
            batch, self.spare = self.spare[:wanted], self.spare[wanted:]
            await asyncio.gather(*(self._open(index, block) for index in batch))

    async def _drop(self, index: int) -> None:
        stream = self.sources.pop(index)
        with contextlib.suppress(Exception):
            await stream.close()

    async def read_block(self, block: int) -> list[memoryview]:
        return await self._assemble(block, await self.read_frames(block))

    async def _read_one(self, index: int, block: int) -> tuple[int, bytes | Exception]:
        try:
            async with asyncio.timeout(self.stall):
                return index, await self.sources[index].read_frame(block)
        except (CargoholdError, OSError, TimeoutError) as exc:
            return index, exc

    async def read_frames(self, block: int) -> dict[int, bytes]:
        """k verified frame payloads of ``block``, by share index (parity where needed)."""
        while True:
            await self.fill(block)
            order = sorted(self.sources, key=self.rank.__getitem__)
            results = await asyncio.gather(*(self._read_one(index, block) for index in order))
            frames: dict[int, bytes] = {}
            failed = False
            for index, got in results:
                if isinstance(got, Exception):
                    self.report(index, got)
                    await self._drop(index)
                    failed = True
                else:
                    frames[index] = got
            if not failed:
                return frames
            # Streams that answered are one frame ahead of the replacements:
            # reopen them at this block so every source stays aligned.
            for index in list(self.sources):
                await self._drop(index)
                self.spare.append(index)
            self.spare.sort(key=self.rank.__getitem__)

    async def _assemble(self, block: int, frames: dict[int, bytes]) -> list[memoryview]:
        k = self.layout.k
        block_len = self.layout.block_length(self.part_size, block)
        if all(i in frames for i in range(k)):
            # Slicing views costs nothing: no copy, no hop to a thread.
            return self.codec.data_views([frames[i] for i in range(k)], block_len)
        return [memoryview(await run_cpu(self.codec.decode, frames, block_len))]

    async def close(self) -> None:
        for index in list(self.sources):
            await self._drop(index)


async def read_part_frames(
    codec: Codec,
    part_size: int,
    candidates: Sequence[int],
    open_share: OpenShare,
    report: ReportBadShare,
    stall_timeout: float,
) -> AsyncIterator[tuple[int, dict[int, bytes]]]:
    """Yield ``(block, {share index: frame payload})`` with k verified frames per block.

    What repair reads: any k shares of each block are enough to rebuild the
    others, and a share that fails part-way is replaced by a spare from the
    block where it failed, exactly as for a ranged read.
    """
    span = block_span(codec.layout, part_size, 0, part_size)
    if span is None:
        return
    reader = _PartReader(codec, part_size, span, candidates, open_share, report, stall_timeout)
    try:
        for block in range(span.first_block, span.last_block + 1):
            yield block, await reader.read_frames(block)
    finally:
        await reader.close()


async def read_range(
    codec: Codec,
    part_size: int,
    start: int,
    length: int,
    candidates: Sequence[int],
    open_share: OpenShare,
    report: ReportBadShare,
    stall_timeout: float,
    window: int = 4,
) -> AsyncIterator[memoryview]:
    """Yield bytes [start, start+length) of a part whose shares are listed in ``candidates``.

    ``candidates`` are the share indexes believed readable, best first (data
    shares before parity). Raises ReadUnavailable when fewer than k remain.
    Up to ``window`` blocks are read ahead of the consumer.
    """
    span = block_span(codec.layout, part_size, start, length)
    if span is None:
        return
    reader = _PartReader(codec, part_size, span, candidates, open_share, report, stall_timeout)
    ready: asyncio.Queue[list[memoryview] | BaseException | None] = asyncio.Queue(maxsize=max(1, window))

    async def read_ahead() -> None:
        try:
            for block in range(span.first_block, span.last_block + 1):
                await ready.put(await reader.read_block(block))
        except Exception as exc:  # handed to the consumer, raised there in order
            await ready.put(exc)
            return
        await ready.put(None)

    producer = asyncio.ensure_future(read_ahead())
    remaining, skip = span.length, span.skip
    try:
        while (views := await ready.get()) is not None:
            if isinstance(views, BaseException):
                raise views
            for view in views:
                if skip >= len(view):
                    skip -= len(view)
                    continue
                piece = view[skip : skip + remaining]
                skip = 0
                if piece:
                    remaining -= len(piece)
                    yield piece
    finally:
        producer.cancel()
        with contextlib.suppress(BaseException):
            await producer
        await reader.close()
