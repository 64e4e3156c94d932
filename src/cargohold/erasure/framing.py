"""Share-file framing: every share-block is stored behind a small checksummed header.

A share file is the concatenation of one frame per block of the part::

    frame  = header payload
    header = magic:u16 version:u8 algo:u8 block_index:u32 payload_len:u32 checksum:u64   (20 bytes, LE)

``checksum`` is xxh3-64 of the payload seeded with the block index, so a frame
copied to the wrong place fails as surely as a flipped bit. Every full block of
a part produces frames of the same size, so block *j* starts at ``j * frame_size``
and a byte range maps to a frame range with no index. See docs/share-format.md.
"""

from __future__ import annotations

import struct

import xxhash

from cargohold.errors import ShareCorrupt

MAGIC = 0xC4F0
VERSION = 1
ALGO_XXH3_64 = 1
HEADER = struct.Struct("<HBBIIQ")
HEADER_SIZE = HEADER.size


def frame_header(block_index: int, payload: bytes | memoryview) -> bytes:
    """Header for one share-block; the payload is written right after it."""
    digest = xxhash.xxh3_64_intdigest(payload, seed=block_index)
    return HEADER.pack(MAGIC, VERSION, ALGO_XXH3_64, block_index, len(payload), digest)


def parse_header(raw: bytes | memoryview, expected_index: int | None = None) -> tuple[int, int, int]:
    """Return (block_index, payload_len, checksum) or raise ShareCorrupt."""
    if len(raw) != HEADER_SIZE:
        raise ShareCorrupt(f"short frame header ({len(raw)} bytes)")
    magic, version, algo, index, length, digest = HEADER.unpack(raw)
    if magic != MAGIC or version != VERSION or algo != ALGO_XXH3_64:
        raise ShareCorrupt("bad frame header magic/version")
    if expected_index is not None and index != expected_index:
        raise ShareCorrupt(f"frame for block {index} found where block {expected_index} belongs")
    return index, length, digest


def verify_payload(index: int, payload: bytes | memoryview, digest: int) -> None:
    if xxhash.xxh3_64_intdigest(payload, seed=index) != digest:
        raise ShareCorrupt(f"checksum mismatch in block {index}")


def frame_size(payload_len: int) -> int:
    return HEADER_SIZE + payload_len
