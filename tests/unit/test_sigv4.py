"""SigV4 verification checked against botocore's own signers, and every refusal with its exact error.

Requests are signed by botocore (``SigV4Auth``, ``S3SigV4Auth``,
``S3SigV4QueryAuth``) exactly as boto3 and the aws cli sign them, at a fixed
clock, and handed to the verifier as the gateway would see them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from cargohold.domain.model import Principal
from cargohold.errors import (
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    ContentSha256Mismatch,
    InvalidArgument,
    MissingSecurityHeader,
    RequestExpired,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    UnsupportedSignature,
)
from cargohold.s3 import sigv4
from cargohold.s3.auth import _sha256_checked
from cargohold.s3.sigv4 import RequestView

AKID = "CHTESTKEY00000000001"
SECRET = "test-secret-test-secret-test-secret-0000"
CREDENTIALS = Credentials(AKID, SECRET)
SIGNED_AT = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
WHO = Principal(7, "ann", "user", key_id=AKID)
HOST = "127.0.0.1:8080"


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: SIGNED_AT.replace(tzinfo=None))
    yield


def view(request: AWSRequest, has_body: bool | None = None) -> RequestView:
    """The request as the gateway receives it: urllib3 adds Host from the URL."""
    parts = urlsplit(request.url)
    headers = list(request.headers.items())
    if "host" not in {k.lower() for k, _ in headers}:
        headers.append(("Host", parts.netloc))
    target = parts.path + ("?" + parts.query if parts.query else "")
    body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
    return RequestView.build(request.method, target, headers, bool(body) if has_body is None else has_body)


def signed_header_request(
    method: str = "GET",
    path: str = "/",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    signer: type[botocore.auth.SigV4Auth] = botocore.auth.S3SigV4Auth,
    scheme: str = "http",
    context: dict | None = None,
) -> AWSRequest:
    request = AWSRequest(method=method, url=f"{scheme}://{HOST}{path}", data=body, headers=headers or {})
    request.context.update(context or {})
    signer(CREDENTIALS, "s3", "us-east-1").add_auth(request)
    return request


def verify(view_: RequestView, now: datetime = SIGNED_AT, secret: str = SECRET) -> sigv4.Verified:
    signed = sigv4.parse(view_)
    assert signed is not None
    sigv4.check_time(signed, now)
    return sigv4.verify(view_, signed, secret, WHO)


# -- header auth -------------------------------------------------------------------------


def test_plain_sigv4_signer_list_buckets() -> None:
    verified = verify(view(signed_header_request(signer=botocore.auth.SigV4Auth)))
    assert verified.principal == WHO
    assert verified.access_key_id == AKID
    assert verified.payload == sigv4.EMPTY_SHA256
    assert verified.scope == "20261130/us-east-1/s3/aws4_request"
    assert not verified.presigned


def test_s3_signer_with_body_hash_odd_key_and_query() -> None:
    body = b"hello world"
    request = signed_header_request(
        "PUT",
        "/bucket/dir%20one/a%2Bb~c%C3%A9%21.txt?versionId=v%201&partNumber=2",
        body,
        {"Content-Type": "text/plain", "x-amz-meta-Note": "  two   spaces  "},
    )
    verified = verify(view(request))
    assert verified.payload == hashlib.sha256(body).hexdigest()
    assert verified.signing_key == sigv4.signing_key(
        SECRET, sigv4.Credential(AKID, "20261130", "us-east-1", "s3")
    )


def test_unsigned_payload_over_tls() -> None:
    request = signed_header_request(
        "PUT",
        "/bucket/key",
        b"data",
        scheme="https",
        context={"client_config": Config(s3={"payload_signing_enabled": False})},
    )
    assert request.headers["X-Amz-Content-SHA256"] == sigv4.UNSIGNED_PAYLOAD
    assert verify(view(request)).payload == sigv4.UNSIGNED_PAYLOAD


def test_wrong_secret_is_signature_does_not_match() -> None:
    with pytest.raises(SignatureDoesNotMatch) as raised:
        verify(view(signed_header_request()), secret="another-secret")
    assert raised.value.extra["access_key_id"] == AKID
    assert raised.value.extra["canonical_request"].startswith("GET\n/\n\n")


def test_tampered_signature_header_path_and_method() -> None:
    request = signed_header_request("PUT", "/bucket/key", b"x", {"x-amz-meta-a": "1"})
    good = view(request)
    signature = good.headers["authorization"].rsplit("=", 1)[1]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    cases = [
        {**good.headers, "authorization": good.headers["authorization"].replace(signature, flipped)},
        {**good.headers, "x-amz-meta-a": "2"},
        {**good.headers, "host": "127.0.0.1:9090"},
    ]
    for headers in cases:
        with pytest.raises(SignatureDoesNotMatch):
            verify(RequestView(good.method, good.raw_path, good.raw_query, headers, True))
    with pytest.raises(SignatureDoesNotMatch):
        verify(RequestView(good.method, "/bucket/other", good.raw_query, good.headers, True))
    with pytest.raises(SignatureDoesNotMatch):
        verify(RequestView("POST", good.raw_path, good.raw_query, good.headers, True))
    with pytest.raises(SignatureDoesNotMatch):
        verify(RequestView(good.method, good.raw_path, "uploads", good.headers, True))


def test_a_signed_header_missing_from_the_request() -> None:
    good = view(signed_header_request("PUT", "/b/k", b"x", {"x-amz-meta-a": "1"}))
    headers = {k: v for k, v in good.headers.items() if k != "x-amz-meta-a"}
    with pytest.raises(SignatureDoesNotMatch, match="x-amz-meta-a"):
        verify(RequestView(good.method, good.raw_path, good.raw_query, headers, True))


def test_clock_skew_beyond_15_minutes() -> None:
    request = view(signed_header_request())
    verify(request, now=SIGNED_AT + timedelta(minutes=14, seconds=59))
    verify(request, now=SIGNED_AT - timedelta(minutes=14, seconds=59))
    for now in (SIGNED_AT + timedelta(minutes=15, seconds=1), SIGNED_AT - timedelta(minutes=16)):
        with pytest.raises(RequestTimeTooSkewed) as raised:
            verify(request, now=now)
        assert raised.value.extra["request_time"] == "20261130T120000Z"
        assert raised.value.extra["max_allowed_skew_ms"] == 900_000


def test_body_without_content_sha256_is_missing_security_header() -> None:
    request = signed_header_request("PUT", "/b/k", b"data", signer=botocore.auth.SigV4Auth)
    with pytest.raises(MissingSecurityHeader):
        sigv4.parse(view(request, has_body=True))


def test_malformed_content_sha256_is_invalid_argument() -> None:
    good = view(signed_header_request("PUT", "/b/k", b"x"))
    headers = {**good.headers, "x-amz-content-sha256": "not-a-hash"}
    with pytest.raises(InvalidArgument):
        sigv4.parse(RequestView("PUT", "/b/k", "", headers, True))


def test_signature_version_2_and_other_schemes_are_refused() -> None:
    for authorization in ("AWS CHKEY:c2lnbmF0dXJl", "Bearer abc.def"):
        with pytest.raises(UnsupportedSignature):
            sigv4.parse(RequestView("GET", "/", "", {"authorization": authorization, "host": HOST}))
    with pytest.raises(UnsupportedSignature):
        sigv4.parse(RequestView("GET", "/b/k", "AWSAccessKeyId=X&Signature=Y&Expires=1", {"host": HOST}))


def test_anonymous_request_parses_to_none() -> None:
    assert sigv4.parse(RequestView("GET", "/b/k", "", {"host": HOST})) is None


_SCOPE = f"{AKID}/20261130/us-east-1/s3/aws4_request"
_ZEROS = "0" * 64


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (f"SignedHeaders=host, Signature={_ZEROS}", "Credential"),
        (f"Credential={_SCOPE}, Signature={_ZEROS}", "SignedHeaders"),
        (f"Credential={_SCOPE}, SignedHeaders=host, Signature=xyz", "hex"),
        (f"Credential={_SCOPE.replace('/s3/', '/iam/')}, SignedHeaders=host, Signature={_ZEROS}", "service"),
        (f"Credential={_SCOPE.replace('1130', '1129')}, SignedHeaders=host, Signature={_ZEROS}", "date"),
        (f"Credential={_SCOPE}, SignedHeaders=x-amz-date, Signature={_ZEROS}", "Host"),
    ],
)
def test_malformed_authorization_headers(fields: str, words: str) -> None:
    headers = {"authorization": "AWS4-HMAC-SHA256 " + fields, "host": HOST, "x-amz-date": "20261130T120000Z"}
    with pytest.raises(AuthorizationHeaderMalformed, match=words):
        sigv4.parse(RequestView("GET", "/", "", headers))


# -- presigned URLs -------------------------------------------------------------------------


def presigned(path: str = "/", expires: int = 3600, method: str = "GET") -> RequestView:
    request = AWSRequest(method=method, url=f"http://{HOST}{path}")
    botocore.auth.S3SigV4QueryAuth(CREDENTIALS, "s3", "us-east-1", expires=expires).add_auth(request)
    return view(request)


def test_presigned_url_is_valid_until_it_expires() -> None:
    url = presigned("/bucket/some%20key?versionId=3", expires=600)
    verified = verify(url, now=SIGNED_AT + timedelta(seconds=600))
    assert verified.presigned
    assert verified.payload == sigv4.UNSIGNED_PAYLOAD
    with pytest.raises(RequestExpired, match="expired"):
        verify(url, now=SIGNED_AT + timedelta(seconds=601))


def test_presigned_url_signed_in_the_future_is_not_valid_yet() -> None:
    with pytest.raises(RequestExpired, match="not valid yet"):
        verify(presigned(), now=SIGNED_AT - timedelta(minutes=16))


def test_presigned_url_for_more_than_seven_days_is_refused() -> None:
    assert verify(presigned(expires=604800)).presigned
    with pytest.raises(AuthorizationQueryParametersError, match="604800"):
        verify(presigned(expires=604801))


def test_tampered_presigned_url() -> None:
    url = presigned("/bucket/key")
    for query in (
        url.raw_query.replace("X-Amz-Expires=3600", "X-Amz-Expires=3601"),
        url.raw_query + "&versionId=1",
    ):
        with pytest.raises(SignatureDoesNotMatch):
            verify(RequestView("GET", url.raw_path, query, url.headers))
    with pytest.raises(SignatureDoesNotMatch):
        verify(RequestView("GET", "/bucket/other", url.raw_query, url.headers))
    with pytest.raises(SignatureDoesNotMatch):
        verify(RequestView("PUT", url.raw_path, url.raw_query, url.headers))


def test_presigned_url_missing_a_parameter() -> None:
    url = presigned()
    query = "&".join(p for p in url.raw_query.split("&") if not p.startswith("X-Amz-Expires="))
    with pytest.raises(AuthorizationQueryParametersError, match="X-Amz-Expires"):
        sigv4.parse(RequestView("GET", "/", query, url.headers))


# -- whole-body SHA-256 ------------------------------------------------------------------------


async def _pieces(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def _collect(source: AsyncIterator[bytes], seen: list[bytes]) -> None:
    async for piece in source:
        seen.append(piece)


def test_body_matching_its_sha256_passes_through() -> None:
    body = [b"a" * 300_000, b"b" * 10]
    seen: list[bytes] = []
    asyncio.run(_collect(_sha256_checked(_pieces(*body), hashlib.sha256(b"".join(body)).hexdigest()), seen))
    assert seen == body


def test_body_not_matching_fails_after_its_last_piece_before_the_end() -> None:
    seen: list[bytes] = []
    with pytest.raises(ContentSha256Mismatch):
        asyncio.run(
            _collect(_sha256_checked(_pieces(b"abc", b"def"), hashlib.sha256(b"abcdeX").hexdigest()), seen)
        )
    assert seen == [b"abc", b"def"]
