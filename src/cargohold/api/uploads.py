"""Upload sessions over the native API: create, parts, Content-Range chunks, complete, abort, events.

Handlers translate HTTP to :class:`UploadService` calls; the state machine and
every rule live there (tus speaks to the same service from ``api/tus.py``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from cargohold.aborts import begin
from cargohold.api import schemas
from cargohold.api.audit import note
from cargohold.api.auth import principal
from cargohold.api.context import SERVICES
from cargohold.api.inputs import INT32_MAX, INT64_MAX, content_type, int_path, model_body
from cargohold.api.native import Route, json_response, object_json
from cargohold.domain.uploads import FINAL_STATES, SizeMismatch, Upload, percentage_of
from cargohold.errors import InvalidArgument
from cargohold.service.checksums import ExpectedDigests
from cargohold.service.uploads import MD5_HEX, UploadService

API = "/api/v1/uploads"
CONTENT_RANGE_PATTERN = "^bytes ([0-9]{1,19})-([0-9]{1,19})/([0-9]{1,19}|[*])$"
_CONTENT_RANGE = re.compile(CONTENT_RANGE_PATTERN)
_HEX = re.compile(r"[0-9a-f]+")


class InvalidContentRange(InvalidArgument):
    """A chunk's Content-Range that is malformed or contradicts itself or the body's length."""

    code = "invalid_content_range"
    title = "Invalid Content-Range"


def _uploads(request: web.Request) -> UploadService:
    return request.app[SERVICES].uploads


def upload_json(upload: Upload, inflight: int = 0) -> dict[str, Any]:
    received = upload.received + inflight
    percentage = percentage_of(received, upload.total_size)
    return {
        "id": upload.id,
        "bucket": upload.bucket,
        "key": upload.key,
        "status": upload.status,
        "protocol": upload.protocol,
        "size": upload.total_size,
        "bytes_received": received,
        "offset": upload.offset,
        "uploaded_percentage": percentage,
        "content_type": upload.content_type,
        "part_size": upload.part_size,
        "parts": [
            {"part_number": p.part_number, "size": p.size, "md5": p.etag if len(p.etag) == MD5_HEX else None}
            for p in upload.parts
        ],
        "created_at": upload.created_at.isoformat(),
        "updated_at": upload.updated_at.isoformat(),
        "expires_at": upload.expires_at.isoformat(),
        "error": upload.error,
    }


def _expected(md5: str | None, sha256: str | None) -> ExpectedDigests:
    """The digests a client announced (the model checked they are hex of the right length)."""
    return ExpectedDigests(md5.lower() if md5 else None, sha256.lower() if sha256 else None)


async def create_upload(request: web.Request) -> web.Response:
    body = await model_body(request, schemas.CreateUpload)
    upload = await _uploads(request).create(
        principal(request),
        body.bucket,
        body.key,
        total_size=body.size,
        content_type=content_type(body.content_type),
        expected=_expected(body.md5, body.sha256),
        part_size=body.part_size,
    )
    note(request, bucket=upload.bucket, key=upload.key, size=upload.total_size)
    return json_response(upload_json(upload), status=201)


async def list_uploads(request: web.Request) -> web.Response:
    found = await _uploads(request).list_open(principal(request), request.query.get("bucket"))
    return json_response({"uploads": [upload_json(u) for u in found]})


async def get_upload(request: web.Request) -> web.Response:
    service = _uploads(request)
    upload = await service.get(principal(request), request.match_info["upload_id"])
    return json_response(upload_json(upload, service.inflight(upload.id)))


def _part_number(request: web.Request) -> int:
    return int_path(request, "number", minimum=0, maximum=INT32_MAX)  # the service says 1..10000


async def put_part(request: web.Request) -> web.Response:
    expected = ExpectedDigests.from_headers(
        request.headers.get("Content-MD5"), request.headers.get("x-checksum-sha256")
    )
    part = await _uploads(request).put_part(
        principal(request),
        request.match_info["upload_id"],
        _part_number(request),
        request.content.iter_any(),
        request.content_length,
        expected,
    )
    return json_response(
        {"part_number": part.part_number, "size": part.size, "md5": part.etag},
        headers={"ETag": f'"{part.etag}"'},
    )


def parse_content_range(header: str | None) -> re.Match[str]:
    """The parts of a ``bytes a-b/total`` header, judged by ``check_content_range`` once the
    upload is known (an unknown upload is 404 whatever range a chunk names)."""
    match = _CONTENT_RANGE.fullmatch((header or "").strip())
    if not match:
        raise InvalidContentRange("a chunk needs Content-Range: bytes a-b/total (total may be *)")
    return match


def check_content_range(match: re.Match[str], content_length: int | None) -> tuple[int, int, int | None]:
    """``bytes a-b/total`` -> (offset, length, total or None for '*').

    ``first <= last < total`` and the body's length is ``last - first + 1``: rules between
    numbers that no schema states, so the document says them in words (``invalid_content_range``).
    """
    header = match.group(0)
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if last < first or last >= INT64_MAX or (total is not None and (last >= total or total > INT64_MAX)):
        raise InvalidContentRange(
            f"Content-Range {header!r} is not a range: bytes first-last/total, first <= last < total"
        )
    length = last - first + 1
    if content_length is not None and content_length != length:
        raise InvalidContentRange(
            f"Content-Range covers {length} bytes but Content-Length is {content_length}"
        )
    return first, length, total


async def put_chunk(request: web.Request) -> web.Response:
    service = _uploads(request)
    upload_id = request.match_info["upload_id"]
    content_range = parse_content_range(request.headers.get("Content-Range"))
    upload = await service.get(principal(request), upload_id)
    offset, length, total = check_content_range(content_range, request.content_length)
    if total is not None and upload.total_size is None:
        await service.declare_length(principal(request), upload_id, total)
    elif total is not None and total != upload.total_size:
        raise SizeMismatch(f"Content-Range total {total} differs from the upload size {upload.total_size}")
    upload = await service.append(principal(request), upload_id, offset, request.content.iter_any(), length)
    return json_response(
        {"offset": upload.offset, "expires_at": upload.expires_at.isoformat(), "status": upload.status},
        headers={"Upload-Offset": str(upload.offset)},
    )


async def complete_upload(request: web.Request) -> web.Response:
    body = await model_body(request, schemas.CompleteUpload)
    requested = None
    if body.parts is not None:
        requested = [(part.part_number, part.md5 or part.etag) for part in body.parts]
    expected = _expected(body.md5, body.sha256)
    upload_id = request.match_info["upload_id"]
    record = await _uploads(request).complete(principal(request), upload_id, requested, expected)
    upload = await _uploads(request).get(principal(request), upload_id)
    note(request, bucket=upload.bucket, key=upload.key, version_id=record.version_id, size=record.size)
    return json_response(
        {"upload": upload_json(upload), "object": object_json(upload.bucket, record)},
        headers={"x-version-id": record.version_id},
    )


async def abort_upload(request: web.Request) -> web.Response:
    upload = await _uploads(request).abort(principal(request), request.match_info["upload_id"])
    note(request, bucket=upload.bucket, key=upload.key)
    return json_response(upload_json(upload))


async def upload_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``upload`` event per change, the last one in a final state."""
    service = _uploads(request)
    upload_id = request.match_info["upload_id"]
    upload = await service.get(principal(request), upload_id)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await begin(request, response)  # a later failure aborts, never answers twice
    last: dict[str, Any] | None = None
    quiet = 0
    while True:
        state = upload_json(upload, service.inflight(upload_id))
        state.pop("parts")
        if state != last:
            await response.write(f"event: upload\ndata: {json.dumps(state)}\n\n".encode())
            last, quiet = state, 0
        elif (quiet := quiet + 1) % KEEPALIVE_TICKS == 0:
            # A comment line keeps proxies from timing out an idle stream.
            await response.write(b": keep-alive\n\n")
        if upload.status in FINAL_STATES:
            break
        if request.transport is None or request.transport.is_closing():
            return response  # the client went away: stop watching
        await service.wait_change(upload_id, timeout=1.0)
        upload = await service.get(principal(request), upload_id)
    await response.write_eof()
    return response


#: Seconds (polls) of silence after which the event stream sends a keep-alive comment.
KEEPALIVE_TICKS = 15

UPLOAD = API + "/{upload_id}"
ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        API,
        create_upload,
        "Start an upload session",
        "uploads",
        action="upload.create",
        body=schemas.CreateUpload,
        answer=schemas.UploadOut,
        status=201,
        errors=(409, 413),
    ),
    Route(
        "GET",
        API,
        list_uploads,
        "List open upload sessions (?bucket=)",
        "uploads",
        action="upload.list",
        answer=schemas.UploadList,
        query=(("bucket", schemas.BUCKET_SCHEMA),),
    ),
    Route(
        "GET",
        UPLOAD,
        get_upload,
        "Status, progress, parts and expiry of an upload",
        "uploads",
        action="upload.read",
        answer=schemas.UploadOut,
    ),
    Route(
        "PUT",
        UPLOAD,
        put_chunk,
        "Append a chunk at Content-Range: bytes a-b/total (a <= b < total, b - a + 1 bytes sent;"
        " otherwise 400 invalid_content_range; another total than the upload's: 409 size_mismatch)",
        "uploads",
        action="upload.append",
        headers=(("Content-Range", {"type": "string", "pattern": CONTENT_RANGE_PATTERN}),),
        raw_body="application/octet-stream",
        body_min_bytes=1,
        answer=schemas.ChunkOut,
        errors=(409, 410, 413, 507),
    ),
    Route(
        "DELETE",
        UPLOAD,
        abort_upload,
        "Abort an upload and free its shares",
        "uploads",
        action="upload.abort",
        answer=schemas.UploadOut,
        errors=(409, 410),
    ),
    Route(
        "PUT",
        UPLOAD + "/parts/{number}",
        put_part,
        "Send part n (1..10000), any order",
        "uploads",
        action="upload.part",
        raw_body="application/octet-stream",
        answer=schemas.PartOut,
        errors=(409, 410, 413, 507),
    ),
    Route(
        "POST",
        UPLOAD + "/complete",
        complete_upload,
        "Assemble the object from the parts (listed in ascending order without repeats, else 400"
        " invalid_part_order; parts missing, differing or not adding up to the size: 409)",
        "uploads",
        action="upload.complete",
        body=schemas.CompleteUpload,
        answer=schemas.Completed,
        errors=(409, 410),
    ),
    Route(
        "GET",
        UPLOAD + "/events",
        upload_events,
        "Server-sent events of status and progress",
        "uploads",
        action="upload.events",
        answer=schemas.UploadState,
        produces="text/event-stream",
        events="upload",
        success="'upload' events, each the upload's state (UploadState) as JSON, until a final"
        " state; ': keep-alive' comments in between",
    ),
)
