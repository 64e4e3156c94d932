"""One hasher for every digest a write needs, and the verification of what a request declared."""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest
import xxhash

from cargohold.domain.digests import ContentHasher
from cargohold.errors import BadDigest, ContentSha256Mismatch
from cargohold.service.checksums import ExpectedDigests

DATA = b"cargohold " * 100_000


def _fed(names: set[str], pieces: list[bytes]) -> dict[str, str]:
    hasher = ContentHasher(names)
    for piece in pieces:
        for lane in hasher.lanes():
            lane(piece)
    return hasher.hexdigests()


def test_every_lane_together_gives_the_digests_of_the_whole_body() -> None:
    digests = _fed({"md5", "sha256", "sha1", "crc32", "crc32c"}, [DATA[:7], DATA[7:500_000], DATA[500_000:]])
    assert digests == {
        "xxh3": xxhash.xxh3_128_hexdigest(DATA),
        "md5": hashlib.md5(DATA).hexdigest(),
        "sha256": hashlib.sha256(DATA).hexdigest(),
        "sha1": hashlib.sha1(DATA).hexdigest(),
        "crc32": (zlib.crc32(DATA) & 0xFFFFFFFF).to_bytes(4, "big").hex(),
        "crc32c": digests["crc32c"],
    }
    assert len(digests["crc32c"]) == 8


def test_each_slow_digest_has_its_own_lane_and_the_fast_ones_ride_along() -> None:
    assert len(ContentHasher().lanes()) == 1
    assert len(ContentHasher({"crc32", "crc32c"}).lanes()) == 1
    assert len(ContentHasher({"md5", "sha256", "crc32"}).lanes()) == 2
    assert len(ContentHasher({"md5", "sha256", "sha1"}).lanes()) == 3


def test_an_unknown_algorithm_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="crc64nvme"):
        ContentHasher({"crc64nvme"})


def test_the_signed_payload_hash_is_checked_first_and_named_as_such() -> None:
    digests = _fed({"sha256", "md5"}, [DATA])
    expected = ExpectedDigests(md5="0" * 32, signed_sha256=hashlib.sha256(b"other").hexdigest())
    assert expected.algorithms() == {"md5", "sha256"}
    with pytest.raises(ContentSha256Mismatch):
        expected.verify(digests)
    ExpectedDigests(signed_sha256=hashlib.sha256(DATA).hexdigest()).verify(digests)


def test_declared_s3_checksums_compare_as_base64_of_the_digest() -> None:
    digests = _fed({"crc32"}, [DATA])
    right = base64.b64encode((zlib.crc32(DATA) & 0xFFFFFFFF).to_bytes(4, "big")).decode()
    ExpectedDigests(checksums=(("crc32", right),)).verify(digests)
    with pytest.raises(BadDigest) as refused:
        ExpectedDigests(checksums=(("crc32", "AAAAAA=="),)).verify(digests)
    assert str(refused.value) == "The CRC32 you specified did not match the calculated checksum."
