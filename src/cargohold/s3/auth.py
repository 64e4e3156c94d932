"""SigV4 for aiohttp requests: who an S3 request acts as, and its body, checked as it arrives.

:func:`s3_auth_middleware` sits where the native auth middleware does (which
steps aside for S3 requests) and before the admission limits, so limits,
grants and quotas see the same ``request["principal"]`` a native call of
the same user has. It parses the signature (``sigv4.py``), looks the access
key's secret up (``S3KeyService.secret_for``: unknown, revoked, expired or
disabled is ``InvalidAccessKeyId``), checks the clock and the signature, and
leaves the result in ``request[S3_AUTH]``.

Handlers read a body only through :func:`body` or :func:`payload`. A small
document (XML) comes through :func:`body`, which checks what the signature
says about it: a hex ``x-amz-content-sha256`` is compared with the
SHA-256 of the bytes received (``XAmzContentSHA256Mismatch``), aws-chunked
bodies are decoded and their chunk signatures and trailing checksums checked
(``chunked.py``). Both raise when the last byte has arrived, before the
iterator ends: a consumer that commits only after the body is exhausted
never commits a body that fails its check. An object's bytes come through
:func:`payload`, which leaves a hex payload hash to the write pipeline to
check in the same pass as every other digest (``service/checksums.py``),
before the commit too.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web

from cargohold.api.context import SERVICES
from cargohold.concurrency import run_cpu
from cargohold.errors import AnonymousRequest, ContentSha256Mismatch
from cargohold.problems import Handler
from cargohold.s3 import chunked, sigv4
from cargohold.s3.sigv4 import RequestView, Verified
from cargohold.s3.surface import is_s3

#: Request key: the verified signature of an S3 request (set by :func:`s3_auth_middleware`).
S3_AUTH = web.RequestKey("s3_auth", Verified)
#: Body pieces at least this large are hashed on the CPU pool rather than on the event loop.
HASH_OFF_LOOP = 256 * 1024


def view_of(request: web.Request) -> RequestView:
    return RequestView.build(
        request.method, request.raw_path, request.headers.items(), has_body=request.body_exists
    )


async def authenticate(request: web.Request, now: datetime | None = None) -> Verified:
    view = view_of(request)
    signed = sigv4.parse(view)
    if signed is None:
        raise AnonymousRequest("this request is not signed, and no bucket is public: sign it with SigV4")
    principal, secret = await request.app[SERVICES].s3keys.secret_for(signed.credential.access_key_id)
    sigv4.check_time(signed, now or datetime.now(UTC))
    return sigv4.verify(view, signed, secret, principal)


@web.middleware
async def s3_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_s3(request):
        verified = await authenticate(request)
        request[S3_AUTH] = verified
        request["principal"] = verified.principal
    return await handler(request)


def verified(request: web.Request) -> Verified:
    return request[S3_AUTH]


def decoded_length(request: web.Request) -> int | None:
    """The length of the object the body carries: ``x-amz-decoded-content-length`` for aws-chunked."""
    if chunked.is_chunked(verified(request).payload):
        return chunked.decoded_length(request.headers)
    return request.content_length


def body(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as the client meant it, checked against what the signature says of it."""
    auth = verified(request)
    raw = request.content.iter_any()
    if chunked.is_chunked(auth.payload):
        return chunked.decode(raw, auth, request.headers)
    if auth.payload == sigv4.UNSIGNED_PAYLOAD:
        return raw
    return _sha256_checked(raw, auth.payload)


def payload(request: web.Request) -> tuple[AsyncIterator[bytes], str | None]:
    """An object's bytes, and the hex SHA-256 they were signed with, if any, for the writer to verify."""
    auth = verified(request)
    raw = request.content.iter_any()
    if chunked.is_chunked(auth.payload):
        return chunked.decode(raw, auth, request.headers), None
    if auth.payload == sigv4.UNSIGNED_PAYLOAD:
        return raw, None
    return raw, auth.payload


async def _sha256_checked(raw: AsyncIterator[bytes], expected: str) -> AsyncIterator[bytes]:
    digest = hashlib.sha256()
    async for piece in raw:
        if len(piece) >= HASH_OFF_LOOP:
            await run_cpu(digest.update, piece)
        else:
            digest.update(piece)
        yield piece
    actual = digest.hexdigest()
    if actual != expected:
        raise ContentSha256Mismatch(
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            client_computed=expected,
            s3_computed=actual,
        )
