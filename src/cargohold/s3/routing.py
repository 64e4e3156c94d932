"""Which S3 operation a request is, and the one table that names its handler.

S3 is served at the root path: ``/`` (the service), ``/<bucket>`` and
``/<bucket>/<key>`` (path-style), or with ``s3_domain`` set, ``Host:
<bucket>.<s3_domain>`` and ``/<key>`` (virtual-hosted style). The router
sends every path whose first segment is not one of the gateway's own
(``RESERVED_PREFIXES``: ``/api``, ``/tus``, ``/s``, ``/docs``, ...) to
:func:`s3_entry`; a virtual-hosted key that starts with a reserved segment
is therefore not reachable (use path-style for such keys).

An operation is decided from the method, whether a bucket and a key are
named, and the sub-resource in the query (``?versioning``, ``?uploads``,
``?uploadId=``, ...): :data:`OPERATIONS`. :data:`HANDLERS` maps each name to
its handler; an operation without one answers ``501 NotImplemented``, and a
method no operation takes ``405 MethodNotAllowed``. :data:`ACTIONS` names
the history action of each, the same ones the native API records.

:func:`s3_middleware` renders every error of an S3 request as S3 XML from
the one table in ``s3/errors.py`` (before the first byte; after it the
connection is aborted, ``aborts.py``), and :func:`s3_request_id` puts
``x-amz-request-id`` on every S3 response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from cargohold import logs
from cargohold.aborts import abort, loggable_path, started
from cargohold.api.audit import note
from cargohold.api.native import Route
from cargohold.domain.names import RESERVED_PREFIXES
from cargohold.errors import CargoholdError, S3MethodNotAllowed, S3NotImplemented
from cargohold.problems import Handler
from cargohold.s3 import batch, buckets, listing, multipart, objects, service_ops
from cargohold.s3.errors import error_body, http_code, s3_code
from cargohold.s3.surface import entry_point, host_bucket, is_s3
from cargohold.s3.xml import CONTENT_TYPE

log = logging.getLogger(__name__)

SERVICE, BUCKET, OBJECT = "service", "bucket", "object"

#: Query parameters that select a sub-resource, in the order they are looked for.
SUBRESOURCES = ("uploads", "uploadId", "versioning", "versions", "location", "delete")
#: Sub-resources S3 has and this gateway does not: any request naming one is NotImplemented.
UNSUPPORTED = frozenset(
    {
        "accelerate", "acl", "analytics", "attributes", "cors", "encryption", "intelligent-tiering",
        "inventory", "legal-hold", "lifecycle", "logging", "metrics", "notification", "object-lock",
        "ownershipControls", "policy", "policyStatus", "publicAccessBlock", "replication",
        "requestPayment", "restore", "retention", "select", "tagging", "torrent", "website",
    }
)  # fmt: skip

#: (method, level, sub-resource) -> operation.
OPERATIONS: dict[tuple[str, str, str], str] = {
    ("GET", SERVICE, ""): "ListBuckets",
    ("PUT", BUCKET, ""): "CreateBucket",
    ("HEAD", BUCKET, ""): "HeadBucket",
    ("DELETE", BUCKET, ""): "DeleteBucket",
    ("GET", BUCKET, ""): "ListObjects",  # ListObjectsV2 with list-type=2
    ("GET", BUCKET, "location"): "GetBucketLocation",
    ("GET", BUCKET, "versioning"): "GetBucketVersioning",
    ("PUT", BUCKET, "versioning"): "PutBucketVersioning",
    ("GET", BUCKET, "versions"): "ListObjectVersions",
    ("GET", BUCKET, "uploads"): "ListMultipartUploads",
    ("POST", BUCKET, "delete"): "DeleteObjects",
    ("PUT", OBJECT, ""): "PutObject",  # CopyObject with x-amz-copy-source
    ("GET", OBJECT, ""): "GetObject",
    ("HEAD", OBJECT, ""): "HeadObject",
    ("DELETE", OBJECT, ""): "DeleteObject",
    ("POST", OBJECT, "uploads"): "CreateMultipartUpload",
    ("PUT", OBJECT, "uploadId"): "UploadPart",  # UploadPartCopy with x-amz-copy-source
    ("POST", OBJECT, "uploadId"): "CompleteMultipartUpload",
    ("DELETE", OBJECT, "uploadId"): "AbortMultipartUpload",
    ("GET", OBJECT, "uploadId"): "ListParts",
}

#: operation -> handler. Operations missing here answer 501 NotImplemented.
HANDLERS: dict[str, Handler] = {
    "ListBuckets": service_ops.list_buckets,
    "CreateBucket": buckets.create_bucket,
    "HeadBucket": buckets.head_bucket,
    "DeleteBucket": buckets.delete_bucket,
    "GetBucketLocation": buckets.get_location,
    "GetBucketVersioning": buckets.get_versioning,
    "PutBucketVersioning": buckets.put_versioning,
    "ListObjects": listing.list_objects,
    "ListObjectsV2": listing.list_objects,
    "ListObjectVersions": listing.list_versions,
    "PutObject": objects.put_object,
    "CopyObject": objects.copy_object,
    "GetObject": objects.get_object,
    "HeadObject": objects.get_object,
    "DeleteObject": objects.delete_object,
    "DeleteObjects": batch.delete_objects,
    "CreateMultipartUpload": multipart.create_upload,
    "UploadPart": multipart.upload_part,
    "UploadPartCopy": multipart.upload_part,
    "CompleteMultipartUpload": multipart.complete_upload,
    "AbortMultipartUpload": multipart.abort_upload,
    "ListParts": multipart.list_parts,
    "ListMultipartUploads": multipart.list_uploads,
}

#: operation -> history action (the native API's names for the same thing).
ACTIONS: dict[str, str] = {
    "ListBuckets": "bucket.list",
    "CreateBucket": "bucket.create",
    "HeadBucket": "bucket.read",
    "DeleteBucket": "bucket.delete",
    "GetBucketLocation": "bucket.read",
    "GetBucketVersioning": "bucket.versioning_status",
    "PutBucketVersioning": "bucket.versioning",
    "ListObjects": "object.list",
    "ListObjectsV2": "object.list",
    "ListObjectVersions": "object.list",
    "PutObject": "object.create",
    "CopyObject": "object.create",
    "GetObject": "object.read",
    "HeadObject": "object.stat",
    "DeleteObject": "object.delete",
    "DeleteObjects": "object.delete",
    "CreateMultipartUpload": "upload.create",
    "UploadPart": "upload.part",
    "UploadPartCopy": "upload.part",
    "CompleteMultipartUpload": "upload.complete",
    "AbortMultipartUpload": "upload.abort",
    "ListParts": "upload.read",
    "ListMultipartUploads": "upload.list",
}


@dataclass(frozen=True, slots=True)
class Target:
    """What an S3 request names: a bucket (None for the service) and a key (None for the bucket)."""

    bucket: str | None
    key: str | None

    @property
    def level(self) -> str:
        return SERVICE if self.bucket is None else BUCKET if self.key is None else OBJECT


def classify(method: str, target: Target, query: Mapping[str, str], headers: Mapping[str, str]) -> str:
    """The S3 operation of a request (pure). ``S3NotImplemented``/``S3MethodNotAllowed`` if none."""
    unsupported = sorted(UNSUPPORTED.intersection(query))
    if unsupported:
        raise S3NotImplemented(f"the ?{unsupported[0]} sub-resource is not implemented by this gateway")
    sub = next((name for name in SUBRESOURCES if name in query), "")
    operation = OPERATIONS.get((method, target.level, sub))
    if operation is None:
        raise S3MethodNotAllowed(f"{method} is not allowed on this resource", method=method)
    copy = "x-amz-copy-source" in headers
    if operation == "ListObjects" and query.get("list-type") == "2":
        return "ListObjectsV2"
    if operation == "PutObject" and copy:
        return "CopyObject"
    if operation == "UploadPart" and copy:
        return "UploadPartCopy"
    return operation


_TARGET = web.RequestKey("s3_target", Target)
_OPERATION = web.RequestKey("s3_operation", str)


def target(request: web.Request) -> Target:
    """The bucket and key of an S3 request, path-style or virtual-hosted."""
    found = request.get(_TARGET)
    if found is None:
        in_host = host_bucket(request)
        if in_host is not None:
            key = unquote(request.raw_path.partition("?")[0])[1:]
            found = Target(in_host, key or None)
        else:
            found = Target(request.match_info.get("bucket"), request.match_info.get("key") or None)
        request[_TARGET] = found
    return found


def operation(request: web.Request) -> str:
    """The S3 operation of this request (decided once)."""
    found = request.get(_OPERATION)
    if found is None:
        found = classify(request.method, target(request), request.query, request.headers)
        request[_OPERATION] = found
    return found


def history_action(request: web.Request) -> str:
    """The history action of an S3 request; "" (nothing recorded) for what is no operation."""
    if not is_s3(request):
        return ""
    try:
        return ACTIONS.get(operation(request), "")
    except CargoholdError:
        return ""


@entry_point
async def s3_entry(request: web.Request) -> web.StreamResponse:
    if not is_s3(request):  # an unsigned GET / is nobody's: the native 404
        raise web.HTTPNotFound()
    name = operation(request)
    where = target(request)
    note(request, bucket=where.bucket, key=where.key)
    handler = HANDLERS.get(name)
    if handler is None:
        raise S3NotImplemented(f"{name} is not implemented by this gateway", operation=name)
    return await handler(request)


# -- errors and request ids -----------------------------------------------------------


def error_response(
    request: web.Request, code: str, status: int, message: str, extra: dict[str, Any]
) -> web.Response:
    body = error_body(code, message, request.path, logs.request_id.get(), extra)
    response = web.Response(status=status, body=body, content_type=CONTENT_TYPE)
    retry_after = extra.get("retry_after")
    if status in (429, 503) and isinstance(retry_after, int):
        response.headers["Retry-After"] = str(retry_after)
    if extra.get("delete_marker") is True:  # the key's latest version is a delete marker
        response.headers["x-amz-delete-marker"] = "true"
        response.headers["x-amz-version-id"] = str(extra.get("version_id", ""))
    return response


@web.middleware
async def s3_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """S3 requests' errors as S3 XML; every other request passes through untouched."""
    if not is_s3(request):
        return await handler(request)
    try:
        return await handler(request)
    except (ConnectionError, asyncio.CancelledError, web.RequestPayloadError):
        raise  # the client went away: request_middleware says so in one line
    except Exception as error:
        response = started(request)
        if response is not None:
            abort(request, response, error)
            return response
        if isinstance(error, CargoholdError):
            code, status = s3_code(error)
            if status >= 500:
                log.warning("%s %s -> %s %s", request.method, loggable_path(request), code, error.detail)
            return error_response(request, code, status, error.detail, error.extra)
        if isinstance(error, web.HTTPException):
            if error.status < 400:
                raise
            return error_response(request, http_code(error.status), error.status, error.text or "", {})
        log.exception("%s %s failed", request.method, request.path)
        return error_response(
            request, "InternalError", 500, "We encountered an internal error. Please try again.", {}
        )


async def s3_request_id(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every S3 answer names its request id as S3 does."""
    if isinstance(request, web.Request) and is_s3(request):
        # A plain answer is sent after request_middleware left the request's context: it named
        # the id in X-Request-Id then.
        rid = response.headers.get(logs.REQUEST_ID_HEADER) or logs.request_id.get()
        response.headers["x-amz-request-id"] = rid


# -- routes ---------------------------------------------------------------------------

#: A first path segment that is not one of the gateway's own prefixes.
_BUCKET_SEGMENT = "(?!(?:" + "|".join(p.replace(".", "\\.") for p in RESERVED_PREFIXES) + ")(?:/|$))[^/]+"
_S3_SUMMARY = "S3-compatible API (AWS Signature Version 4; errors as S3 XML)"
_S3_METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
_S3_PATHS = (
    ("/", "S3: ListBuckets (GET / signed with SigV4)", ("GET",)),
    ("/{bucket:" + _BUCKET_SEGMENT + "}", _S3_SUMMARY + ": bucket operations", _S3_METHODS),
    ("/{bucket:" + _BUCKET_SEGMENT + "}/{key:(?s:.*)}", _S3_SUMMARY + ": object operations", _S3_METHODS),
)
ROUTES: tuple[Route, ...] = tuple(
    Route("*", path, s3_entry, summary, "s3", methods=methods, action_of=history_action)
    for path, summary, methods in _S3_PATHS
)
