"""Validation of user names, bucket names and object keys (pure).

Patterns are applied with ``fullmatch``: ``re.match`` with a ``$`` anchor
would also accept a name followed by a newline.
"""

from __future__ import annotations

import re

from cargohold.errors import InvalidArgument, InvalidBucketName, InvalidKey

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: First path segments the gateway serves itself: the S3 surface answers every other one at the
#: root path (``/<bucket>/<key>``), so no bucket may be named like these. Shorter ones (``s``,
#: ``ui``) are below the 3-character minimum anyway, and listed so the set is complete.
RESERVED_PREFIXES = ("api", "tus", "s", "docs", "openapi.json", "ui", "metrics", "healthz")
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MAX_KEY_BYTES = 1024
#: What no key may hold: C0 controls and DEL, C1 controls, the bidirectional
#: embeddings, overrides and isolates (they make a listing show another name
#: than the one stored), and lone surrogates (not UTF-8 at all).
_FORBIDDEN_IN_KEY = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def validate_user_name(name: object) -> str:
    """User names: 1-64 of letters, digits, '.', '_', '-', '@'; they appear in URLs and history."""
    if not isinstance(name, str) or not _USER_NAME.fullmatch(name):
        raise InvalidArgument(
            "user name must be 1-64 characters of letters, digits, '.', '_', '-', '@'", field="name"
        )
    return name


def validate_bucket(name: str) -> str:
    """S3's rules: 3-63 chars of a-z 0-9 . -, starting and ending alphanumeric, no '..'.

    The gateway's own path prefixes (``RESERVED_PREFIXES``) are refused too.
    """
    if not _BUCKET.fullmatch(name) or ".." in name:
        raise InvalidBucketName(
            f"bucket name {name!r} must be 3-63 chars of a-z, 0-9, '.', '-' "
            "and start and end with a letter or digit"
        )
    if name in RESERVED_PREFIXES:
        raise InvalidBucketName(
            f"bucket name {name!r} is reserved: the gateway serves /{name} itself "
            f"(reserved: {', '.join(RESERVED_PREFIXES)})"
        )
    return name


def validate_key(key: str) -> str:
    """Keys are UTF-8 paths of up to 1024 bytes; '/' separates segments.

    We refuse what would be unsafe or ambiguous once a client maps the key to
    a local path or shows it: control characters (C0, DEL, C1), bidirectional
    overrides and isolates, lone surrogates, a leading '/', empty, '.' or
    '..' segments.
    """
    if not key:
        raise InvalidKey("object key is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key is longer than {MAX_KEY_BYTES} bytes")
    bad = _FORBIDDEN_IN_KEY.search(key)
    if bad is not None:
        raise InvalidKey(f"object key contains the control or formatting character U+{ord(bad.group()):04X}")
    if key.startswith("/"):
        raise InvalidKey("object key starts with '/'")
    segments = key.split("/")
    if any(s in (".", "..") for s in segments) or any(s == "" for s in segments[:-1]):
        raise InvalidKey("object key has an empty, '.' or '..' segment")
    return key
