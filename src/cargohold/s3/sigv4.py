"""AWS Signature Version 4 for S3, verified on the server side (pure: no HTTP library).

A request is signed in one of two ways:

* the ``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
  Signature=...`` header, with ``x-amz-date`` (or ``Date``) and
  ``x-amz-content-sha256`` naming what the body is: its hex SHA-256,
  ``UNSIGNED-PAYLOAD``, or one of the ``STREAMING-*`` aws-chunked modes
  (``chunked.py`` decodes those);
* a presigned URL: the same fields in ``X-Amz-*`` query parameters, the body
  unsigned, valid for ``X-Amz-Expires`` seconds (at most 7 days) from
  ``X-Amz-Date``.

Checks, each with its own error (``errors.py``, mapped to S3 codes in
``s3/errors.py``): a header request whose time is more than 15 minutes from
the server's clock is ``RequestTimeTooSkewed``; a presigned URL past its
expiry (or signed more than 15 minutes in the future) is ``RequestExpired``;
a signature that differs is ``SignatureDoesNotMatch``, carrying the
canonical request and string to sign the server computed (what AWS returns
too, so a client author can compare). The secret is looked up between
:func:`parse` and :func:`verify` by the caller (``s3/auth.py``).

The canonical request follows the S3 flavour: the path is the URI-encoding
of the decoded path, not normalised and encoded once (S3 keys may hold
``//`` and ``..``); query names and values are decoded and re-encoded with
the unreserved set; header values are trimmed and inner runs of spaces
folded; the payload hash is the ``x-amz-content-sha256`` value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, quote, unquote_to_bytes

from cargohold.domain.model import Principal
from cargohold.errors import (
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InvalidArgument,
    MissingSecurityHeader,
    RequestExpired,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    UnsupportedSignature,
)

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_MODES = frozenset({STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER})
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: How far a signed time may be from the server's clock (what S3 allows).
MAX_SKEW = timedelta(minutes=15)
#: The longest a presigned URL may live: 7 days.
MAX_EXPIRES = 7 * 24 * 3600
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_SPACES = re.compile(r"\s+")
_QUERY_AUTH = "X-Amz-Algorithm"


@dataclass(frozen=True, slots=True)
class RequestView:
    """What SigV4 reads of a request, taken from whatever HTTP library received it.

    ``headers`` maps lower-case names to values (repeated headers joined with
    ``,``); ``raw_path`` and ``raw_query`` are as on the request line, still
    percent-encoded.
    """

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, str]
    has_body: bool = False

    @classmethod
    def build(
        cls, method: str, raw_target: str, headers: Iterable[tuple[str, str]], has_body: bool = False
    ) -> RequestView:
        """From a request target (path and query) and header pairs in the order received."""
        path, _, query = raw_target.partition("?")
        joined: dict[str, str] = {}
        for name, value in headers:
            lower = name.lower()
            joined[lower] = f"{joined[lower]},{value}" if lower in joined else value
        return cls(method.upper(), path or "/", query, joined, has_body)

    def query_params(self) -> dict[str, str]:
        """Decoded query parameters (the last of repeated names)."""
        return dict(parse_qsl(self.raw_query, keep_blank_values=True))


def is_signed(view: RequestView) -> bool:
    """Whether the request carries SigV4 at all (header or query); otherwise it is anonymous."""
    return view.headers.get("authorization", "").startswith(ALGORITHM) or _QUERY_AUTH in view.query_params()


@dataclass(frozen=True, slots=True)
class Credential:
    access_key_id: str
    date: str
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{TERMINATOR}"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The signature a request claims, parsed but not yet checked."""

    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    when: datetime
    #: The payload hash the signature covers: hex SHA-256, UNSIGNED-PAYLOAD or a STREAMING-* mode.
    payload: str
    presigned: bool = False
    expires: int = 0


@dataclass(frozen=True, slots=True)
class Verified:
    """A request whose signature checked out: who sent it, and what the body's checks need."""

    access_key_id: str
    principal: Principal
    payload: str
    signing_key: bytes
    #: The request's own signature: the first link of an aws-chunked body's signature chain.
    seed_signature: str
    amz_date: str
    scope: str
    presigned: bool = False


# -- parsing ----------------------------------------------------------------------


def parse(view: RequestView) -> SignedRequest | None:
    """The request's claimed signature, or None for an anonymous request (no SigV4 at all)."""
    authorization = view.headers.get("authorization")
    if authorization is not None:
        return _parse_header(view, authorization)
    params = view.query_params()
    if _QUERY_AUTH in params:
        return _parse_query(view, params)
    if "AWSAccessKeyId" in params and "Signature" in params:
        raise UnsupportedSignature("signature version 2 is not supported: sign with AWS4-HMAC-SHA256")
    return None


def _parse_header(view: RequestView, authorization: str) -> SignedRequest:
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme != ALGORITHM:
        raise UnsupportedSignature(
            f"the authorization scheme {scheme[:40]!r} is not supported: sign with {ALGORITHM}"
        )
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            fields[name] = value.strip()
    missing = [f for f in ("Credential", "SignedHeaders", "Signature") if not fields.get(f)]
    if missing:
        raise AuthorizationHeaderMalformed(f"the authorization header lacks {', '.join(missing)}")
    amz_date, when = _request_time(view)
    credential = _credential(fields["Credential"], amz_date, AuthorizationHeaderMalformed)
    signed_headers = _signed_headers(fields["SignedHeaders"], AuthorizationHeaderMalformed)
    signature = _signature(fields["Signature"], AuthorizationHeaderMalformed)
    payload = view.headers.get("x-amz-content-sha256")
    if payload is None:
        if view.has_body:
            raise MissingSecurityHeader(
                "a request with a body must send x-amz-content-sha256 (its SHA-256, UNSIGNED-PAYLOAD"
                " or a STREAMING-* mode)",
                header="x-amz-content-sha256",
            )
        payload = EMPTY_SHA256
    else:
        _check_payload(payload)
        if "x-amz-content-sha256" not in signed_headers:
            raise AuthorizationHeaderMalformed("x-amz-content-sha256 is sent but not signed")
    return SignedRequest(credential, signed_headers, signature, amz_date, when, payload)


def _parse_query(view: RequestView, params: dict[str, str]) -> SignedRequest:
    error = AuthorizationQueryParametersError
    if params[_QUERY_AUTH] != ALGORITHM:
        raise error(f"X-Amz-Algorithm must be {ALGORITHM}")
    names = ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature")
    missing = [n for n in names if not params.get(n)]
    if missing:
        raise error(f"the presigned URL lacks {', '.join(missing)}")
    amz_date = params["X-Amz-Date"]
    if not _AMZ_DATE.fullmatch(amz_date):
        raise error("X-Amz-Date must be an ISO 8601 basic time such as 20260101T000000Z")
    when = _parse_amz_date(amz_date, error)
    raw_expires = params["X-Amz-Expires"]
    if not raw_expires.isdigit() or len(raw_expires) > 10:
        raise error("X-Amz-Expires must be a non-negative number of seconds")
    expires = int(raw_expires)
    if expires > MAX_EXPIRES:
        raise error(
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES}",
            expires=expires,
        )
    credential = _credential(params["X-Amz-Credential"], amz_date, error)
    signed_headers = _signed_headers(params["X-Amz-SignedHeaders"], error)
    signature = _signature(params["X-Amz-Signature"], error)
    return SignedRequest(
        credential,
        signed_headers,
        signature,
        amz_date,
        when,
        UNSIGNED_PAYLOAD,
        presigned=True,
        expires=expires,
    )


def _request_time(view: RequestView) -> tuple[str, datetime]:
    """The signed time: ``x-amz-date`` (ISO 8601 basic), else ``Date`` (RFC 7231)."""
    amz_date = view.headers.get("x-amz-date")
    if amz_date is not None:
        if not _AMZ_DATE.fullmatch(amz_date.strip()):
            raise AuthorizationHeaderMalformed(
                "x-amz-date must be an ISO 8601 basic time such as 20260101T000000Z"
            )
        amz_date = amz_date.strip()
        return amz_date, _parse_amz_date(amz_date, AuthorizationHeaderMalformed)
    date = view.headers.get("date")
    if date is None:
        raise MissingSecurityHeader("a signed request needs x-amz-date or Date", header="x-amz-date")
    try:
        when = parsedate_to_datetime(date).astimezone(UTC)
    except (TypeError, ValueError):
        raise AuthorizationHeaderMalformed("the Date header is not an HTTP date") from None
    return when.strftime(AMZ_DATE_FORMAT), when


def _parse_amz_date(text: str, error: type[Exception]) -> datetime:
    try:
        return datetime.strptime(text, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise error(f"{text!r} is not a valid time") from None


def _credential(text: str, amz_date: str, error: type[Exception]) -> Credential:
    parts = text.split("/")
    if len(parts) != 5 or not all(parts):
        raise error("the credential must be <access key id>/<date>/<region>/s3/aws4_request")
    access_key_id, date, region, service, terminator = parts
    if terminator != TERMINATOR:
        raise error(f"the credential must end with {TERMINATOR!r}")
    if service != SERVICE:
        raise error(f"the credential is for service {service[:20]!r}; this is {SERVICE!r}")
    if date != amz_date[:8]:
        raise error(f"the credential's date {date[:8]!r} is not the request's date {amz_date[:8]!r}")
    return Credential(access_key_id, date, region, service)


def _signed_headers(text: str, error: type[Exception]) -> tuple[str, ...]:
    names = tuple(text.split(";"))
    if not all(names) or any(n != n.lower() or n != n.strip() for n in names):
        raise error("SignedHeaders must be lower-case header names separated by ';'")
    if "host" not in names:
        raise error("the Host header must be signed")
    return names


def _signature(text: str, error: type[Exception]) -> str:
    if not _SIGNATURE.fullmatch(text):
        raise error("the signature must be 64 lower-case hex digits")
    return text


def _check_payload(value: str) -> None:
    if value in (UNSIGNED_PAYLOAD, *STREAMING_MODES) or _HEX64.fullmatch(value):
        return
    raise InvalidArgument(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER],"
        " STREAMING-UNSIGNED-PAYLOAD-TRAILER or a SHA-256 in lower-case hex",
        header="x-amz-content-sha256",
    )


# -- time ---------------------------------------------------------------------------


def check_time(signed: SignedRequest, now: datetime) -> None:
    """Skew for signed headers; validity window for presigned URLs."""
    if signed.presigned:
        if signed.when - now > MAX_SKEW:
            raise RequestExpired("the presigned URL is not valid yet (signed in the future)")
        if now > signed.when + timedelta(seconds=signed.expires):
            raise RequestExpired(
                "Request has expired",
                expires=(signed.when + timedelta(seconds=signed.expires)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                server_time=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        return
    if abs(now - signed.when) > MAX_SKEW:
        raise RequestTimeTooSkewed(
            "The difference between the request time and the current time is too large.",
            request_time=signed.amz_date,
            server_time=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            max_allowed_skew_ms=int(MAX_SKEW.total_seconds() * 1000),
        )


# -- signing --------------------------------------------------------------------------


def signing_key(secret: str, credential: Credential) -> bytes:
    key = _hmac(("AWS4" + secret).encode(), credential.date)
    key = _hmac(key, credential.region)
    key = _hmac(key, credential.service)
    return _hmac(key, TERMINATOR)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def canonical_uri(raw_path: str) -> str:
    return quote(unquote_to_bytes(raw_path or "/"), safe="/~")


def canonical_query(raw_query: str, presigned: bool) -> str:
    pairs = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        encoded_name = quote(unquote_to_bytes(name), safe="-_.~")
        if presigned and encoded_name == "X-Amz-Signature":
            continue
        pairs.append((encoded_name, quote(unquote_to_bytes(value), safe="-_.~")))
    pairs.sort()
    return "&".join(f"{n}={v}" for n, v in pairs)


def canonical_request(view: RequestView, signed: SignedRequest) -> str:
    headers = []
    for name in signed.signed_headers:
        value = view.headers.get(name)
        if value is None:
            raise SignatureDoesNotMatch(f"the signed header {name!r} is not in the request")
        headers.append(f"{name}:{_SPACES.sub(' ', value.strip())}\n")
    return "\n".join(
        (
            view.method,
            canonical_uri(view.raw_path),
            canonical_query(view.raw_query, signed.presigned),
            "".join(headers),
            ";".join(signed.signed_headers),
            signed.payload,
        )
    )


def string_to_sign(signed: SignedRequest, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{signed.amz_date}\n{signed.credential.scope}\n{digest}"


def verify(view: RequestView, signed: SignedRequest, secret: str, principal: Principal) -> Verified:
    """Check the signature with the access key's ``secret``; ``SignatureDoesNotMatch`` if it differs."""
    canonical = canonical_request(view, signed)
    to_sign = string_to_sign(signed, canonical)
    key = signing_key(secret, signed.credential)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signed.signature):
        raise SignatureDoesNotMatch(
            "The request signature we calculated does not match the signature you provided."
            " Check your key and signing method.",
            access_key_id=signed.credential.access_key_id,
            string_to_sign=to_sign,
            canonical_request=canonical,
        )
    return Verified(
        access_key_id=signed.credential.access_key_id,
        principal=principal,
        payload=signed.payload,
        signing_key=key,
        seed_signature=signed.signature,
        amz_date=signed.amz_date,
        scope=signed.credential.scope,
        presigned=signed.presigned,
    )
