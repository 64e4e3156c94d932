"""S3 object operations: PutObject, GetObject, HeadObject, DeleteObject and CopyObject.

They call the object service the native API calls, with the caller's
principal, and answer through the same streaming response
(``api/object_responses.py``): conditional requests, ranges, errors decided
before the first byte and aborts after it. What S3 adds is here: md5 ETags,
stored headers (``s3/headers.py``), ``partNumber`` reads, ``response-*``
overrides, conditional writes and S3's idea of a delete that finds nothing
(204, not 404).
"""

from __future__ import annotations

from urllib.parse import unquote

from aiohttp import web

from cargohold.api.audit import note
from cargohold.api.native import content_type
from cargohold.api.object_responses import stream_object_response
from cargohold.domain.conditions import ReadConditions, WriteCondition
from cargohold.domain.model import ObjectRecord
from cargohold.domain.ranges import ByteRange
from cargohold.domain.uploads import MAX_PART_NUMBER
from cargohold.domain.versions import validate_version_id
from cargohold.errors import (
    InvalidArgument,
    InvalidPartNumber,
    InvalidRequest,
    MissingContentLength,
    NoSuchKey,
)
from cargohold.s3.checksums import with_trailers, write_expectations
from cargohold.s3.context import decoded_length, object_name, payload, query_int, services, who
from cargohold.s3.headers import (
    DELETE_MARKER,
    VERSION_ID,
    object_response_headers,
    stored_headers,
    version_header,
)
from cargohold.s3.xml import child, root, timestamp, xml_response
from cargohold.service.access import Level
from cargohold.service.copies import CopyService, CopySource

COPY_SOURCE = "x-amz-copy-source"


def version_query(request: web.Request) -> str | None:
    version_id = request.query.get("versionId")
    return None if version_id is None else validate_version_id(version_id)


async def put_object(request: web.Request) -> web.StreamResponse:
    bucket, key = object_name(request)
    length = decoded_length(request)
    if length is None:
        raise MissingContentLength("PutObject needs a Content-Length")
    stored = stored_headers(request.headers)
    data, signed_sha256 = payload(request)
    record = await services(request).objects.put(
        who(request),
        bucket,
        key,
        with_trailers(data, stored),
        content_length=length,
        content_type=content_type(request.headers.get("Content-Type")),
        expected=write_expectations(request.headers, stored, signed_sha256),
        md5_etag=True,
        headers=stored,
        condition=WriteCondition.from_headers(request.headers),
    )
    note(request, version_id=record.version_id, size=record.size)
    answer = {"ETag": f'"{record.etag}"', **version_header(record)}
    answer.update({k: v for k, v in record.headers.items() if k.startswith("x-amz-checksum-")})
    return web.Response(status=200, headers=answer)


async def get_object(request: web.Request) -> web.StreamResponse:
    """GetObject and HeadObject (the response streams only for GET)."""
    bucket, key = object_name(request)
    service = services(request)
    found = await service.access.bucket(who(request), bucket, Level.READ)
    record = await service.objects.find(found, key, version_query(request))
    note(request, version_id=record.version_id, size=record.size)
    byte_range = None
    number = request.query.get("partNumber")
    if number is not None:
        if "Range" in request.headers:
            raise InvalidArgument("a GET may name a Range or a partNumber, not both")
        byte_range = part_range(record, query_int(number, "partNumber", minimum=1, maximum=MAX_PART_NUMBER))
    whole = byte_range is None and "Range" not in request.headers
    headers = object_response_headers(
        record,
        request.query,
        whole=whole,
        checksums=request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED",
    )
    if number is not None:
        headers["x-amz-mp-parts-count"] = str(max(1, len(record.parts)))
    return await stream_object_response(request, service.objects, record, headers, byte_range=byte_range)


def part_range(record: ObjectRecord, number: int) -> ByteRange | None:
    """The bytes of part ``number`` (a single PUT is part 1); None: the whole (empty) object."""
    if not record.parts:
        if number != 1:
            raise InvalidPartNumber(f"the object has 1 part, not {number}")
        return ByteRange(0, record.size - 1) if record.size else None
    part = next((p for p in record.parts if p.part_number == number), None)
    if part is None:
        raise InvalidPartNumber(f"the object has no part {number}")
    return ByteRange(part.offset, part.offset + part.size - 1) if part.size else None


async def delete_object(request: web.Request) -> web.StreamResponse:
    """DeleteObject: as the native DELETE, but a key or version that is not there is a 204 too."""
    bucket, key = object_name(request)
    version_id = version_query(request)
    try:
        deleted = await services(request).objects.delete(who(request), bucket, key, version_id)
    except NoSuchKey:  # NoSuchVersion too: deleting what is gone is done
        return web.Response(status=204)
    note(
        request,
        version_id=deleted.version_id,
        size=deleted.size,
        detail={"delete_marker": deleted.delete_marker},
    )
    headers: dict[str, str] = {}
    if deleted.delete_marker:
        headers[DELETE_MARKER] = "true"
    if deleted.delete_marker or version_id is not None:
        headers[VERSION_ID] = deleted.version_id
    return web.Response(status=204, headers=headers)


def parse_copy_source(header: str) -> tuple[str, str, str | None]:
    """``/bucket/key?versionId=V`` (URL-encoded; the leading slash optional) -> parts."""
    path, _, query = header.partition("?")
    version_id = None
    if query:
        name, _, value = query.partition("=")
        if name != "versionId" or not value:
            raise InvalidArgument("x-amz-copy-source may only carry ?versionId=", header=COPY_SOURCE)
        version_id = validate_version_id(unquote(value))
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not bucket or not key:
        raise InvalidArgument("x-amz-copy-source must be bucket/key", header=COPY_SOURCE)
    return bucket, key, version_id


def copy_source(request: web.Request) -> CopySource:
    bucket, key, version_id = parse_copy_source(request.headers[COPY_SOURCE])
    conditions = ReadConditions.from_headers(request.headers, prefix="x-amz-copy-source-")
    return CopySource(bucket, key, version_id, conditions)


def copies(request: web.Request) -> CopyService:
    service = services(request)
    return CopyService(service.access, service.quota, service.objects)


async def copy_object(request: web.Request) -> web.StreamResponse:
    """CopyObject: server side, metadata kept (COPY) or taken from this request (REPLACE)."""
    bucket, key = object_name(request)
    source = copy_source(request)
    directive = request.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise InvalidArgument("x-amz-metadata-directive must be COPY or REPLACE")
    replace = directive == "REPLACE"
    if not replace and (source.bucket, source.key) == (bucket, key) and source.version_id is None:
        raise InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself without "
            "changing the object's metadata"
        )
    copied = await copies(request).copy(
        who(request),
        source,
        bucket,
        key,
        content_type=content_type(request.headers.get("Content-Type")) if replace else None,
        headers=stored_headers(request.headers) if replace else None,
        condition=WriteCondition.from_headers(request.headers),
    )
    record = copied.record
    note(
        request,
        version_id=record.version_id,
        size=record.size,
        detail={"copy_source": f"{source.bucket}/{source.key}"},
    )
    document = root("CopyObjectResult")
    child(document, "LastModified", timestamp(record.created_at))
    child(document, "ETag", f'"{record.etag}"')
    headers = version_header(record)
    if copied.source.versioned:
        headers["x-amz-copy-source-version-id"] = copied.source.version_id
    return xml_response(document, headers=headers)
