"""Reading share frames, shared by every share store so all of them judge a frame alike.

Two readers of the frame format (docs/share-format.md) live here:

* :func:`read_frame` -- the next frame of an open range, for ``ShareReader``
  implementations (local file, HTTP stream, in-memory fake);
* :func:`walk_frames` -- the scrub walk behind ``ShareStore.verify``, over any
  positional read function, so the local store and the in-memory fake report
  the same blocks for the same bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from cargohold.concurrency import run_cpu
from cargohold.erasure import framing
from cargohold.errors import InvalidArgument, ShareCorrupt

#: Payloads at least this big are checksummed on the CPU pool. Below it xxh3
#: (~60 GB/s) costs less than the thread hop would.
OFFLOAD_CHECKSUM_BYTES = 4 * 1024 * 1024


async def read_frame(
    readexactly: Callable[[int], Awaitable[bytes]],
    remaining: int | None,
    expected_index: int,
    where: str,
) -> bytes:
    """The payload of the next frame, which must belong to block ``expected_index``.

    ``remaining`` is what is left of the range before the header is read
    (None if unknown). Raises ShareCorrupt on a bad header, a frame for
    another block, a length that runs past the range, or a checksum mismatch,
    so corrupt bytes are never returned as data. A range that ends inside the
    frame is whatever ``readexactly`` raises (``NodeUnavailable``).
    """
    header = await readexactly(framing.HEADER_SIZE)
    index, length, digest = framing.parse_header(header, expected_index)
    if remaining is not None and length > remaining - framing.HEADER_SIZE:
        raise ShareCorrupt(
            f"frame {index} from {where} claims {length} bytes, "
            f"only {max(0, remaining - framing.HEADER_SIZE)} remain in the range"
        )
    payload = await readexactly(length)
    if length >= OFFLOAD_CHECKSUM_BYTES:
        await run_cpu(framing.verify_payload, index, payload, digest)
    else:
        framing.verify_payload(index, payload, digest)
    return payload


def walk_frames(pread: Callable[[int, int], bytes], size: int) -> tuple[int, list[int]]:
    """(frames found, corrupt block indices) of a share of ``size`` bytes; blocking.

    ``pread(length, offset)`` returns up to ``length`` bytes at ``offset``.
    A frame whose header cannot be trusted is reported corrupt and skipped
    using the size of the first frame, since every full block of a part has
    frames of one size; if the very first header is bad there is no way to
    find the next frame, so the walk stops there.
    """
    corrupt: list[int] = []
    frames = offset = 0
    stride: int | None = None
    while offset < size:
        index = frames
        frames += 1
        try:
            length, intact = _frame_at(pread, offset, index, size, stride)
        except ShareCorrupt:
            corrupt.append(index)
            if stride is None:
                break
            offset += stride
            continue
        if not intact:
            corrupt.append(index)
        stride = stride or framing.frame_size(length)
        offset += framing.frame_size(length)
    return frames, corrupt


def _frame_at(
    pread: Callable[[int, int], bytes], offset: int, index: int, size: int, stride: int | None
) -> tuple[int, bool]:
    """(payload length, checksum ok) of the frame at ``offset``.

    Raises ShareCorrupt when the header itself cannot be trusted to say where
    the frame ends.
    """
    header = pread(framing.HEADER_SIZE, offset)
    _, length, digest = framing.parse_header(header, expected_index=index)
    end = offset + framing.frame_size(length)
    if end > size:
        raise ShareCorrupt(f"frame {index} runs past the end of the share")
    if stride is not None and framing.frame_size(length) != stride and end != size:
        raise ShareCorrupt(f"frame {index} has a different size than its neighbours")
    payload = pread(length, offset + framing.HEADER_SIZE)
    try:
        framing.verify_payload(index, payload, digest)
    except ShareCorrupt:
        return length, False
    return length, True


class KnownRangeReader:
    """``read_frame`` and ``iter_raw`` for a reader whose range length is known.

    The local and in-memory readers differ only in how they fetch bytes
    (``readexactly``) and count what is left (``remaining``); the frame and
    raw views on top are the same, so they live here once.
    """

    _where: str

    @property
    def remaining(self) -> int:
        raise NotImplementedError

    async def readexactly(self, n: int) -> bytes:
        raise NotImplementedError

    async def read_frame(self, expected_index: int) -> bytes:
        return await read_frame(self.readexactly, self.remaining, expected_index, self._where)

    async def iter_raw(self, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        if chunk_size < 1:
            raise InvalidArgument(f"chunk size {chunk_size} must be positive")
        while self.remaining:
            yield await self.readexactly(min(chunk_size, self.remaining))
