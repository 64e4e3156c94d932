"""Headers S3 stores with an object and returns with it, and the ones a GET may override.

Stored: ``Content-Disposition``, ``Content-Encoding``, ``Content-Language``,
``Cache-Control``, ``Expires``, every ``x-amz-meta-*`` and the
``x-amz-checksum-*`` the client sent (names lower-cased, as S3 does). They
live in the version's ``headers`` (``ObjectRecord.headers``), so the native
API returns them too. Canned ACLs are accepted and every object is private.
"""

from __future__ import annotations

from collections.abc import Mapping

from cargohold.domain.model import ObjectRecord
from cargohold.errors import InvalidArgument

STORED = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")
CHECKSUM_PREFIX = "x-amz-checksum-"
CHECKSUMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
META_PREFIX = "x-amz-meta-"
#: S3's limit on user metadata: names and values together.
MAX_META_BYTES = 2048
MAX_HEADER_VALUE = 1024
CANNED_ACLS = frozenset(
    {
        "private",
        "public-read",
        "public-read-write",
        "authenticated-read",
        "aws-exec-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
        "log-delivery-write",
    }
)
#: ``response-*`` query parameters of a GET and the header each one sets.
OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
VERSION_ID = "x-amz-version-id"
DELETE_MARKER = "x-amz-delete-marker"


def check_acl(headers: Mapping[str, str]) -> None:
    """A canned ACL must be one S3 knows; it is recorded as private (no public objects)."""
    acl = headers.get("x-amz-acl")
    if acl is not None and acl not in CANNED_ACLS:
        raise InvalidArgument(f"unknown canned ACL {acl!r}", header="x-amz-acl")


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """What a PUT, copy with REPLACE or multipart start stores with the object."""
    check_acl(headers)
    kept: dict[str, str] = {}
    meta_bytes = 0
    for raw_name, value in headers.items():
        name = raw_name.lower()
        if name in STORED or name.startswith(META_PREFIX) or _is_checksum(name):
            if len(value) > MAX_HEADER_VALUE or not value.isprintable():
                raise InvalidArgument(f"header {raw_name} must be at most {MAX_HEADER_VALUE} printable chars")
            if name.startswith(META_PREFIX):
                meta_bytes += len(name) - len(META_PREFIX) + len(value.encode())
            if name == "content-encoding":  # aws-chunked is the request's framing, not the object's
                value = ",".join(
                    t.strip() for t in value.split(",") if t.strip() and t.strip() != "aws-chunked"
                )
                if not value:
                    continue
            kept[name] = value
    if meta_bytes > MAX_META_BYTES:
        raise InvalidArgument(
            f"user metadata may hold at most {MAX_META_BYTES} bytes", code="MetadataTooLarge"
        )
    return kept


def _is_checksum(name: str) -> bool:
    return name.startswith(CHECKSUM_PREFIX) and name[len(CHECKSUM_PREFIX) :] in CHECKSUMS


def object_response_headers(
    record: ObjectRecord, query: Mapping[str, str], *, whole: bool, checksums: bool
) -> dict[str, str]:
    """Stored headers (checksums only for a whole object when asked for), version id, overrides."""
    out: dict[str, str] = {}
    for name, value in record.headers.items():
        if _is_checksum(name) and not (whole and checksums):
            continue
        out[name] = value
    out.update(version_header(record))
    for parameter, header in OVERRIDES.items():
        override = query.get(parameter)
        if override is not None:
            if not override.isprintable():
                raise InvalidArgument(f"{parameter} must be printable")
            out[header] = override
    return out


def version_header(record: ObjectRecord) -> dict[str, str]:
    """``x-amz-version-id`` of a version written while its bucket kept versions.

    A key's unversioned version (versioning never on, or suspended) has an
    id too, but S3 clients expect none there, so none is sent.
    """
    return {VERSION_ID: record.version_id} if record.versioned else {}
