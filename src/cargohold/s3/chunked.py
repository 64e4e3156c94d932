"""aws-chunked request bodies: decoded as they stream, every signature and checksum checked.

S3 clients that sign a body they cannot hash in advance, or that add a
checksum computed while sending, frame it as ``aws-chunked``
(``x-amz-content-sha256`` names the mode; ``x-amz-decoded-content-length``
gives the object's length)::

    <hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n ... 0[;chunk-signature=<sig>]\\r\\n
    [x-amz-checksum-<alg>:<base64>\\r\\n [x-amz-trailer-signature:<sig>\\r\\n]] \\r\\n

* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``: each chunk signs
  ``AWS4-HMAC-SHA256-PAYLOAD / date / scope / previous signature /
  sha256("") / sha256(data)``, chained from the request's own signature, so
  no chunk can be dropped, reordered or changed;
* ``...-PAYLOAD-TRAILER``: the same, and then a trailing checksum whose
  ``x-amz-trailer-signature`` signs ``AWS4-HMAC-SHA256-TRAILER / date /
  scope / last chunk signature / sha256(trailer lines)``;
* ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``: no chunk signatures (the client
  relies on TLS), but the trailing checksum must match the bytes.

Trailing checksums: ``x-amz-checksum-crc32``, ``-crc32c``, ``-sha1``,
``-sha256`` (base64 of the big-endian digest, as S3 sends them).

Memory stays bounded: data is passed on as it arrives, never gathered, and
the decoder holds at most one received piece plus one header line. Each
chunk's signature is checked when its last byte has arrived, the trailer and
the total length after the last chunk, all before the iterator ends, so a
consumer that commits after the body is exhausted never commits a body that
fails. Large pieces are hashed on the CPU pool (``run_cpu``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping

from cargohold.concurrency import run_cpu
from cargohold.domain.digests import ALGORITHMS, Hasher
from cargohold.errors import (
    BadDigest,
    IncompleteBody,
    InvalidArgument,
    MalformedChunkedBody,
    MissingContentLength,
    SignatureDoesNotMatch,
)
from cargohold.s3.sigv4 import (
    EMPTY_SHA256,
    STREAMING_MODES,
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    Verified,
)

#: The longest chunk header or trailer line accepted (a signed header is ~90 bytes).
MAX_LINE = 4096
#: At most this many trailer lines.
MAX_TRAILERS = 8
#: Pieces at least this large are hashed on the CPU pool.
HASH_OFF_LOOP = 256 * 1024
CHECKSUM_PREFIX = "x-amz-checksum-"
TRAILER_SIGNATURE = "x-amz-trailer-signature"


def is_chunked(payload: str) -> bool:
    return payload in STREAMING_MODES


def decoded_length(headers: Mapping[str, str]) -> int:
    """``x-amz-decoded-content-length``: the object's length inside an aws-chunked body."""
    raw = headers.get("x-amz-decoded-content-length")
    if raw is None:
        raise MissingContentLength("an aws-chunked body needs x-amz-decoded-content-length")
    if not raw.isdigit() or len(raw) > 19:
        raise InvalidArgument("x-amz-decoded-content-length must be a number of bytes", header=raw[:40])
    return int(raw)


# -- checksums --------------------------------------------------------------------


#: The trailing and declared checksums S3 clients send that we compute (``domain/digests.py``).
CHECKSUMS = ("crc32", "crc32c", "sha1", "sha256")


def checksum_algorithm(header_name: str) -> str:
    """``x-amz-checksum-crc32`` -> ``crc32``; InvalidArgument for algorithms we do not compute."""
    name = header_name.strip().lower()
    algorithm = name.removeprefix(CHECKSUM_PREFIX)
    if not name.startswith(CHECKSUM_PREFIX) or algorithm not in CHECKSUMS:
        raise InvalidArgument(
            f"unsupported trailing checksum {header_name[:60]!r}: use x-amz-checksum-" + "/".join(CHECKSUMS),
            header="x-amz-trailer",
        )
    return algorithm


# -- the decoder --------------------------------------------------------------------


class _Reader:
    """Lines and exact byte counts from an async iterator of pieces, holding one piece at most."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self._buffer = b""

    async def _more(self) -> bool:
        try:
            piece = await anext(self._source)
        except StopAsyncIteration:
            return False
        self._buffer = self._buffer + piece if self._buffer else piece
        return True

    async def line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
                return line
            if len(self._buffer) > MAX_LINE:
                raise MalformedChunkedBody(f"an aws-chunked header line is longer than {MAX_LINE} bytes")
            if not await self._more():
                raise IncompleteBody("the aws-chunked body ended in the middle of a header line")

    async def data(self, size: int) -> AsyncIterator[bytes]:
        """The next ``size`` bytes, in pieces as they arrive."""
        while size:
            if not self._buffer and not await self._more():
                raise IncompleteBody("the aws-chunked body ended in the middle of a chunk")
            piece = self._buffer[:size] if len(self._buffer) > size else self._buffer
            self._buffer = self._buffer[len(piece) :]
            size -= len(piece)
            yield piece

    async def at_end(self) -> bool:
        return not self._buffer and not await self._more()


async def _update(hasher: Hasher, piece: bytes) -> None:
    if len(piece) >= HASH_OFF_LOOP:
        await run_cpu(hasher.update, piece)
    else:
        hasher.update(piece)


class ChunkedBody:
    """The decoded body of one aws-chunked request; iterate it once.

    ``checksums`` holds the trailing checksums received (algorithm -> base64
    value), each checked against the data, once iteration has ended.
    """

    def __init__(self, source: AsyncIterator[bytes], auth: Verified, headers: Mapping[str, str]) -> None:
        self._reader = _Reader(source)
        self._auth = auth
        self._signed = auth.payload in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
        self._trailer = auth.payload in (STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER)
        self._length = decoded_length(headers)
        declared = headers.get("x-amz-trailer")
        self._declared = checksum_algorithm(declared) if declared else None
        if self._trailer and self._declared is None:
            raise InvalidArgument("a body with a trailing checksum must name it in x-amz-trailer")
        self._hasher = ALGORITHMS[self._declared]() if self._declared else None
        self._previous = auth.seed_signature
        self.checksums: dict[str, str] = {}
        self._iterator = self._decode()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterator

    async def __anext__(self) -> bytes:
        return await anext(self._iterator)

    async def _decode(self) -> AsyncIterator[bytes]:
        received = 0
        while True:
            size, signature = self._chunk_header(await self._reader.line())
            if received + size > self._length:
                raise IncompleteBody(
                    f"the aws-chunked body holds more than its x-amz-decoded-content-length ({self._length})"
                )
            chunk_hash = hashlib.sha256() if self._signed else None
            async for piece in self._reader.data(size):
                if chunk_hash is not None:
                    await _update(chunk_hash, piece)
                if self._hasher is not None:
                    await _update(self._hasher, piece)
                yield piece
            received += size
            if chunk_hash is not None:
                self._check_chunk(signature, chunk_hash.hexdigest())
            if size == 0:
                break
            if await self._reader.line() != b"":
                raise MalformedChunkedBody("a chunk's data is not followed by CRLF")
        if received != self._length:
            raise IncompleteBody(
                f"the aws-chunked body holds {received} bytes;"
                f" x-amz-decoded-content-length said {self._length}"
            )
        if self._trailer:
            await self._read_trailer()
        elif await self._reader.line() != b"":
            raise MalformedChunkedBody("the last chunk is not followed by CRLF")
        if not await self._reader.at_end():
            raise MalformedChunkedBody("bytes follow the end of the aws-chunked body")

    def _chunk_header(self, line: bytes) -> tuple[int, str]:
        size_text, _, extension = line.partition(b";")
        try:
            if not size_text or len(size_text) > 16:
                raise ValueError
            size = int(size_text, 16)
        except ValueError:
            raise MalformedChunkedBody(f"malformed chunk size {line[:40]!r}") from None
        if not self._signed:
            return size, ""
        name, _, signature = extension.partition(b"=")
        if name.strip() != b"chunk-signature" or len(signature) != 64:
            raise MalformedChunkedBody(
                "a signed aws-chunked body needs ;chunk-signature=<sig> on every chunk"
            )
        return size, signature.decode("ascii", "replace")

    def _sign(self, kind: str, *hashes: str) -> str:
        auth = self._auth
        text = "\n".join((f"AWS4-HMAC-SHA256-{kind}", auth.amz_date, auth.scope, self._previous, *hashes))
        return hmac.new(auth.signing_key, text.encode(), hashlib.sha256).hexdigest()

    def _check_chunk(self, signature: str, data_hash: str) -> None:
        expected = self._sign("PAYLOAD", EMPTY_SHA256, data_hash)
        if not hmac.compare_digest(expected, signature):
            raise SignatureDoesNotMatch(
                "The request signature we calculated does not match the signature you provided"
                " (an aws-chunked chunk's signature)",
                access_key_id=self._auth.access_key_id,
            )
        self._previous = signature

    async def _read_trailer(self) -> None:
        lines: list[bytes] = []
        signature: str | None = None
        while True:
            line = await self._reader.line()
            if line == b"":
                break
            if len(lines) >= MAX_TRAILERS:
                raise MalformedChunkedBody("too many trailer lines")
            name, sep, value = line.partition(b":")
            if not sep:
                raise MalformedChunkedBody(f"malformed trailer line {line[:60]!r}")
            if name.strip().lower() == TRAILER_SIGNATURE.encode():
                signature = value.strip().decode("ascii", "replace")
            else:
                lines.append(line)
        if self._signed:
            canonical = b"".join(line.strip() + b"\n" for line in lines)
            expected = self._sign("TRAILER", hashlib.sha256(canonical).hexdigest())
            if signature is None or not hmac.compare_digest(expected, signature):
                raise SignatureDoesNotMatch(
                    "The trailer signature we calculated does not match the one you provided",
                    access_key_id=self._auth.access_key_id,
                )
        for line in lines:
            name, _, value = line.partition(b":")
            algorithm = checksum_algorithm(name.decode("ascii", "replace"))
            self.checksums[algorithm] = value.strip().decode("ascii", "replace")
        assert self._declared is not None and self._hasher is not None
        sent = self.checksums.get(self._declared)
        if sent is None:
            raise IncompleteBody(f"the trailer lacks the declared x-amz-checksum-{self._declared}")
        computed = base64.b64encode(self._hasher.digest()).decode()
        if sent != computed:
            raise BadDigest(
                f"The {self._declared.upper()} you specified did not match the calculated checksum.",
                algorithm=self._declared,
            )


def decode(source: AsyncIterator[bytes], auth: Verified, headers: Mapping[str, str]) -> ChunkedBody:
    """The decoded body of an aws-chunked request (see :class:`ChunkedBody`)."""
    return ChunkedBody(source, auth, headers)
