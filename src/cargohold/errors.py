"""Domain errors.

Every failure a client can cause or see is one of these classes. Each carries a
stable machine ``code`` and an HTTP status; the API layer turns them into
problem+json responses in one place (``problems.py``, shared by gateway and node). Nothing in the core
imports an HTTP library, the status is plain data here.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CargoholdError(Exception):
    """Base of all errors that reach a client."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class BadRequest(CargoholdError):
    code = "bad_request"
    status = 400
    title = "Bad request"


class InvalidBucketName(BadRequest):
    code = "invalid_bucket_name"
    title = "Invalid bucket name"


class InvalidKey(BadRequest):
    code = "invalid_key"
    title = "Invalid object key"


class InvalidLayout(BadRequest):
    code = "invalid_layout"
    title = "Invalid layout"


class BadDigest(BadRequest):
    code = "bad_digest"
    title = "Checksum mismatch"


class InvalidDigestHeader(BadRequest):
    code = "invalid_digest_header"
    title = "Malformed checksum header"


class IncompleteBody(BadRequest):
    code = "incomplete_body"
    title = "Request body shorter than Content-Length"


class InvalidArgument(BadRequest):
    code = "invalid_argument"
    title = "Invalid argument"


class InvalidCursor(InvalidArgument):
    """A listing cursor that no page could have given: too long, or holding a control character."""

    code = "invalid_cursor"
    title = "Malformed listing cursor"


class InvalidEventType(InvalidArgument):
    """An event type filter that names no type or family of types."""

    code = "invalid_event_type"
    title = "Unknown event type"


class InvalidWebhookUrl(InvalidArgument):
    code = "invalid_webhook_url"
    title = "Invalid webhook URL"


class InvalidWebhookSecret(InvalidArgument):
    code = "invalid_webhook_secret"
    title = "Invalid webhook secret"


class WebhookTargetForbidden(CargoholdError):
    """A webhook URL whose host is a private, loopback or otherwise non-public address."""

    code = "webhook_target_forbidden"
    status = 422
    title = "Webhook target is not a public address"


class WebhookTargetUnresolvable(CargoholdError):
    code = "webhook_target_unresolvable"
    status = 422
    title = "Webhook target host does not resolve"


class Unauthorized(CargoholdError):
    code = "unauthorized"
    status = 401
    title = "Missing or malformed credentials"
    #: The credentials the client should offer instead (an HTTP ``WWW-Authenticate`` challenge).
    challenge: ClassVar[str] = 'Bearer realm="cargohold"'


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    title = "Unknown, expired or revoked credentials"


class Forbidden(CargoholdError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class AccessDenied(Forbidden):
    """The caller may see the resource but not do this to it (e.g. write with a read grant)."""

    code = "access_denied"
    title = "Access denied"


class CsrfRejected(Forbidden):
    """A state-changing request signed in by the web page's cookie without its CSRF token."""

    code = "csrf_rejected"
    title = "CSRF token missing or wrong"


class QuotaExceeded(Forbidden):
    code = "quota_exceeded"
    title = "Storage quota exceeded"


class TooManyAttempts(CargoholdError):
    """Too many failed attempts (sign-in, share link password): wait ``retry_after`` seconds."""

    code = "too_many_attempts"
    status = 429
    title = "Too many failed attempts"


class SlowDown(CargoholdError):
    """A user or client address has its fair share of the gateway in progress: retry after ``retry_after``."""

    code = "slow_down"
    status = 429
    title = "Slow down"


class GatewayBusy(CargoholdError):
    """The gateway as a whole is at its limit of requests or upload bytes: retry after ``retry_after``."""

    code = "gateway_busy"
    status = 503
    title = "Gateway busy"


class NotFound(CargoholdError):
    code = "not_found"
    status = 404
    title = "Not found"


class NoSuchBucket(NotFound):
    code = "no_such_bucket"
    title = "Bucket does not exist"


class NoSuchKey(NotFound):
    code = "no_such_key"
    title = "Object does not exist"


class NoSuchUser(NotFound):
    code = "no_such_user"
    title = "User does not exist"


class NoSuchGrant(NotFound):
    code = "no_such_grant"
    title = "The user holds no grant on this bucket"


class NoSuchWebhook(NotFound):
    code = "no_such_webhook"
    title = "Webhook does not exist"


class NoSuchNode(NotFound):
    code = "no_such_node"
    title = "Node does not exist"


class NoSuchZone(NotFound):
    code = "no_such_zone"
    title = "No such zone"


class Conflict(CargoholdError):
    code = "conflict"
    status = 409
    title = "Conflict"


class BucketAlreadyExists(Conflict):
    code = "bucket_exists"
    title = "Bucket already exists"


class BucketNotEmpty(Conflict):
    code = "bucket_not_empty"
    title = "Bucket is not empty"


class UserExists(Conflict):
    code = "user_exists"
    title = "A user with this name already exists"


class NodeAlreadyExists(Conflict):
    code = "node_exists"
    title = "A node with this URL is already registered"


class NodeNotEmpty(Conflict):
    code = "node_not_empty"
    title = "The node still holds shares"


class ZoneInUse(Conflict):
    code = "zone_in_use"
    title = "Zone still holds nodes"


class MovedAway(Conflict):
    """A share's placement changed while a repair or a move worked on it: start over."""

    code = "placement_changed"
    title = "The share was moved or repaired meanwhile"


class PayloadTooLarge(CargoholdError):
    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class RangeNotSatisfiable(CargoholdError):
    code = "range_not_satisfiable"
    status = 416
    title = "Range not satisfiable"


class InvalidRange(RangeNotSatisfiable):
    code = "invalid_range"
    title = "Malformed Range header"


class InsufficientNodes(CargoholdError):
    """Fewer writable nodes than a layout needs, or fewer acknowledgements than its quorum."""

    code = "insufficient_nodes"
    status = 503
    title = "Not enough storage nodes"


class WriteQuorumFailed(InsufficientNodes):
    code = "write_quorum_failed"
    title = "Too few storage nodes acknowledged the write"


class ReadUnavailable(CargoholdError):
    code = "read_unavailable"
    status = 503
    title = "Too few shares readable to rebuild the data"


class NodeUnavailable(CargoholdError):
    """A storage node could not be reached or answered with an error."""

    code = "node_unavailable"
    status = 503
    title = "Storage node unavailable"


class NodeUntrusted(NodeUnavailable):
    """A node's TLS certificate does not chain to the CA gateways are told to trust."""

    code = "node_untrusted"
    status = 502
    title = "Node certificate not trusted"


class NoSession(CargoholdError):
    """A sign-out by a caller signed in with an API key that names no session to end:
    the request is fine, the caller's state has nothing it could act on."""

    code = "no_session"
    status = 409
    title = "No session to end"


class NodeNotRegistered(CargoholdError):
    """A URL given to register a node names none that answers: the caller's mistake to fix,
    not an outage of the cluster (hence 422, never a 5xx)."""

    code = "node_unreachable"
    status = 422
    title = "Node did not answer"


class NodeUntrustedNotRegistered(NodeNotRegistered):
    """A URL given to register a node names one whose certificate gateways do not trust."""

    code = "node_untrusted"
    title = "Node certificate not trusted"


class ShareCorrupt(CargoholdError):
    """A share frame failed its checksum; never served as good data."""

    code = "share_corrupt"
    status = 500
    title = "Share data failed its checksum"


class ShareNotFound(NotFound):
    code = "no_such_share"
    title = "Share does not exist"


class ShareOffsetMismatch(Conflict):
    """An append named another offset than the share's length, or the share is being appended to."""

    code = "share_offset_mismatch"
    title = "Share is not at the expected offset"


class InvalidShareId(BadRequest):
    code = "invalid_share_id"
    title = "Invalid share id"


class InsufficientStorage(CargoholdError):
    code = "insufficient_storage"
    status = 507
    title = "Node has no room for this share"


# -- S3 --
# Errors only the S3 surface raises (its authentication and its request bodies). Each still has a
# native code; ``s3/errors.py`` maps every domain error, these and the ones above, to its S3 code.


class InvalidAccessKeyId(Forbidden):
    """An S3 access key id that is unknown, revoked, expired, or whose user is disabled."""

    code = "invalid_access_key_id"
    title = "The access key id does not exist in our records"


class SignatureDoesNotMatch(Forbidden):
    code = "signature_does_not_match"
    title = "The request signature does not match the one calculated with the secret key"


class RequestTimeTooSkewed(Forbidden):
    """The signed time is more than the allowed skew (15 minutes) away from the server's clock."""

    code = "request_time_too_skewed"
    title = "The difference between the request time and the server's time is too large"


class RequestExpired(AccessDenied):
    """A presigned URL used after ``X-Amz-Date + X-Amz-Expires`` (or before ``X-Amz-Date``)."""

    code = "request_expired"
    title = "Request has expired"


class AnonymousRequest(AccessDenied):
    """An S3 request that carries no signature at all: no bucket is public."""

    code = "anonymous_request"
    title = "Anonymous requests are not allowed"


class AuthorizationHeaderMalformed(BadRequest):
    code = "authorization_header_malformed"
    title = "The authorization header is malformed"


class AuthorizationQueryParametersError(BadRequest):
    code = "authorization_query_parameters_error"
    title = "The presigned URL's authorization parameters are malformed"


class UnsupportedSignature(BadRequest):
    """Signature version 2 and other schemes: only AWS4-HMAC-SHA256 is accepted."""

    code = "unsupported_signature"
    title = "Please use AWS4-HMAC-SHA256"


class MissingSecurityHeader(BadRequest):
    code = "missing_security_header"
    title = "The request is missing a required header"


class ContentSha256Mismatch(BadRequest):
    """The body's SHA-256 differs from the ``x-amz-content-sha256`` it was signed with."""

    code = "content_sha256_mismatch"
    title = "The provided x-amz-content-sha256 does not match what was computed"


class MalformedChunkedBody(BadRequest):
    """An ``aws-chunked`` body whose framing (sizes, signatures, trailer) cannot be parsed."""

    code = "malformed_chunked_body"
    title = "Malformed aws-chunked body"


class MissingContentLength(CargoholdError):
    code = "missing_content_length"
    status = 411
    title = "Content-Length (or x-amz-decoded-content-length) is required"


class MalformedXML(BadRequest):
    code = "malformed_xml"
    title = "The XML body is not well-formed or does not match the schema"


class S3NotImplemented(CargoholdError):
    """An S3 operation or option this gateway does not implement."""

    code = "not_implemented"
    status = 501
    title = "A header or operation you provided implies functionality that is not implemented"


class S3MethodNotAllowed(CargoholdError):
    code = "method_not_allowed"
    status = 405
    title = "The specified method is not allowed against this resource"


class InvalidRequest(BadRequest):
    """A request S3 refuses as a whole, e.g. copying an object onto itself without changing anything."""

    code = "invalid_request"
    title = "Invalid request"


class InvalidLocationConstraint(BadRequest):
    code = "invalid_location_constraint"
    title = "The location constraint is not this gateway's region"


class BucketAlreadyOwnedByYou(BucketAlreadyExists):
    code = "bucket_already_owned_by_you"
    title = "You already own a bucket of this name"


class InvalidPartNumber(RangeNotSatisfiable):
    """A ``partNumber`` read of a part the object does not have."""

    code = "invalid_part_number"
    title = "The requested part number is not satisfiable"
