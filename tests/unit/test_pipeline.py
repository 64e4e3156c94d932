"""The write and read pipelines against in-memory shares with scripted faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cargohold.domain.digests import ContentHasher
from cargohold.domain.layout import Layout
from cargohold.erasure.codec import codec_for
from cargohold.erasure.framing import HEADER_SIZE, parse_header, verify_payload
from cargohold.erasure.reader import read_range
from cargohold.erasure.writer import write_part
from cargohold.errors import IncompleteBody, ReadUnavailable, ShareCorrupt, WriteQuorumFailed
from cargohold.testing.data import sample

LAYOUT = Layout.parse("ec:5+2", block_size=5 * 4096)
CODEC = codec_for(LAYOUT)


class MemoryShare:
    """A share file in memory; ``fail_after`` bytes scripts a node that dies mid-write."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.data = bytearray()
        self.fail_after = fail_after

    async def write(self, body: AsyncIterator[bytes]) -> int:
        async for piece in body:
            self.data += piece
            if self.fail_after is not None and len(self.data) > self.fail_after:
                raise ConnectionResetError("node went away")
        return len(self.data)


class MemoryStream:
    def __init__(self, data: bytes, start: int, end: int) -> None:
        self._view = memoryview(data)[start : end + 1]
        self._pos = 0

    async def read_frame(self, expected_index: int) -> bytes:
        header = bytes(self._view[self._pos : self._pos + HEADER_SIZE])
        index, length, digest = parse_header(header, expected_index)
        payload = bytes(self._view[self._pos + HEADER_SIZE : self._pos + HEADER_SIZE + length])
        verify_payload(index, payload, digest)
        self._pos += HEADER_SIZE + length
        return payload

    async def close(self) -> None:
        pass


async def _body(data: bytes, chunk: int = 7000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), chunk):
        yield data[i : i + chunk]


def _write(data: bytes, shares: list[MemoryShare], expected: int | None = None):  # type: ignore[no-untyped-def]
    return asyncio.run(
        write_part(
            _body(data),
            CODEC,
            [s.write for s in shares],
            hasher=ContentHasher({"md5"}),
            expected_size=len(data) if expected is None else expected,
            max_size=10**9,
            depth=2,
            stall_timeout=5,
        )
    )


def _read(shares: list[bytes | None], size: int, start: int, length: int) -> tuple[bytes, list[int]]:
    bad: list[int] = []

    async def open_share(index: int, first: int, last: int) -> MemoryStream:
        data = shares[index]
        if data is None:
            raise ConnectionRefusedError("down")
        return MemoryStream(data, first, last)

    async def collect() -> bytes:
        out = bytearray()
        async for chunk in read_range(
            CODEC, size, start, length, list(range(7)), open_share, lambda i, e: bad.append(i), 5
        ):
            out += chunk
        return bytes(out)

    return asyncio.run(collect()), bad


@pytest.mark.parametrize("size", [1, LAYOUT.block_size, 3 * LAYOUT.block_size + 17])
def test_write_then_read_every_range(size: int) -> None:
    data = sample(size, seed=size)
    shares = [MemoryShare() for _ in range(7)]
    result = _write(data, shares)
    assert result.size == size and result.missing == []
    import hashlib

    assert result.digests["md5"] == hashlib.md5(data).hexdigest()
    stored = [bytes(s.data) for s in shares]
    for start, length in [(0, size), (size // 2, size - size // 2), (max(0, size - 3), 3)]:
        got, bad = _read(stored, size, start, length)
        assert got == data[start : start + length] and bad == []


def test_write_survives_one_failing_node_and_records_it() -> None:
    data = sample(4 * LAYOUT.block_size, seed=2)
    shares = [MemoryShare() for _ in range(6)] + [MemoryShare(fail_after=10_000)]
    result = _write(data, shares)
    assert result.missing == [6]


def test_write_fails_below_quorum() -> None:
    data = sample(4 * LAYOUT.block_size, seed=3)
    shares = [MemoryShare() for _ in range(5)] + [MemoryShare(fail_after=10) for _ in range(2)]
    with pytest.raises(WriteQuorumFailed):
        _write(data, shares)


def test_short_body_is_refused() -> None:
    with pytest.raises(IncompleteBody):
        _write(b"abc" * 10_000, [MemoryShare() for _ in range(7)], expected=40_000)


def test_read_decodes_around_down_and_corrupt_shares() -> None:
    size = 5 * LAYOUT.block_size + 99
    data = sample(size, seed=4)
    shares = [MemoryShare() for _ in range(7)]
    _write(data, shares)
    stored: list[bytes | None] = [bytes(s.data) for s in shares]
    corrupt = bytearray(stored[2])  # type: ignore[arg-type]
    corrupt[len(corrupt) * 3 // 5] ^= 1
    stored[2] = bytes(corrupt)
    stored[0] = None
    got, bad = _read(stored, size, 0, size)
    assert got == data
    assert sorted(bad) == [0, 2]
    stored[6] = None
    with pytest.raises(ReadUnavailable):
        _read(stored, size, 0, size)


def test_corrupt_frame_is_never_returned() -> None:
    data = sample(LAYOUT.block_size, seed=5)
    shares = [MemoryShare() for _ in range(7)]
    _write(data, shares)
    raw = bytearray(shares[0].data)
    raw[-1] ^= 0xFF
    stream = MemoryStream(bytes(raw), 0, len(raw) - 1)
    with pytest.raises(ShareCorrupt):
        asyncio.run(stream.read_frame(0))
