"""Content digests: the one registry of algorithms a write may need, and a hasher that feeds them all.

One PUT can need several digests of the same bytes at once: the ETag's
xxh3-128 always; an md5 for an S3 ETag or a ``Content-MD5``; a sha256 for the
native ``x-checksum-sha256`` or for the payload hash an S3 request was signed
with; an S3 ``x-amz-checksum-*`` (crc32, crc32c, sha1, sha256). Before this
registry each surface wrapped the body in its own hashing generator, so a
signed S3 PUT hashed in three passes, partly on the event loop in small
pieces. Now the write pipeline asks one :class:`ContentHasher` for the union
and feeds it once per block off the loop (``erasure/writer.py``).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterable
from typing import Protocol

import crc32c as crc32c_lib
import xxhash


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc:
    """zlib.crc32 or crc32c as a hashlib-like object (big-endian 4-byte digest, as S3 sends them)."""

    def __init__(self, function: Callable[[bytes, int], int]) -> None:
        self._function = function
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = self._function(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


def _md5() -> Hasher:
    return hashlib.md5(usedforsecurity=False)


ALGORITHMS: dict[str, Callable[[], Hasher]] = {
    "xxh3": xxhash.xxh3_128,
    "md5": _md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "crc32": lambda: _Crc(zlib.crc32),
    "crc32c": lambda: _Crc(crc32c_lib.crc32c),
}
#: Cheap enough per byte (tens of GB/s) to ride along with another algorithm's thread hop.
FAST = frozenset({"xxh3", "crc32", "crc32c"})


def native_etag(xxh3_hex: str) -> str:
    """The ETag of a write that computed no md5: its xxh3-128, marked as not being an md5.

    S3 clients take a 32-hex-digit ETag for the md5 of the bytes and check
    downloads against it (s3cmd warns, ``rclone check`` reports a
    difference); an ETag with a ``-N`` suffix is, by S3's convention, not an
    md5 of the body, so they skip the check instead of failing it. ``-1``:
    the object is one part (``?partNumber=1`` reads all of it).
    """
    return f"{xxh3_hex}-1"


class ContentHasher:
    """Every digest asked for, over the same bytes; xxh3-128 (the native ETag) always."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        wanted = {"xxh3", *names}
        unknown = wanted - ALGORITHMS.keys()
        if unknown:
            raise ValueError(f"unknown digest algorithms: {sorted(unknown)}")
        self._hashers: dict[str, Hasher] = {name: ALGORITHMS[name]() for name in sorted(wanted)}

    def update(self, data: bytes | bytearray | memoryview) -> None:
        for hasher in self._hashers.values():
            hasher.update(data)  # type: ignore[arg-type]

    def lanes(self) -> list[Callable[[bytes], None]]:
        """Update functions that may run side by side on different threads, one per slow algorithm.

        The fast ones share the first lane, so a block costs one thread hop
        per slow digest and never more than one in all when none is asked for.
        """
        slow = [h for name, h in self._hashers.items() if name not in FAST]
        fast = [h for name, h in self._hashers.items() if name in FAST]
        groups = [[*fast, *slow[:1]], *([h] for h in slow[1:])]
        return [_updater(group) for group in groups if group]

    def digests(self) -> dict[str, bytes]:
        return {name: h.digest() for name, h in self._hashers.items()}

    def hexdigests(self) -> dict[str, str]:
        return {name: digest.hex() for name, digest in self.digests().items()}


def _updater(group: list[Hasher]) -> Callable[[bytes], None]:
    def update(data: bytes) -> None:
        for hasher in group:
            hasher.update(data)

    return update
