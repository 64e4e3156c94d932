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


class NoSuchNode(NotFound):
    code = "no_such_node"
    title = "Node does not exist"


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


class InvalidShareId(BadRequest):
    code = "invalid_share_id"
    title = "Invalid share id"


class InsufficientStorage(CargoholdError):
    code = "insufficient_storage"
    status = 507
    title = "Node has no room for this share"
