"""``/metrics`` and the request counters, for every role that serves HTTP (gateway, node, worker).

The middleware labels by the matched route's template (``/api/v1/b/{bucket}``),
never the raw path, so a scan of random URLs cannot grow the label set; a
request no route matched counts as route ``other``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from cargohold.domain.zones import IPNetwork, parse_networks
from cargohold.errors import Forbidden
from cargohold.metrics import BYTES_IN, BYTES_OUT, REQUEST_SECONDS, REQUESTS, render, scrape_allowed
from cargohold.problems import Handler


@dataclass(frozen=True, slots=True)
class ScrapeAccess:
    """Who may read ``/metrics``: the bearer token, or addresses in ``allow``; nobody when both are empty."""

    token: str | None = None
    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, token: str | None, allow: list[str]) -> ScrapeAccess:
        return cls(token or None, parse_networks(allow, "metrics_allow"))


SCRAPE = web.AppKey("metrics_scrape", ScrapeAccess)
ROLE = web.AppKey("metrics_role", str)


def _route(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return resource.canonical if resource is not None else "other"


def metrics_middleware(role: str):  # type: ignore[no-untyped-def]
    """Count every request of ``role`` by route, method and status, with its duration and bytes."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        status = 500
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = _route(request)
            REQUESTS.labels(role, route, request.method, str(status)).inc()
            REQUEST_SECONDS.labels(role, route, request.method).observe(time.monotonic() - started)
            BYTES_IN.labels(role).inc(request.content.total_bytes)
            if response is not None:
                BYTES_OUT.labels(role).inc(_sent(response))

    return middleware


def _sent(response: web.StreamResponse) -> int:
    """Body bytes of an answer: streamed ones are finished here, plain ones are sent just after."""
    if response.prepared:
        return response.body_length
    body = response.body if isinstance(response, web.Response) else None
    return len(body) if isinstance(body, bytes | bytearray) else 0


async def metrics(request: web.Request) -> web.Response:
    """The text exposition, for a scraper with the token or from an allowed network."""
    access = request.app.get(SCRAPE) or ScrapeAccess()
    if not scrape_allowed(request.headers.get("Authorization"), request.remote, access.token, access.allow):
        raise Forbidden("metrics need the scrape token (Bearer) or an address in metrics_allow")
    body, content_type = render()
    return web.Response(body=body, headers={"Content-Type": content_type})
