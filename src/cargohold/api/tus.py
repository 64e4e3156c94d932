"""tus 1.0.0 resumable uploads at ``/tus/``, on top of :class:`UploadService`.

Handlers translate tus headers into service calls (``protocol="tus"``): the
offset rule, expiry and completion live in the service's state machine, as
they do for the native upload API. Supported extensions: creation,
creation-with-upload, creation-defer-length, termination, expiration,
checksum and concatenation.

Errors are domain errors until the edge: :func:`tus_middleware` turns them
into problem+json responses, with the status of the one table ``_STATUS``
(tus's own statuses, such as 460 for a checksum mismatch), checks ``Tus-Resumable``
and stamps it on every answer.
It sits outside the auth middleware so a 401 speaks tus too.

Consecutive PATCHes grow one part (``cargohold.service.appends``), which
stores whole blocks: the Upload-Offset a PATCH answers may end before its
last byte, at the last whole block, and the client sends the rest again (tus
clients continue from the offset the server answers). A PATCH whose
connection breaks keeps every whole block that arrived (the service's
``keep_partial``), so a client resumes from a HEAD without resending them,
unless the PATCH carried an ``Upload-Checksum``: a cut-off chunk cannot match
its checksum, so then nothing of it is kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from aiohttp import StreamReader, web

from cargohold.api.audit import note
from cargohold.api.auth import effective_method, principal
from cargohold.api.context import SERVICES
from cargohold.api.inputs import content_type, int_header
from cargohold.api.native import Route
from cargohold.concurrency import run_cpu
from cargohold.domain import uploads as sm
from cargohold.domain.uploads import Upload
from cargohold.errors import (
    BadDigest,
    BadRequest,
    CargoholdError,
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from cargohold.problems import Handler, from_error, http_error_code, problem
from cargohold.service.uploads import EXPIRED, NoSuchUpload, UploadService

TUS = "/tus/"
VERSION = "1.0.0"
EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum,concatenation"
)
OFFSET_STREAM = "application/offset+octet-stream"
_HASHES: dict[str, Callable[[], Any]] = {
    "md5": lambda: hashlib.md5(usedforsecurity=False),
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "sha256": hashlib.sha256,
}
_UPLOAD_PATH = re.compile(r"/tus/([0-9a-f]{32})/?")


class UnsupportedVersion(CargoholdError):
    code = "tus_unsupported_version"
    status = 412
    title = "Unsupported tus version"


class UnsupportedMediaType(CargoholdError):
    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


class MethodNotAllowed(CargoholdError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class InvalidUploadOffset(InvalidArgument):
    """A PATCH without Upload-Offset, or with one that is not a whole number (tus 1.0.0: 400)."""

    code = "invalid_upload_offset"
    title = "Missing or malformed Upload-Offset"


class ChecksumMismatch(BadDigest):
    code = "checksum_mismatch"
    status = 460
    title = "Checksum Mismatch"


# The one place tus statuses are decided, looked up along the error's class
# hierarchy (most specific first); errors not listed keep their own status.
_STATUS: dict[type[CargoholdError], int] = {
    UnsupportedVersion: 412,
    UnsupportedMediaType: 415,
    MethodNotAllowed: 405,
    ChecksumMismatch: 460,
    sm.OffsetMismatch: 409,
    # A length that disagrees with the declared one, or a final upload of unfinished partial
    # uploads, is a bad request to tus clients (as tusd answers), which retry a 409 as an offset
    # conflict.
    sm.SizeMismatch: 400,
    sm.MissingParts: 400,
    sm.UploadExpired: 410,
    sm.UploadNotOpen: 409,
    sm.PartTooLarge: 413,
    PayloadTooLarge: 413,
    NotFound: 404,
    Unauthorized: 401,
    Forbidden: 403,
    Conflict: 409,
    BadRequest: 400,
}
_REASONS = {460: "Checksum Mismatch"}


def tus_status(error: CargoholdError) -> int:
    for cls in type(error).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return error.status


def _error_response(error: CargoholdError) -> web.Response:
    status = tus_status(error)
    reason = _REASONS.get(status) or HTTPStatus(status).phrase
    # problem+json like every other error of the gateway: tus clients act on the status and the
    # Upload-* headers and show the body as text, and a stable ``code`` tells machines the cause.
    response = from_error(error)
    response.set_status(status, reason)
    response.text = json.dumps({**json.loads(response.text or "{}"), "status": status})
    if status == 412:
        response.headers["Tus-Version"] = VERSION
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="cargohold"'
    if "allow" in error.extra:
        response.headers["Allow"] = error.extra["allow"]
    return response


def _is_tus(path: str) -> bool:
    return path == TUS.rstrip("/") or path.startswith(TUS)


@web.middleware
async def tus_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_tus(request.path):
        return await handler(request)
    try:
        if effective_method(request) != "OPTIONS" and request.headers.get("Tus-Resumable") != VERSION:
            raise UnsupportedVersion(f"this server speaks tus {VERSION}; send Tus-Resumable: {VERSION}")
        response = await handler(request)
    except CargoholdError as error:
        response = _error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem(exc.status, http_error_code(exc.status), exc.reason, exc.reason)
    response.headers["Tus-Resumable"] = VERSION
    return response


# -- header parsing -------------------------------------------------------------


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata: key base64,key2 base64,flag`` -> {key: decoded value}."""
    found: dict[str, str] = {}
    for item in (header or "").split(","):
        if not item.strip():
            continue
        name, _, encoded = item.strip().partition(" ")
        if not name or name in found:
            raise InvalidArgument(f"Upload-Metadata has an empty or repeated key {name!r}")
        try:
            found[name] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise InvalidArgument(f"Upload-Metadata value of {name!r} is not base64 of UTF-8 text") from exc
    return found


def encode_metadata(metadata: dict[str, str]) -> str:
    return ",".join(
        f"{name} {base64.b64encode(value.encode()).decode()}" if value else name
        for name, value in metadata.items()
    )


def _checksum(header: str | None) -> tuple[str, bytes] | None:
    """``Upload-Checksum: sha1 <base64>`` -> ("sha1", digest bytes)."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm.lower() not in _HASHES:
        raise InvalidArgument(f"checksum algorithm {algorithm!r} is not one of {', '.join(_HASHES)}")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument("Upload-Checksum must be '<algorithm> <base64 digest>'") from exc
    return algorithm.lower(), digest


def _partial_ids(header: str) -> list[str]:
    """``final;/tus/a http://host/tus/b`` -> ["a", "b"] (absolute or root-relative URLs)."""
    ids = []
    for url in header.removeprefix("final;").split():
        match = _UPLOAD_PATH.fullmatch(urlsplit(url).path)
        if match is None:
            raise InvalidArgument(f"{url!r} in Upload-Concat is not a /tus/<id> upload URL")
        ids.append(match.group(1))
    if not ids:
        raise InvalidArgument("Upload-Concat: final; needs the URLs of the partial uploads")
    return ids


def _target(
    metadata: dict[str, str], partial: bool, bucket: str | None = None, upload_id: str = ""
) -> tuple[str, str, str]:
    """Bucket, key and content type of a new upload.

    On ``/tus/{bucket}/`` the path names the bucket, so a stock client (Uppy,
    tus-js-client) needs only the endpoint: the key is ``key``, else the
    ``relativePath`` Uppy sends for a file of a dropped folder, else
    ``filename`` or ``name``, and with none of them the upload's own id. On
    ``/tus/`` the metadata names the bucket and the key or file name.
    """
    bucket = bucket or metadata.get("bucket")
    if not bucket:
        raise InvalidArgument("Upload-Metadata must name the bucket: 'bucket <base64 name>'")
    names = ("key", "relativePath", "filename", "name") if upload_id else ("key", "filename")
    key = next((metadata[n] for n in names if metadata.get(n)), "") or ("tus-partial" if partial else "")
    key = key or upload_id
    if not key:
        raise InvalidArgument("Upload-Metadata must carry 'key' or 'filename' (base64) for the object key")
    return bucket, key, content_type(metadata.get("content_type") or metadata.get("filetype"))


# -- responses ------------------------------------------------------------------


def _offset(upload: Upload) -> int:
    # A completed upload has handed its parts to the object: its offset is its length.
    if upload.status == sm.UPLOADED and upload.total_size is not None:
        return upload.total_size
    return upload.offset


def _state_headers(upload: Upload) -> dict[str, str]:
    headers = {"Upload-Offset": str(_offset(upload))}
    if upload.status in sm.OPEN_STATES:
        headers["Upload-Expires"] = format_datetime(upload.expires_at.astimezone(UTC), usegmt=True)
    return headers


def _live(upload: Upload) -> Upload:
    """The upload if it can still be read or written; terminated -> 404, expired -> 410."""
    if upload.status == sm.DELETED:
        raise NoSuchUpload(f"upload {upload.id} was terminated", upload_id=upload.id)
    if upload.status == sm.FAILED:
        if upload.error == EXPIRED:
            raise sm.UploadExpired(f"upload {upload.id} expired")
        raise sm.UploadNotOpen(f"upload {upload.id} failed: {upload.error}")
    if upload.status in sm.OPEN_STATES and upload.expires_at <= datetime.now(UTC):
        raise sm.UploadExpired(f"upload {upload.id} expired at {upload.expires_at.isoformat()}")
    return upload


def _uploads(request: web.Request) -> UploadService:
    return request.app[SERVICES].uploads


# -- receiving bytes ------------------------------------------------------------


async def _verified(body: AsyncIterator[bytes], algorithm: str, digest: bytes) -> AsyncIterator[bytes]:
    """Pass the body through; at its end, raise ChecksumMismatch so the chunk is not committed."""
    hasher = _HASHES[algorithm]()
    async for chunk in body:
        await run_cpu(hasher.update, chunk)
        yield chunk
    if hasher.digest() != digest:
        raise ChecksumMismatch(f"the chunk's {algorithm} differs from Upload-Checksum; it was not stored")


async def _arrived(stream: StreamReader) -> AsyncIterator[bytes]:
    """The body as it arrives and, if the connection drops, every byte that did arrive.

    aiohttp marks the stream failed the moment the connection is lost, and its
    readers then raise at once, dropping up to a buffer (~128 KiB) of bytes
    that were received but not yet read. Those are yielded here before the
    error is raised again, for the service's ``keep_partial`` to keep.
    """
    try:
        async for chunk in stream.iter_any():
            yield chunk
    except Exception:
        if stream.exception() is None:
            raise
        # No public reader returns buffered bytes after a failure; _read_nowait skips the check.
        rest = stream._read_nowait(-1)
        if rest:
            yield rest
        raise


async def _receive(request: web.Request, upload: Upload, offset: int) -> Upload:
    """Append the request body at ``offset``; complete the upload once it reaches its length."""
    service = _uploads(request)
    checksum = _checksum(request.headers.get("Upload-Checksum"))
    # A chunk cut short cannot match its checksum: with one, nothing of a broken chunk is kept.
    body = _arrived(request.content) if checksum is None else _verified(request.content.iter_any(), *checksum)
    upload = await service.append(
        principal(request),
        upload.id,
        offset,
        body,
        request.content_length,
        keep_partial=checksum is None,
        whole_blocks=True,
    )
    return await _complete_if_full(request, upload)


async def _complete_if_full(request: web.Request, upload: Upload) -> Upload:
    """Make the object visible once the offset reaches the length (partials wait for their final)."""
    full = upload.total_size is not None and upload.offset == upload.total_size
    if not full or upload.concat == "partial" or upload.status not in sm.OPEN_STATES:
        return upload
    await _uploads(request).complete(principal(request), upload.id)
    return replace(upload, status=sm.UPLOADED)


def _upload_offset(request: web.Request) -> int:
    try:
        offset = int_header(request, "Upload-Offset")
    except InvalidArgument:
        offset = None
    if offset is None:
        raise InvalidUploadOffset("PATCH needs Upload-Offset: the offset, a whole number from 0")
    return offset


def _has_body(request: web.Request) -> bool:
    if request.content_type == OFFSET_STREAM:
        return True
    if request.content_length:
        raise UnsupportedMediaType(f"a body with an upload needs Content-Type: {OFFSET_STREAM}")
    return False


# -- handlers -----------------------------------------------------------------


async def options(request: web.Request) -> web.Response:
    return web.Response(
        status=204,
        headers={
            "Tus-Version": VERSION,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(_uploads(request).max_size),
            "Tus-Checksum-Algorithm": ",".join(_HASHES),
        },
    )


async def create(request: web.Request) -> web.Response:
    """POST /tus/: a new upload (creation, creation-with-upload, defer-length, concatenation)."""
    service = _uploads(request)
    metadata = parse_metadata(request.headers.get("Upload-Metadata"))
    concat = request.headers.get("Upload-Concat")
    if concat is not None and concat.startswith("final;"):
        return await _create_final(request, metadata, _partial_ids(concat))
    if concat not in (None, "partial"):
        raise InvalidArgument("Upload-Concat must be 'partial' or 'final;<upload URLs>'")
    length = int_header(request, "Upload-Length")
    deferred = request.headers.get("Upload-Defer-Length")
    if (length is None) == (deferred is None) or deferred not in (None, "1"):
        raise InvalidArgument("send either Upload-Length or Upload-Defer-Length: 1")
    if length is not None and length > service.max_size:
        raise PayloadTooLarge(f"Upload-Length exceeds Tus-Max-Size {service.max_size}")
    in_path = request.match_info.get("bucket")
    upload_id = uuid.uuid4().hex if in_path else ""
    bucket, key, media_type = _target(metadata, concat == "partial", in_path, upload_id)
    upload = await service.create(
        principal(request),
        bucket,
        key,
        total_size=length,
        content_type=media_type,
        protocol="tus",
        metadata=metadata,
        concat=concat,
        upload_id=upload_id or None,
    )
    note(request, bucket=upload.bucket, key=upload.key, size=length)
    if _has_body(request):
        upload = await _receive(request, upload, 0)
    else:
        upload = await _complete_if_full(request, upload)  # an empty file is done at creation
    headers = {"Location": TUS + upload.id, **_state_headers(upload)}
    return web.Response(status=201, headers=headers)


async def _create_final(request: web.Request, metadata: dict[str, str], ids: list[str]) -> web.Response:
    """Upload-Concat: final: checked up front, so a refused final upload leaves nothing behind."""
    service = _uploads(request)
    in_path = request.match_info.get("bucket")
    upload_id = uuid.uuid4().hex if in_path else ""
    bucket, key, media_type = _target(metadata, False, in_path, upload_id)
    size = 0
    for partial_id in ids:
        partial = _live(await service.get(principal(request), partial_id))
        if partial.concat != "partial" or partial.status not in sm.OPEN_STATES:
            raise InvalidArgument(f"upload {partial_id} is not an open partial upload")
        if partial.total_size is None or partial.offset != partial.total_size:
            raise sm.MissingParts(f"partial upload {partial_id} is not finished")
        if partial.bucket != bucket:
            raise InvalidArgument(f"partial upload {partial_id} belongs to bucket {partial.bucket}")
        size += partial.total_size
    final = await service.create(
        principal(request),
        bucket,
        key,
        total_size=size,
        content_type=media_type,
        protocol="tus",
        metadata=metadata,
        concat="final",
        upload_id=upload_id or None,
    )
    await service.concatenate(principal(request), final, ids)
    final = replace(final, status=sm.UPLOADED)
    return web.Response(status=201, headers={"Location": TUS + final.id, **_state_headers(final)})


async def head(request: web.Request) -> web.Response:
    upload = _live(await _uploads(request).get(principal(request), request.match_info["upload_id"]))
    headers = {"Cache-Control": "no-store", **_state_headers(upload)}
    if upload.total_size is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(upload.total_size)
    if upload.metadata:
        headers["Upload-Metadata"] = encode_metadata(upload.metadata)
    if upload.concat:
        headers["Upload-Concat"] = upload.concat
    return web.Response(status=200, headers=headers)


async def patch(request: web.Request) -> web.Response:
    service = _uploads(request)
    upload = _live(await service.get(principal(request), request.match_info["upload_id"]))
    if upload.concat == "final":
        raise Forbidden("a final upload is assembled from its partial uploads and takes no PATCH")
    if request.content_type != OFFSET_STREAM:
        raise UnsupportedMediaType(f"PATCH needs Content-Type: {OFFSET_STREAM}")
    offset = _upload_offset(request)
    if offset != _offset(upload):
        raise sm.OffsetMismatch(f"Upload-Offset is {offset}, the upload is at {_offset(upload)}")
    length = int_header(request, "Upload-Length")
    if length is not None and length != upload.total_size:
        if upload.total_size is not None:
            raise sm.SizeMismatch(f"the upload's length is already {upload.total_size}")
        if length > service.max_size:
            raise PayloadTooLarge(f"Upload-Length exceeds Tus-Max-Size {service.max_size}")
        upload = await service.declare_length(principal(request), upload.id, length)
    upload = await _receive(request, upload, offset)
    return web.Response(status=204, headers=_state_headers(upload))


async def terminate(request: web.Request) -> web.Response:
    service = _uploads(request)
    upload = _live(await service.get(principal(request), request.match_info["upload_id"]))
    await service.abort(principal(request), upload.id)
    return web.Response(status=204)


_ON_COLLECTION: dict[str, Handler] = {"POST": create, "OPTIONS": options}
_ON_UPLOAD: dict[str, Handler] = {"HEAD": head, "PATCH": patch, "DELETE": terminate, "OPTIONS": options}


def _dispatch(table: dict[str, Handler]) -> Handler:
    """One route per path for every method, so X-HTTP-Method-Override picks the handler."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        method = effective_method(request)
        handler = table.get(method)
        if handler is None:
            raise MethodNotAllowed(f"{method} is not allowed here", allow=", ".join(table))
        return await handler(request)

    return dispatch


tus_collection = _dispatch(_ON_COLLECTION)
tus_upload = _dispatch(_ON_UPLOAD)

_CREATE = "tus 1.0.0: create an upload (POST), capabilities (OPTIONS)"
_UPLOAD = "tus 1.0.0: offset (HEAD), append (PATCH), terminate (DELETE) an upload"
ROUTES: tuple[Route, ...] = (
    Route("*", "/tus", tus_collection, _CREATE, "tus", ("POST", "OPTIONS"), action="POST=upload.create"),
    Route("*", TUS, tus_collection, _CREATE, "tus", ("POST", "OPTIONS"), action="POST=upload.create"),
    Route(
        "*",
        TUS + "{bucket}/",
        tus_collection,
        _CREATE + " in this bucket: the key is the metadata's key, relativePath or filename, else the id",
        "tus",
        ("POST", "OPTIONS"),
        action="POST=upload.create",
    ),
    Route(
        "*",
        TUS + "{upload_id}",
        tus_upload,
        _UPLOAD,
        "tus",
        ("HEAD", "PATCH", "DELETE", "OPTIONS"),
        action="HEAD=upload.read,PATCH=upload.append,DELETE=upload.abort",
    ),
)
