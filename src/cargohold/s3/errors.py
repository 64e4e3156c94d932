"""THE S3 error table: every domain error's S3 code and status, and the XML error body.

One table, looked up along the error's class hierarchy (the most specific
row wins), so a new domain error gets a sensible S3 answer from its base
class until it gets its own row. The native API keeps its own statuses
(``problems.py``); S3 clients key their retries and messages on these codes,
so they follow what S3 answers (e.g. an oversized body is ``EntityTooLarge``
400, not 413; a busy gateway is ``SlowDown`` 503, which every S3 client
retries with backoff).

Errors are answered before the first byte of a response; after it the
connection is aborted instead (``aborts.py``).
"""

from __future__ import annotations

from typing import Any

from cargohold import errors as e
from cargohold.domain import uploads as sm
from cargohold.domain.conditions import NotModified, PreconditionFailed
from cargohold.domain.versions import NoSuchVersion
from cargohold.s3 import xml
from cargohold.service.uploads import NoSuchUpload

#: domain error -> (S3 Code, HTTP status)
S3_ERRORS: dict[type[e.CargoholdError], tuple[str, int]] = {
    e.CargoholdError: ("InternalError", 500),
    # -- 400 --
    e.BadRequest: ("InvalidRequest", 400),
    e.InvalidBucketName: ("InvalidBucketName", 400),
    e.InvalidKey: ("InvalidArgument", 400),
    e.InvalidLayout: ("InvalidArgument", 400),
    e.InvalidArgument: ("InvalidArgument", 400),
    e.InvalidShareId: ("InvalidArgument", 400),
    e.BadDigest: ("BadDigest", 400),
    e.InvalidDigestHeader: ("InvalidDigest", 400),
    e.IncompleteBody: ("IncompleteBody", 400),
    e.PayloadTooLarge: ("EntityTooLarge", 400),
    e.AuthorizationHeaderMalformed: ("AuthorizationHeaderMalformed", 400),
    e.AuthorizationQueryParametersError: ("AuthorizationQueryParametersError", 400),
    e.UnsupportedSignature: ("InvalidRequest", 400),
    e.MissingSecurityHeader: ("MissingSecurityHeader", 400),
    e.ContentSha256Mismatch: ("XAmzContentSHA256Mismatch", 400),
    e.MalformedChunkedBody: ("IncompleteBody", 400),
    e.MalformedXML: ("MalformedXML", 400),
    # -- 403 --
    e.Unauthorized: ("AccessDenied", 403),
    e.Forbidden: ("AccessDenied", 403),
    e.AccessDenied: ("AccessDenied", 403),
    e.QuotaExceeded: ("QuotaExceeded", 403),
    e.InvalidAccessKeyId: ("InvalidAccessKeyId", 403),
    e.SignatureDoesNotMatch: ("SignatureDoesNotMatch", 403),
    e.RequestTimeTooSkewed: ("RequestTimeTooSkewed", 403),
    e.RequestExpired: ("AccessDenied", 403),
    e.AnonymousRequest: ("AccessDenied", 403),
    # -- 404 --
    e.NotFound: ("NotFound", 404),
    e.NoSuchBucket: ("NoSuchBucket", 404),
    e.NoSuchKey: ("NoSuchKey", 404),
    # -- other 4xx --
    e.S3MethodNotAllowed: ("MethodNotAllowed", 405),
    e.Conflict: ("OperationAborted", 409),
    e.BucketAlreadyExists: ("BucketAlreadyExists", 409),
    e.BucketNotEmpty: ("BucketNotEmpty", 409),
    e.MissingContentLength: ("MissingContentLength", 411),
    e.RangeNotSatisfiable: ("InvalidRange", 416),
    # -- busy and broken --
    e.TooManyAttempts: ("SlowDown", 503),
    e.SlowDown: ("SlowDown", 503),
    e.GatewayBusy: ("SlowDown", 503),
    e.S3NotImplemented: ("NotImplemented", 501),
    e.InsufficientNodes: ("ServiceUnavailable", 503),
    e.ReadUnavailable: ("ServiceUnavailable", 503),
    e.NodeUnavailable: ("ServiceUnavailable", 503),
    e.InsufficientStorage: ("ServiceUnavailable", 503),
    e.ShareCorrupt: ("InternalError", 500),
    # -- object and upload operations --
    e.InvalidRequest: ("InvalidRequest", 400),
    e.InvalidLocationConstraint: ("InvalidLocationConstraint", 400),
    e.BucketAlreadyOwnedByYou: ("BucketAlreadyOwnedByYou", 409),
    e.InvalidPartNumber: ("InvalidPartNumber", 416),
    NoSuchVersion: ("NoSuchVersion", 404),
    PreconditionFailed: ("PreconditionFailed", 412),
    NotModified: ("NotModified", 304),
    NoSuchUpload: ("NoSuchUpload", 404),
    sm.UploadNotOpen: ("NoSuchUpload", 404),  # completed or aborted: S3 forgets it
    sm.UploadExpired: ("NoSuchUpload", 404),
    sm.InvalidPart: ("InvalidPart", 400),
    sm.MissingParts: ("InvalidPart", 400),  # a listed part that was never uploaded
    sm.PartMismatch: ("InvalidPart", 400),  # a listed part whose ETag is not the stored one
    sm.DigestMismatch: ("BadDigest", 400),
    sm.InvalidPartOrder: ("InvalidPartOrder", 400),
    sm.EntityTooSmall: ("EntityTooSmall", 400),
    sm.PartTooLarge: ("EntityTooLarge", 400),
}

#: aiohttp's own refusals (no domain error behind them), by status.
HTTP_ERRORS: dict[int, str] = {
    400: "InvalidRequest",
    404: "NoSuchKey",
    405: "MethodNotAllowed",
    411: "MissingContentLength",
    413: "EntityTooLarge",
    414: "InvalidURI",
    431: "RequestHeaderSectionTooLarge",
}

#: Error details S3 clients know, as the XML elements S3 names them.
DETAIL_ELEMENTS: dict[str, str] = {
    "access_key_id": "AWSAccessKeyId",
    "string_to_sign": "StringToSign",
    "canonical_request": "CanonicalRequest",
    "request_time": "RequestTime",
    "server_time": "ServerTime",
    "max_allowed_skew_ms": "MaxAllowedSkewMilliseconds",
    "expires": "Expires",
    "bucket": "BucketName",
    "key": "Key",
    "version_id": "VersionId",
    "header": "HeaderName",
    "upload_id": "UploadId",
    "part_number": "PartNumber",
    "etag": "ETag",
}


def s3_code(error: e.CargoholdError) -> tuple[str, int]:
    """The S3 code and status of ``error``: its own row, or its nearest base class's."""
    for cls in type(error).__mro__:
        row = S3_ERRORS.get(cls)
        if row is not None:
            return row
    return S3_ERRORS[e.CargoholdError]


def http_code(status: int) -> str:
    return HTTP_ERRORS.get(status, "InternalError" if status >= 500 else "InvalidRequest")


def error_body(code: str, message: str, resource: str, request_id: str, extra: dict[str, Any]) -> bytes:
    """``<Error><Code/><Message/><Resource/><RequestId/>...</Error>``, details S3 also gives included."""
    document = xml.root("Error", namespace=False)
    xml.children(document, [("Code", code), ("Message", message)])
    for name, tag in DETAIL_ELEMENTS.items():
        value = extra.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            xml.child(document, tag, value)
    xml.children(document, [("Resource", resource), ("RequestId", request_id)])
    return xml.render(document)
