"""aws-chunked bodies: AWS's own worked example, botocore's chunk writer, and every way one can be wrong."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
from collections.abc import AsyncIterator

import crc32c
import pytest
from botocore.httpchecksum import AwsChunkedWrapper, BaseChecksum, Crc32Checksum, Sha1Checksum, Sha256Checksum

from cargohold.domain.model import Principal
from cargohold.errors import (
    BadDigest,
    IncompleteBody,
    InvalidArgument,
    MalformedChunkedBody,
    MissingContentLength,
    SignatureDoesNotMatch,
)
from cargohold.s3 import chunked, sigv4
from cargohold.s3.sigv4 import RequestView, Verified

# The chunked upload example of the S3 SigV4 documentation ("Transferring payload in multiple chunks").
DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_AKID = "AKIAIOSFODNN7EXAMPLE"
DOC_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
DOC_CHUNKS = [
    (65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
    (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
    (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
]
DOC_HEADERS = {
    "host": "s3.amazonaws.com",
    "x-amz-date": "20130524T000000Z",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "authorization": (
        f"AWS4-HMAC-SHA256 Credential={DOC_AKID}/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        f"x-amz-decoded-content-length;x-amz-storage-class,Signature={DOC_SEED}"
    ),
    "x-amz-content-sha256": sigv4.STREAMING_SIGNED,
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560",
    "content-length": "66824",
}
WHO = Principal(1, "ann", "user")


def doc_body(chunks: list[tuple[int, str]] = DOC_CHUNKS) -> bytes:
    return b"".join(
        b"%x;chunk-signature=%s\r\n%s\r\n" % (size, sig.encode(), b"a" * size) for size, sig in chunks
    )


def doc_verified() -> Verified:
    view = RequestView("PUT", "/examplebucket/chunkObject.txt", "", DOC_HEADERS, True)
    signed = sigv4.parse(view)
    assert signed is not None
    return sigv4.verify(view, signed, DOC_SECRET, WHO)


async def _split(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def decode(
    body: bytes, auth: Verified, headers: dict[str, str], piece: int = 4096
) -> tuple[bytes, list[int], dict]:
    """The decoded bytes, the sizes of the pieces handed on, and the trailing checksums."""

    async def run() -> tuple[bytes, list[int], dict]:
        decoder = chunked.decode(_split(body, piece), auth, headers)
        out = [p async for p in decoder]
        return b"".join(out), [len(p) for p in out], decoder.checksums

    return asyncio.run(run())


def test_the_documented_example_verifies_seed_and_every_chunk() -> None:
    auth = doc_verified()
    assert auth.seed_signature == DOC_SEED
    for piece in (1, 1000, 70_000):
        data, sizes, _ = decode(doc_body(), auth, DOC_HEADERS, piece)
        assert data == b"a" * 66560
        assert max(sizes) <= piece  # handed on as it arrives: nothing gathered
    assert len(doc_body()) == int(DOC_HEADERS["content-length"])


def test_a_changed_byte_a_dropped_chunk_or_a_reordered_one_breaks_the_chain() -> None:
    auth = doc_verified()
    body = doc_body()
    changed = body.replace(b"a" * 10, b"a" * 9 + b"b", 1)
    with pytest.raises(SignatureDoesNotMatch):
        decode(changed, auth, DOC_HEADERS)
    dropped = doc_body([DOC_CHUNKS[1], DOC_CHUNKS[2]])
    with pytest.raises(SignatureDoesNotMatch):
        decode(dropped, auth, {**DOC_HEADERS, "x-amz-decoded-content-length": "1024"})
    swapped = doc_body([DOC_CHUNKS[1], DOC_CHUNKS[0], DOC_CHUNKS[2]])
    with pytest.raises(SignatureDoesNotMatch):
        decode(swapped, auth, DOC_HEADERS)
    wrong_final = body[: -(64 + 4)] + b"0" * 64 + b"\r\n\r\n"
    with pytest.raises(SignatureDoesNotMatch):
        decode(wrong_final, auth, DOC_HEADERS)


def test_truncated_overlong_and_malformed_bodies() -> None:
    auth = doc_verified()
    body = doc_body()
    with pytest.raises(IncompleteBody):
        decode(body[:66_000], auth, DOC_HEADERS)
    with pytest.raises(IncompleteBody):
        decode(body[:100], auth, DOC_HEADERS)
    with pytest.raises(IncompleteBody, match="more than"):
        decode(body, auth, {**DOC_HEADERS, "x-amz-decoded-content-length": "66559"})
    with pytest.raises(IncompleteBody, match="said 66561"):
        decode(body, auth, {**DOC_HEADERS, "x-amz-decoded-content-length": "66561"})
    with pytest.raises(MalformedChunkedBody, match="follow"):
        decode(body + b"junk", auth, DOC_HEADERS)
    with pytest.raises(MalformedChunkedBody, match="chunk size"):
        decode(b"zz;chunk-signature=" + b"0" * 64 + b"\r\n", auth, DOC_HEADERS)
    with pytest.raises(MalformedChunkedBody, match="chunk-signature"):
        decode(b"400\r\n" + b"a" * 1024 + b"\r\n", auth, DOC_HEADERS)
    with pytest.raises(MalformedChunkedBody, match="longer than"):
        decode(b"4" * 5000, auth, DOC_HEADERS)
    with pytest.raises(MissingContentLength):
        decode(body, auth, {k: v for k, v in DOC_HEADERS.items() if k != "x-amz-decoded-content-length"})


# -- trailing checksums -----------------------------------------------------------------------


class Crc32cChecksum(BaseChecksum):
    """CRC32C for botocore's chunk writer (botocore computes it only with awscrt installed)."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, chunk: bytes) -> None:
        self._value = crc32c.crc32c(chunk, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


def unsigned_auth() -> Verified:
    return Verified(
        "CHX", WHO, sigv4.STREAMING_UNSIGNED_TRAILER, b"k" * 32, "0" * 64, "20261130T000000Z", "s"
    )


def botocore_body(data: bytes, algorithm: str, checksum_cls: type[BaseChecksum], chunk: int) -> bytes:
    wrapper = AwsChunkedWrapper(
        io.BytesIO(data),
        checksum_cls=checksum_cls,
        checksum_name=f"x-amz-checksum-{algorithm}",
        chunk_size=chunk,
    )
    return wrapper.read()


@pytest.mark.parametrize(
    ("algorithm", "checksum_cls"),
    [
        ("crc32", Crc32Checksum),
        ("crc32c", Crc32cChecksum),
        ("sha1", Sha1Checksum),
        ("sha256", Sha256Checksum),
    ],
)
def test_botocore_unsigned_trailer_bodies(algorithm: str, checksum_cls: type[BaseChecksum]) -> None:
    data = bytes(range(256)) * 1000
    body = botocore_body(data, algorithm, checksum_cls, chunk=65536)
    headers = {"x-amz-trailer": f"x-amz-checksum-{algorithm}", "x-amz-decoded-content-length": str(len(data))}
    decoded, _, checksums = decode(body, unsigned_auth(), headers, piece=10_000)
    assert decoded == data
    expected = checksum_cls()
    expected.update(data)
    assert checksums == {algorithm: expected.b64digest()}


def test_a_trailing_checksum_that_does_not_match_is_bad_digest() -> None:
    data = b"hello " * 1000
    body = botocore_body(data, "crc32", Crc32Checksum, chunk=1000)
    tampered = body.replace(b"hello", b"jello", 1)
    headers = {"x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": str(len(data))}
    with pytest.raises(BadDigest, match="CRC32"):
        decode(tampered, unsigned_auth(), headers)
    with pytest.raises(IncompleteBody, match="lacks"):
        decode(body, unsigned_auth(), {**headers, "x-amz-trailer": "x-amz-checksum-sha256"})
    with pytest.raises(InvalidArgument, match="x-amz-trailer"):
        decode(body, unsigned_auth(), {"x-amz-decoded-content-length": str(len(data))})
    with pytest.raises(InvalidArgument, match="unsupported"):
        decode(body, unsigned_auth(), {**headers, "x-amz-trailer": "x-amz-checksum-md5"})


def _signed_trailer_body(auth: Verified, data: bytes, chunk: int, trailer: bytes) -> bytes:
    """What an SDK sends for STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER."""

    def sign(kind: str, previous: str, *hashes: str) -> str:
        text = "\n".join((f"AWS4-HMAC-SHA256-{kind}", auth.amz_date, auth.scope, previous, *hashes))
        return hmac.new(auth.signing_key, text.encode(), hashlib.sha256).hexdigest()

    previous, out = auth.seed_signature, []
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for piece in pieces:
        previous = sign("PAYLOAD", previous, sigv4.EMPTY_SHA256, hashlib.sha256(piece).hexdigest())
        out.append(b"%x;chunk-signature=%s\r\n" % (len(piece), previous.encode()))
        if piece:
            out.append(piece + b"\r\n")
    trailer_signature = sign("TRAILER", previous, hashlib.sha256(trailer + b"\n").hexdigest())
    out.append(trailer + b"\r\nx-amz-trailer-signature:" + trailer_signature.encode() + b"\r\n\r\n")
    return b"".join(out)


def test_signed_chunks_with_a_signed_trailer() -> None:
    credential = sigv4.Credential("CHX", "20261130", "us-east-1", "s3")
    auth = Verified(
        "CHX",
        WHO,
        sigv4.STREAMING_SIGNED_TRAILER,
        sigv4.signing_key("secret", credential),
        "1" * 64,
        "20261130T000000Z",
        credential.scope,
    )
    data = b"xyz" * 50_000
    checksum = base64.b64encode(hashlib.sha256(data).digest())
    trailer = b"x-amz-checksum-sha256:" + checksum
    body = _signed_trailer_body(auth, data, 65536, trailer)
    headers = {"x-amz-trailer": "x-amz-checksum-sha256", "x-amz-decoded-content-length": str(len(data))}
    decoded, _, checksums = decode(body, auth, headers)
    assert decoded == data and checksums == {"sha256": checksum.decode()}
    head, _, _ = body.rpartition(b"x-amz-trailer-signature:")
    forged = head + b"x-amz-trailer-signature:" + b"0" * 64 + b"\r\n\r\n"
    with pytest.raises(SignatureDoesNotMatch, match="trailer"):
        decode(forged, auth, headers)
    with pytest.raises(SignatureDoesNotMatch, match="trailer"):
        decode(head + b"\r\n", auth, headers)  # no trailer signature at all
    other = _signed_trailer_body(auth, data, 65536, b"x-amz-checksum-sha256:" + base64.b64encode(b"\0" * 32))
    with pytest.raises(BadDigest):
        decode(other, auth, headers)
    resigned = body.replace(trailer, b"x-amz-checksum-sha256:" + base64.b64encode(b"\0" * 32))
    with pytest.raises(SignatureDoesNotMatch, match="trailer"):
        decode(resigned, auth, headers)
