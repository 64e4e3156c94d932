"""S3 multipart uploads on the upload state machine that upload sessions and tus use.

An S3 upload is an upload of protocol ``s3``: its parts stream straight
into erasure-coded shares like any session's, and completing it moves
metadata only, whatever the number of parts. The protocol gives it S3's
completion rules (listed numbers may have gaps, every part but the last
holds at least 5 MiB, the ETag is the md5 of the part md5s with ``-N``)
and the headers given at its start go to the object it becomes.
"""

from __future__ import annotations

import re

from aiohttp import web

from cargohold.api.audit import note
from cargohold.api.native import content_type
from cargohold.domain.model import PartRecord
from cargohold.domain.ranges import ByteRange
from cargohold.domain.uploads import MAX_PART_NUMBER, OPEN_STATES, S3, Upload
from cargohold.errors import InvalidArgument, InvalidRange, MalformedXML, MissingContentLength
from cargohold.s3.checksums import with_trailers, write_expectations
from cargohold.s3.context import (
    body,
    bucket_name,
    decoded_length,
    max_keys,
    object_name,
    payload,
    query_int,
    services,
    who,
)
from cargohold.s3.documents import elements, read_document, text_of
from cargohold.s3.headers import stored_headers, version_header
from cargohold.s3.objects import COPY_SOURCE, copies, copy_source
from cargohold.s3.xml import child, root, timestamp, xml_response
from cargohold.service.access import Level
from cargohold.service.checksums import ExpectedDigests
from cargohold.service.uploads import NoSuchUpload

_COPY_RANGE = re.compile(r"bytes=([0-9]{1,19})-([0-9]{1,19})")


def _upload_id(request: web.Request) -> str:
    return request.query.get("uploadId", "")


async def _upload(
    request: web.Request, bucket: str, key: str, need: Level, *, with_parts: bool = False
) -> Upload:
    """The upload the request names, if it is an open one of ``bucket``/``key`` (else NoSuchUpload)."""
    upload_id = _upload_id(request)
    upload = await services(request).uploads.get(who(request), upload_id, with_parts=with_parts, need=need)
    if upload.bucket != bucket or upload.key != key or upload.status not in OPEN_STATES:
        raise NoSuchUpload(f"no upload {upload_id!r} of {bucket}/{key}", upload_id=upload_id)
    return upload


def _part_number(request: web.Request) -> int:
    return query_int(request.query.get("partNumber", ""), "partNumber", minimum=1, maximum=MAX_PART_NUMBER)


async def create_upload(request: web.Request) -> web.StreamResponse:
    bucket, key = object_name(request)
    upload = await services(request).uploads.create(
        who(request),
        bucket,
        key,
        content_type=content_type(request.headers.get("Content-Type")),
        protocol=S3,
        headers=stored_headers(request.headers),
    )
    note(request, detail={"upload_id": upload.id})
    document = root("InitiateMultipartUploadResult")
    child(document, "Bucket", bucket)
    child(document, "Key", key)
    child(document, "UploadId", upload.id)
    return xml_response(document)


async def upload_part(request: web.Request) -> web.StreamResponse:
    """UploadPart, or UploadPartCopy when the request names a copy source."""
    bucket, key = object_name(request)
    number = _part_number(request)
    await _upload(request, bucket, key, Level.WRITE)
    if COPY_SOURCE in request.headers:
        return await _copy_part(request, number)
    length = decoded_length(request)
    if length is None:
        raise MissingContentLength("UploadPart needs a Content-Length")
    stored = stored_headers(request.headers)
    data, signed_sha256 = payload(request)
    part = await services(request).uploads.put_part(
        who(request),
        _upload_id(request),
        number,
        with_trailers(data, stored),
        length,
        write_expectations(request.headers, stored, signed_sha256),
    )
    note(request, size=part.size, detail={"upload_id": _upload_id(request), "part": number})
    return web.Response(status=200, headers={"ETag": f'"{part.etag}"'})


async def _copy_part(request: web.Request, number: int) -> web.StreamResponse:
    """UploadPartCopy: the part's bytes come from a stored object (or a range of it), server side."""
    service = copies(request)
    _, source = await service.source(who(request), copy_source(request))
    wanted = _copy_range(request.headers.get("x-amz-copy-source-range"), source.size)
    start, end = (wanted.start, wanted.end + 1) if wanted else (0, source.size)
    part = await services(request).uploads.put_part(
        who(request),
        _upload_id(request),
        number,
        service.read_range(source, start, end),
        end - start,
        ExpectedDigests(),
    )
    note(request, size=part.size, detail={"upload_id": _upload_id(request), "part": number, "copy": True})
    document = root("CopyPartResult")
    child(document, "LastModified", timestamp(source.created_at))
    child(document, "ETag", f'"{part.etag}"')
    headers = {"x-amz-copy-source-version-id": source.version_id} if source.versioned else {}
    return xml_response(document, headers=headers)


def _copy_range(header: str | None, size: int) -> ByteRange | None:
    """``bytes=first-last`` within the source (both inclusive), as S3 requires for UploadPartCopy."""
    if header is None:
        return None
    match = _COPY_RANGE.fullmatch(header.strip())
    if not match:
        raise InvalidArgument(
            "x-amz-copy-source-range must be bytes=first-last", header="x-amz-copy-source-range"
        )
    first, last = int(match.group(1)), int(match.group(2))
    if first > last or last >= size:
        raise InvalidRange(f"the range {header!r} is not within the source's {size} bytes", size=size)
    return ByteRange(first, last)


async def complete_upload(request: web.Request) -> web.StreamResponse:
    bucket, key = object_name(request)
    await _upload(request, bucket, key, Level.WRITE)
    document = await read_document(body(request), "CompleteMultipartUpload")
    requested: list[tuple[int, str | None]] = []
    for part in elements(document, "Part"):
        number = text_of(part, "PartNumber")
        if number is None:
            raise MalformedXML("every Part needs a PartNumber")
        try:
            value = int(number)
        except ValueError:
            raise MalformedXML(f"PartNumber {number!r} is not a number") from None
        if not 1 <= value <= MAX_PART_NUMBER:
            raise InvalidArgument(f"part numbers run from 1 to {MAX_PART_NUMBER}", argument="PartNumber")
        requested.append((value, text_of(part, "ETag")))
    if not requested:
        raise MalformedXML("the part list is empty")
    record = await services(request).uploads.complete(who(request), _upload_id(request), requested)
    note(request, version_id=record.version_id, size=record.size, detail={"upload_id": _upload_id(request)})
    answer = root("CompleteMultipartUploadResult")
    child(answer, "Location", f"{request.scheme}://{request.host}/{bucket}/{key}")
    child(answer, "Bucket", bucket)
    child(answer, "Key", key)
    child(answer, "ETag", f'"{record.etag}"')
    return xml_response(answer, headers=version_header(record))


async def abort_upload(request: web.Request) -> web.StreamResponse:
    bucket, key = object_name(request)
    await _upload(request, bucket, key, Level.WRITE)
    await services(request).uploads.abort(who(request), _upload_id(request))
    note(request, detail={"upload_id": _upload_id(request)})
    return web.Response(status=204)


def _initiator(parent, name: str) -> None:  # type: ignore[no-untyped-def]
    for tag in ("Initiator", "Owner"):
        element = child(parent, tag)
        child(element, "ID", name)
        child(element, "DisplayName", name)


async def list_parts(request: web.Request) -> web.StreamResponse:
    bucket, key = object_name(request)
    upload = await _upload(request, bucket, key, Level.READ, with_parts=True)
    limit = max_keys(request, "max-parts")
    marker = query_int(request.query.get("part-number-marker", "0") or "0", "part-number-marker")
    following = [p for p in upload.parts if p.part_number > marker]
    page: list[PartRecord] = following[:limit]
    truncated = len(following) > limit
    document = root("ListPartsResult")
    child(document, "Bucket", bucket)
    child(document, "Key", key)
    child(document, "UploadId", upload.id)
    _initiator(document, upload.owner or "")
    child(document, "StorageClass", "STANDARD")
    child(document, "PartNumberMarker", marker)
    if page:
        child(document, "NextPartNumberMarker", page[-1].part_number)
    child(document, "MaxParts", limit)
    child(document, "IsTruncated", truncated)
    for part in page:
        entry = child(document, "Part")
        child(entry, "PartNumber", part.part_number)
        child(entry, "LastModified", timestamp(upload.updated_at))
        child(entry, "ETag", f'"{part.etag}"')
        child(entry, "Size", part.size)
    note(request, detail={"upload_id": upload.id})
    return xml_response(document)


async def list_uploads(request: web.Request) -> web.StreamResponse:
    """ListMultipartUploads: open uploads of the bucket by key, then by start time."""
    bucket = bucket_name(request)
    found = await services(request).uploads.list_open(who(request), bucket)
    prefix = request.query.get("prefix", "")
    limit = max_keys(request, "max-uploads")
    key_marker = request.query.get("key-marker", "")
    id_marker = request.query.get("upload-id-marker", "")
    ordered = sorted(
        (u for u in found if u.key.startswith(prefix)), key=lambda u: (u.key, u.created_at, u.id)
    )
    if key_marker:
        ordered = _after(ordered, key_marker, id_marker)
    page, truncated = ordered[:limit], len(ordered) > limit
    document = root("ListMultipartUploadsResult")
    child(document, "Bucket", bucket)
    child(document, "KeyMarker", key_marker)
    child(document, "UploadIdMarker", id_marker)
    if truncated and page:
        child(document, "NextKeyMarker", page[-1].key)
        child(document, "NextUploadIdMarker", page[-1].id)
    child(document, "Prefix", prefix)
    child(document, "MaxUploads", limit)
    child(document, "IsTruncated", truncated)
    for upload in page:
        entry = child(document, "Upload")
        child(entry, "Key", upload.key)
        child(entry, "UploadId", upload.id)
        _initiator(entry, upload.owner or "")
        child(entry, "StorageClass", "STANDARD")
        child(entry, "Initiated", timestamp(upload.created_at))
    return xml_response(document)


def _after(ordered: list[Upload], key_marker: str, id_marker: str) -> list[Upload]:
    """Uploads after the markers: keys after ``key_marker``, or after ``id_marker`` within it."""
    if not id_marker:
        return [u for u in ordered if u.key > key_marker]
    ids = [u.id for u in ordered]
    if id_marker in ids:
        return ordered[ids.index(id_marker) + 1 :]
    return [u for u in ordered if u.key > key_marker]
