"""Which requests belong to the S3 surface: one predicate every middleware asks.

Kept free of the API modules (the native middlewares import it to step
aside for S3 requests). A request is S3 when the router matched it to the
S3 entry point (every path whose first segment is not one of the gateway's
own prefixes, ``domain.names.RESERVED_PREFIXES``), except a plain ``/``:
that one is S3 only when it is signed (``GET /`` is ListBuckets) or names a
bucket in its host (virtual-hosted style).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from cargohold.s3.sigv4 import ALGORITHM

#: The domain of virtual-hosted S3 (``<bucket>.<domain>``); "" when only path-style is served.
S3_DOMAIN = web.AppKey("s3_domain", str)
_IS_S3 = web.RequestKey("is_s3", bool)
_ENTRIES: set[Callable[..., Any]] = set()


def entry_point(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``handler`` as the S3 surface's catch-all."""
    _ENTRIES.add(handler)
    return handler


def host_bucket(request: web.Request) -> str | None:
    """The bucket a virtual-hosted request names in its Host (``<bucket>.<s3_domain>[:port]``)."""
    domain = request.app.get(S3_DOMAIN, "")
    if not domain:
        return None
    host = (request.host or "").rsplit(":", 1)[0] if not (request.host or "").endswith("]") else ""
    suffix = "." + domain.lower().strip(".")
    host = host.lower().rstrip(".")
    if host.endswith(suffix) and len(host) > len(suffix):
        return host[: -len(suffix)]
    return None


def is_s3(request: web.Request) -> bool:
    cached = request.get(_IS_S3)
    if cached is None:
        cached = request.match_info.route.handler in _ENTRIES and (
            request.path != "/" or _signed(request) or host_bucket(request) is not None
        )
        request[_IS_S3] = cached
    return cached


def _signed(request: web.Request) -> bool:
    return (
        request.headers.get("Authorization", "").startswith(ALGORITHM) or "X-Amz-Algorithm" in request.query
    )
