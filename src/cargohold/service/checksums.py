"""Parsing of the checksums a client may send with a PUT, and their verification.

Every digest a request declares is collected here and computed by the write
pipeline in the same pass as the ETag (``domain/digests.py``); :meth:`verify`
then runs before anything is committed.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cargohold.errors import BadDigest, ContentSha256Mismatch, InvalidDigestHeader

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class ExpectedDigests:
    md5: str | None = None  # hex
    sha256: str | None = None  # hex
    #: The SHA-256 an S3 request was signed with (``x-amz-content-sha256``), hex.
    signed_sha256: str | None = None
    #: S3 ``x-amz-checksum-*`` headers: (algorithm, base64 digest) pairs.
    checksums: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_headers(cls, content_md5: str | None, sha256: str | None) -> ExpectedDigests:
        md5_hex = None
        if content_md5 is not None:
            try:
                raw = base64.b64decode(content_md5.strip(), validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 16:
                raise InvalidDigestHeader("Content-MD5 must be the base64 of a 16-byte md5")
            md5_hex = raw.hex()
        sha_hex = None
        if sha256 is not None:
            value = sha256.strip()
            if _HEX64.fullmatch(value):
                sha_hex = value.lower()
            else:
                try:
                    raw = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    raw = b""
                if len(raw) != 32:
                    raise InvalidDigestHeader(
                        "x-checksum-sha256 must be 64 hex digits or the base64 of 32 bytes"
                    )
                sha_hex = raw.hex()
        return cls(md5_hex, sha_hex)

    def algorithms(self) -> set[str]:
        """The digests the write pipeline must compute to verify these."""
        names = {algorithm for algorithm, _ in self.checksums}
        if self.md5 is not None:
            names.add("md5")
        if self.sha256 is not None or self.signed_sha256 is not None:
            names.add("sha256")
        return names

    def verify(self, digests: dict[str, str]) -> None:
        """Raise when a computed digest (hex) differs from the one the request declared.

        The signed payload hash first: a body that is not the one signed is
        refused as such, whatever else it claims.
        """
        if self.signed_sha256 is not None and digests.get("sha256") != self.signed_sha256:
            raise ContentSha256Mismatch(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                client_computed=self.signed_sha256,
                s3_computed=digests.get("sha256"),
            )
        for algorithm, declared in self.checksums:
            if base64.b64encode(bytes.fromhex(digests[algorithm])).decode() != declared:
                raise BadDigest(
                    f"The {algorithm.upper()} you specified did not match the calculated checksum.",
                    algorithm=algorithm,
                )
        for name, expected in (("md5", self.md5), ("sha256", self.sha256)):
            if expected is not None and digests.get(name) != expected:
                raise BadDigest(
                    f"{name} of the body is {digests.get(name)}, the request said {expected}",
                    algorithm=name,
                )
