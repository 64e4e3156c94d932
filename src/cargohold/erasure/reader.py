"""The read pipeline of one part: share streams -> verified frames -> blocks -> bytes.

A read opens the k data shares over exactly the frames that cover the range
and joins them block by block, with no decode call at all when every data
share answers. When a share fails (node down, file gone, checksum mismatch,
stall) it is dropped for the rest of the read and a parity share is opened
from the current block on; blocks are then decoded. The first bytes leave long
before the last block is fetched: blocks are yielded as they are rebuilt, with
a small read-ahead so node latency overlaps the client write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from cargohold.concurrency import run_cpu
from cargohold.domain.layout import Layout, block_span
from cargohold.erasure.codec import Codec
from cargohold.erasure.framing import HEADER_SIZE
from cargohold.errors import CargoholdError, ReadUnavailable


class FrameStream(Protocol):
    async def read_frame(self, expected_index: int) -> bytes: ...

    async def close(self) -> None: ...


#: Opens share ``index`` for the byte range [start, end] of its share file.
OpenShare = Callable[[int, int, int], Awaitable[FrameStream]]
#: Told about every share that failed during a read (for repair bookkeeping).
ReportBadShare = Callable[[int, Exception], None]


@functools.lru_cache(maxsize=64)
def full_frame_size(codec: Codec) -> int:
    """Size of the frame a full block produces in each share file of this layout."""
    return HEADER_SIZE + len(codec.encode(bytes(codec.layout.block_size))[0])


class _Source:
    def __init__(self, index: int, stream: FrameStream) -> None:
        self.index = index
        self.stream = stream


async def read_range(
    codec: Codec,
    part_size: int,
    start: int,
    length: int,
    candidates: Sequence[int],
    open_share: OpenShare,
    report: ReportBadShare,
    stall_timeout: float,
    read_ahead: int = 2,
) -> AsyncIterator[bytes]:
    """Yield bytes [start, start+length) of a part whose shares are listed in ``candidates``.

    ``candidates`` are the share indexes believed readable, best first (data
    shares before parity). Raises ReadUnavailable when fewer than k remain.
    """
    layout: Layout = codec.layout
    span = block_span(layout, part_size, start, length)
    if span is None:
        return
    frame = full_frame_size(codec)
    spare = list(candidates)
    sources: list[_Source] = []

    async def open_next(block: int) -> None:
        while spare:
            index = spare.pop(0)
            try:
                stream = await asyncio.wait_for(
                    open_share(index, block * frame, (span.last_block + 1) * frame - 1),
                    stall_timeout,
                )
            except (CargoholdError, OSError, TimeoutError) as exc:
                report(index, exc)
                continue
            sources.append(_Source(index, stream))
            return
        raise ReadUnavailable(f"fewer than {layout.k} shares of a part are readable", needed=layout.k)

    async def read_block(block: int) -> bytes:
        while True:
            while len(sources) < layout.k:
                await open_next(block)
            active = sorted(sources[: layout.k], key=lambda s: s.index)
            results = await asyncio.gather(
                *(asyncio.wait_for(s.stream.read_frame(block), stall_timeout) for s in active),
                return_exceptions=True,
            )
            failed = [(s, r) for s, r in zip(active, results, strict=True) if isinstance(r, BaseException)]
            if not failed:
                shares = {s.index: r for s, r in zip(active, results, strict=True)}
                block_len = layout.block_length(part_size, block)
                if all(i in shares for i in range(layout.k)):
                    return await run_cpu(codec.join, [shares[i] for i in range(layout.k)], block_len)
                return await run_cpu(codec.decode, shares, block_len)
            for source, error in failed:
                if isinstance(error, asyncio.CancelledError):
                    raise error
                report(source.index, error if isinstance(error, Exception) else Exception(error))
                sources.remove(source)
                with contextlib.suppress(Exception):
                    await source.stream.close()
            # Sources that did answer for this block are now one frame ahead of
            # the new ones: reopen them all at this block to stay aligned.
            for source in list(sources):
                sources.remove(source)
                spare.insert(0, source.index)
                with contextlib.suppress(Exception):
                    await source.stream.close()
            spare.sort(key=lambda i: list(candidates).index(i))

    pending: list[asyncio.Task[bytes]] = []
    next_block = span.first_block
    try:
        # Blocks must be read in order from each stream, so the read-ahead is a
        # chain: each task awaits its predecessor before reading.
        async def chained(block: int, before: asyncio.Task[bytes] | None) -> bytes:
            if before is not None:
                await asyncio.shield(before)
            return await read_block(block)

        def schedule() -> None:
            nonlocal next_block
            while next_block <= span.last_block and len(pending) < read_ahead:
                before = pending[-1] if pending else None
                pending.append(asyncio.ensure_future(chained(next_block, before)))
                next_block += 1

        schedule()
        remaining, skip = span.length, span.skip
        while pending:
            data = await pending.pop(0)
            schedule()
            piece = memoryview(data)[skip : skip + remaining]
            skip = 0
            remaining -= len(piece)
            yield bytes(piece) if len(piece) != len(data) else data
    finally:
        for task in pending:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*pending, return_exceptions=True)
        for source in sources:
            with contextlib.suppress(Exception):
                await source.stream.close()
