"""``x-amz-checksum-*`` of a body: checked as the bytes arrive, kept to be stored with the object.

A checksum sent as a plain header is computed over the body and compared
once the last byte is in, before the body iterator ends, so a mismatch
(``BadDigest``) fails the write before anything is committed. An
aws-chunked body's trailing checksum is checked by its decoder
(``chunked.py``); it is only known at the end, so it is added to the stored
headers then, still before the commit.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

from cargohold.concurrency import run_cpu
from cargohold.errors import BadDigest, InvalidArgument
from cargohold.s3.chunked import CHECKSUMS, HASH_OFF_LOOP
from cargohold.s3.headers import CHECKSUM_PREFIX


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
    hashers = {algorithm: CHECKSUMS[algorithm]() for algorithm in wanted}
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


def _update_all(hashers: dict, piece: bytes) -> None:  # type: ignore[type-arg]
    for hasher in hashers.values():
        hasher.update(piece)
