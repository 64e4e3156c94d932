"""The write pipeline of one part: body stream -> blocks -> shares -> nodes.

Four small steps, after MinIO's erasure path: read one block into a buffer,
encode it (and checksum every share) off the event loop, hand the frames to
the :class:`Fanout`, which streams them to the nodes and decides the quorum.
Content hashes (the ETag's xxh3-128, plus whatever digests the request must
be checked against or answered with: ``domain/digests.py``) run on the CPU
pool beside the encoding, never on the loop, each slow algorithm on its own
thread so md5 and sha256 of one block proceed side by side.

:func:`append_blocks` is the same pipeline for a part that grows over many
requests: it numbers blocks on from the part's last one and decides what to
do with a short tail (see :mod:`cargohold.service.appends`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cargohold.concurrency import run_cpu
from cargohold.domain.digests import ContentHasher
from cargohold.domain.layout import Layout
from cargohold.erasure.codec import Codec
from cargohold.erasure.fanout import Fanout, ShareOutcome, ShareWriter
from cargohold.erasure.framing import frame_header
from cargohold.errors import IncompleteBody, PayloadTooLarge


@dataclass(slots=True)
class PartWriteResult:
    size: int
    digests: dict[str, str]
    outcomes: list[ShareOutcome] = field(default_factory=list)

    @property
    def etag(self) -> str:
        return self.digests["xxh3"]

    @property
    def missing(self) -> list[int]:
        return [o.index for o in self.outcomes if not o.stored]


def encode_block(codec: Codec, block: bytes, index: int) -> list[tuple[bytes, bytes]]:
    """Encode one block and frame every share: [(header, payload), ...] by share index."""
    return [(frame_header(index, share), share) for share in codec.encode(block)]


async def _blocks(body: AsyncIterator[bytes], block_size: int) -> AsyncIterator[bytes]:
    """Regroup arbitrary body chunks into full blocks (the last one may be short)."""
    buffer = bytearray()
    async for chunk in body:
        if not buffer and len(chunk) == block_size:
            yield bytes(chunk)
            continue
        buffer += chunk
        while len(buffer) >= block_size:
            with memoryview(buffer) as view, view[:block_size] as head:
                block = bytes(head)  # one copy; a slice of the bytearray would be two
            del buffer[:block_size]
            yield block
    if buffer:
        yield bytes(buffer)


async def write_part(
    body: AsyncIterator[bytes],
    codec: Codec,
    writers: Sequence[ShareWriter],
    *,
    hasher: ContentHasher,
    expected_size: int | None,
    max_size: int,
    depth: int,
    stall_timeout: float,
) -> PartWriteResult:
    """Stream ``body`` into shares; returns once a quorum of nodes made them durable.

    Raises WriteQuorumFailed (nothing usable was stored), IncompleteBody or
    PayloadTooLarge; the caller deletes whatever shares did land.
    """
    layout: Layout = codec.layout
    fanout = Fanout(writers, layout.write_quorum, depth, stall_timeout)
    size = 0
    hashing: asyncio.Future[list[None]] | None = None
    lanes = hasher.lanes()
    try:
        index = 0
        async for block in _blocks(body, layout.block_size):
            size += len(block)
            if size > max_size:
                raise PayloadTooLarge(f"body exceeds the {max_size}-byte limit")
            if hashing is not None:
                await hashing  # keep the hash updates in order
            hashing = asyncio.gather(*(run_cpu(lane, block) for lane in lanes))
            frames = await run_cpu(encode_block, codec, block, index)
            await fanout.send(frames)
            index += 1
        if hashing is not None:
            await hashing
        if expected_size is not None and size != expected_size:
            raise IncompleteBody(f"received {size} of {expected_size} bytes")
        outcomes = await fanout.finish()
    except BaseException:
        if hashing is not None and not hashing.done():
            hashing.cancel()
        await fanout.abort()
        raise
    return PartWriteResult(size=size, digests=hasher.hexdigests(), outcomes=outcomes)


#: Decides, once the body has ended, whether a short tail of ``tail`` bytes is
#: stored (as the part's short last block) or left for the next append; it is
#: told how many whole blocks this append stored before it.
KeepTail = Callable[[int, int], bool]


@dataclass(slots=True)
class AppendResult:
    size: int  # bytes stored by this append
    received: int  # bytes the body delivered (a dropped tail is the difference)
    outcomes: list[ShareOutcome] = field(default_factory=list)


async def append_blocks(
    body: AsyncIterator[bytes],
    codec: Codec,
    writers: Sequence[ShareWriter],
    *,
    hasher: Any,
    first_block: int,
    keep_tail: KeepTail,
    expected_size: int | None,
    max_size: int,
    depth: int,
    stall_timeout: float,
) -> AppendResult:
    """Stream ``body`` as blocks ``first_block``, ``first_block + 1``, ... of a part.

    Whole blocks go out as they fill; a short tail waits for the end of the
    body and ``keep_tail`` (the one place a part may end in a short block).
    ``hasher`` (any object with ``update``) sees exactly the bytes stored, in
    order, on the CPU pool. Raises like :func:`write_part`; the caller owns
    the clean-up of what the nodes stored.
    """
    layout: Layout = codec.layout
    fanout = Fanout(writers, layout.write_quorum, depth, stall_timeout)
    size = received = whole = 0
    hashing: asyncio.Future[None] | None = None
    index = first_block
    try:
        async for block in _blocks(body, layout.block_size):
            received += len(block)
            if received > max_size:
                raise PayloadTooLarge(f"body exceeds the {max_size}-byte limit")
            if len(block) < layout.block_size and not keep_tail(whole, len(block)):
                break  # only the last block can be short
            if hashing is not None:
                await hashing
            hashing = asyncio.ensure_future(run_cpu(hasher.update, block))
            frames = await run_cpu(encode_block, codec, block, index)
            await fanout.send(frames)
            size += len(block)
            whole += len(block) == layout.block_size
            index += 1
        if hashing is not None:
            await hashing
        if expected_size is not None and received != expected_size:
            raise IncompleteBody(f"received {received} of {expected_size} bytes")
        outcomes = await fanout.finish()
    except BaseException:
        if hashing is not None and not hashing.done():
            hashing.cancel()
        await fanout.abort()
        raise
    return AppendResult(size=size, received=received, outcomes=outcomes)
