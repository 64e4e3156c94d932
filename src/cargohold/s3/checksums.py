"""``x-amz-checksum-*`` of a body: checked against the bytes, kept to be stored with the object.

An object's or a part's bytes: :func:`write_expectations` hands every digest
the request declares (``Content-MD5``, the signed payload hash, plain
``x-amz-checksum-*`` headers) to the write pipeline, which computes them in
the same pass as the ETag and compares them before anything is committed
(``BadDigest``, ``XAmzContentSHA256Mismatch``). An aws-chunked body's
trailing checksum is checked by its decoder (``chunked.py``); it is only
known at the end, so :func:`with_trailers` adds it to the stored headers
then, still before the commit. Small documents (a delete list) are checked
by :func:`checked` as they are read.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping

from cargohold.concurrency import run_cpu
from cargohold.domain.digests import ALGORITHMS, Hasher
from cargohold.errors import BadDigest, InvalidArgument
from cargohold.s3.chunked import CHECKSUMS, HASH_OFF_LOOP
from cargohold.s3.headers import CHECKSUM_PREFIX
from cargohold.service.checksums import ExpectedDigests


def expected_checksums(stored: dict[str, str]) -> dict[str, str]:
    """The checksums a request's headers declare: algorithm -> base64 digest."""
    found = {}
    for name, value in stored.items():
        if name.startswith(CHECKSUM_PREFIX):
            algorithm = name.removeprefix(CHECKSUM_PREFIX)
            if algorithm not in CHECKSUMS:
                raise InvalidArgument(
                    f"cannot verify {name}: send one of " + ", ".join(CHECKSUM_PREFIX + a for a in CHECKSUMS),
                    header=name,
                )
            found[algorithm] = value
    return found


async def checked(body: AsyncIterator[bytes], stored: dict[str, str]) -> AsyncIterator[bytes]:
    """``body``, its declared checksums verified at the end; trailing ones are added to ``stored``."""
    wanted = expected_checksums(stored)
    hashers = {algorithm: ALGORITHMS[algorithm]() for algorithm in wanted}
    async for piece in body:
        if hashers:
            if len(piece) >= HASH_OFF_LOOP:
                await run_cpu(_update_all, hashers, piece)
            else:
                _update_all(hashers, piece)
        yield piece
    for algorithm, hasher in hashers.items():
        computed = base64.b64encode(hasher.digest()).decode()
        if computed != wanted[algorithm]:
            raise BadDigest(
                f"The {algorithm.upper()} you specified did not match the calculated checksum.",
                algorithm=algorithm,
            )
    for algorithm, value in getattr(body, "checksums", {}).items():
        stored[CHECKSUM_PREFIX + algorithm] = value


def write_expectations(
    headers: Mapping[str, str], stored: dict[str, str], signed_sha256: str | None
) -> ExpectedDigests:
    """What an object's or a part's bytes must hash to, from the request and its stored headers."""
    content_md5 = ExpectedDigests.from_headers(headers.get("Content-MD5"), None).md5
    declared = tuple(sorted(expected_checksums(stored).items()))
    return ExpectedDigests(md5=content_md5, signed_sha256=signed_sha256, checksums=declared)


async def with_trailers(body: AsyncIterator[bytes], stored: dict[str, str]) -> AsyncIterator[bytes]:
    """``body``; once it ends, the trailing checksums its aws-chunked decoder verified join ``stored``."""
    async for piece in body:
        yield piece
    for algorithm, value in getattr(body, "checksums", {}).items():
        stored[CHECKSUM_PREFIX + algorithm] = value


def _update_all(hashers: dict[str, Hasher], piece: bytes) -> None:
    for hasher in hashers.values():
        hasher.update(piece)
