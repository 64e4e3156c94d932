"""ListObjects (v1 and v2) and ListObjectVersions over the object service's listings.

The pages come from the same listing the native API uses (one statement per
page, a common prefix skipped in one seek). S3's markers map onto its
cursor: a v1 ``marker`` and a v2 ``start-after`` are cursors as they are
("keys after this one"), a v2 continuation token is the cursor in base64url.
A version listing continues from ``NextVersionIdMarker``, which carries the
version cursor (clients hand it back unread). The answers are written as text
(``xml.leaf``): a thousand entries as an element tree cost more than the page.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from urllib.parse import quote

from aiohttp import web

from cargohold.api.audit import note
from cargohold.domain.model import Bucket, ObjectRecord
from cargohold.domain.versions import VersionCursor
from cargohold.errors import InvalidArgument
from cargohold.s3.context import bucket_name, max_keys, services, who
from cargohold.s3.xml import branch, leaf, text_response, timestamp
from cargohold.service.access import Level

#: Longest delimiter accepted (S3 sets no limit; a key has at most 1024 bytes).
MAX_DELIMITER = 1024


def _encoder(request: web.Request) -> Callable[[str], str]:
    """``encoding-type=url``: keys and prefixes URL-encoded in the answer (safe for any character)."""
    encoding = request.query.get("encoding-type")
    if encoding is None:
        return lambda text: text
    if encoding != "url":
        raise InvalidArgument("encoding-type must be url", argument="encoding-type")
    return lambda text: quote(text, safe="/")


def _delimiter(request: web.Request) -> str:
    delimiter = request.query.get("delimiter", "")
    if len(delimiter) > MAX_DELIMITER:
        raise InvalidArgument(f"delimiter may have at most {MAX_DELIMITER} characters", argument="delimiter")
    return delimiter


def encode_token(cursor: str) -> str:
    return base64.urlsafe_b64encode(cursor.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    try:
        cursor = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(
            "The continuation token provided is incorrect", argument="continuation-token"
        ) from exc
    if not cursor:
        raise InvalidArgument("The continuation token provided is incorrect", argument="continuation-token")
    return cursor


def _owner(owner: str | None) -> str:
    return branch("Owner", leaf("ID", owner or ""), leaf("DisplayName", owner or ""))


def _contents(record: ObjectRecord, encode: Callable[[str], str], owner: str) -> str:
    """One ``<Contents>``; ``owner`` is the rendered ``<Owner>`` ("" when not asked for)."""
    return branch(
        "Contents",
        leaf("Key", encode(record.key)),
        leaf("LastModified", timestamp(record.created_at)),
        leaf("ETag", f'"{record.etag}"'),
        leaf("Size", record.size),
        owner,
        leaf("StorageClass", "STANDARD"),
    )


async def _bucket(request: web.Request, name: str) -> Bucket:
    return await services(request).access.bucket(who(request), name, Level.READ)


async def _owner_name(request: web.Request, bucket: Bucket) -> str | None:
    """The bucket owner's name, shown as every entry's Owner (read only when an answer shows it)."""
    return (await services(request).namespaces.owners([bucket])).get(bucket.id)


async def list_objects(request: web.Request) -> web.StreamResponse:
    """ListObjects (v1) and ListObjectsV2 (``list-type=2``)."""
    name = bucket_name(request)
    v2 = request.query.get("list-type") == "2"
    if "list-type" in request.query and not v2:
        raise InvalidArgument("list-type must be 2", argument="list-type")
    bucket = await _bucket(request, name)
    encode = _encoder(request)
    prefix, delimiter, limit = request.query.get("prefix", ""), _delimiter(request), max_keys(request)
    token = request.query.get("continuation-token")
    if v2:
        start_after = request.query.get("start-after") or None
        cursor = decode_token(token) if token is not None else start_after
    else:
        cursor = request.query.get("marker") or None
    objects, prefixes, next_cursor = [], [], None
    if limit > 0:
        listing = await services(request).objects.list_in(
            bucket, prefix, delimiter, limit, cursor, max_delimiter=MAX_DELIMITER
        )
        objects, prefixes, next_cursor = listing.objects, listing.common_prefixes, listing.next_cursor
    parts = [leaf("Name", bucket.name), leaf("Prefix", encode(prefix))]
    if v2:
        if token is not None:
            parts.append(leaf("ContinuationToken", token))
        if start_after:
            parts.append(leaf("StartAfter", encode(start_after)))
        parts.append(leaf("KeyCount", len(objects) + len(prefixes)))
    else:
        parts.append(leaf("Marker", encode(cursor or "")))
    parts.append(leaf("MaxKeys", limit))
    if delimiter:
        parts.append(leaf("Delimiter", encode(delimiter)))
    parts.append(leaf("IsTruncated", next_cursor is not None))
    if next_cursor is not None:
        if v2:
            parts.append(leaf("NextContinuationToken", encode_token(next_cursor)))
        else:
            parts.append(leaf("NextMarker", encode(next_cursor)))
    if "encoding-type" in request.query:
        parts.append(leaf("EncodingType", "url"))
    fetch_owner = not v2 or request.query.get("fetch-owner") == "true"
    owner = _owner(await _owner_name(request, bucket)) if fetch_owner and objects else ""
    parts += [_contents(record, encode, owner) for record in objects]
    parts += [branch("CommonPrefixes", leaf("Prefix", encode(common))) for common in prefixes]
    note(request, detail={"s3": "ListObjectsV2" if v2 else "ListObjects"})
    return text_response("ListBucketResult", parts)


async def list_versions(request: web.Request) -> web.StreamResponse:
    """ListObjectVersions: every version and delete marker under ``prefix``, keys ascending."""
    name = bucket_name(request)
    if request.query.get("delimiter"):
        raise InvalidArgument("ListObjectVersions does not group by delimiter here", argument="delimiter")
    bucket = await _bucket(request, name)
    encode = _encoder(request)
    prefix, limit = request.query.get("prefix", ""), max_keys(request)
    key_marker = request.query.get("key-marker", "")
    version_marker = request.query.get("version-id-marker", "")
    if version_marker and not key_marker:
        raise InvalidArgument("a version-id-marker needs a key-marker", argument="version-id-marker")
    cursor = None
    if version_marker:
        cursor = VersionCursor.decode(version_marker).encode()
    elif key_marker:
        cursor = VersionCursor.after_key(key_marker).encode()
    versions, next_cursor = [], None
    if limit > 0:
        page = await services(request).objects.versions(
            who(request), bucket.name, prefix=prefix, limit=limit, cursor=cursor
        )
        versions, next_cursor = page.versions, page.next_cursor
    parts = [
        leaf("Name", bucket.name),
        leaf("Prefix", encode(prefix)),
        leaf("KeyMarker", encode(key_marker)),
        leaf("VersionIdMarker", version_marker),
        leaf("MaxKeys", limit),
        leaf("IsTruncated", next_cursor is not None),
    ]
    if next_cursor is not None:
        parts += [leaf("NextKeyMarker", encode(versions[-1].key)), leaf("NextVersionIdMarker", next_cursor)]
    if "encoding-type" in request.query:
        parts.append(leaf("EncodingType", "url"))
    owner = _owner(await _owner_name(request, bucket)) if versions else ""
    for version in versions:
        fields = [
            leaf("Key", encode(version.key)),
            leaf("VersionId", version.version_id),
            leaf("IsLatest", version.is_latest),
            leaf("LastModified", timestamp(version.created_at)),
        ]
        if not version.delete_marker:
            fields += [
                leaf("ETag", f'"{version.etag}"'),
                leaf("Size", version.size),
                leaf("StorageClass", "STANDARD"),
            ]
        parts.append(branch("DeleteMarker" if version.delete_marker else "Version", *fields, owner))
    note(request, detail={"s3": "ListObjectVersions"})
    return text_response("ListVersionsResult", parts)
