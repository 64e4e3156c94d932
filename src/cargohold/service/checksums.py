"""Parsing of the checksums a client may send with a PUT, and their verification."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cargohold.errors import BadDigest, InvalidDigestHeader

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class ExpectedDigests:
    md5: str | None = None  # hex
    sha256: str | None = None  # hex

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

    def verify(self, digests: dict[str, str]) -> None:
        """Raise BadDigest when a computed digest differs from the one the client sent."""
        for name, expected in (("md5", self.md5), ("sha256", self.sha256)):
            if expected is not None and digests.get(name) != expected:
                raise BadDigest(
                    f"{name} of the body is {digests.get(name)}, the request said {expected}",
                    algorithm=name,
                )
