"""Validation of bucket names and object keys (pure)."""

from __future__ import annotations

import re

from cargohold.errors import InvalidBucketName, InvalidKey

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024


def validate_bucket(name: str) -> str:
    """S3's rules: 3-63 chars of a-z 0-9 . -, starting and ending alphanumeric, no '..'."""
    if not _BUCKET.match(name) or ".." in name:
        raise InvalidBucketName(
            f"bucket name {name!r} must be 3-63 chars of a-z, 0-9, '.', '-' "
            "and start and end with a letter or digit"
        )
    return name


def validate_key(key: str) -> str:
    """Keys are UTF-8 paths of up to 1024 bytes; '/' separates segments.

    We refuse what would be unsafe or ambiguous once a client maps the key to
    a local path: control characters, a leading '/', empty, '.' or '..' segments.
    """
    if not key:
        raise InvalidKey("object key is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key is longer than {MAX_KEY_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidKey("object key contains control characters")
    if key.startswith("/"):
        raise InvalidKey("object key starts with '/'")
    segments = key.split("/")
    if any(s in (".", "..") for s in segments) or any(s == "" for s in segments[:-1]):
        raise InvalidKey("object key has an empty, '.' or '..' segment")
    return key
