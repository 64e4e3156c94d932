"""The storage node's HTTP server: share files in and out, nothing else.

A node knows nothing of files, users or layouts; it stores opaque share files
by id (see docs/node-protocol.md). Bodies stream straight into
:class:`LocalShareStore` and ranges go out in O_DIRECT reads of a few MiB
(``direct_read``), so a node's memory does not grow with share size. Errors are problem+json, mapped from the
domain error classes in one middleware.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from cargohold import __version__
from cargohold.aborts import begin
from cargohold.concurrency import install_event_loop_policy, run_io, tune_malloc
from cargohold.domain.ranges import parse_range
from cargohold.errors import (
    IncompleteBody,
    ShareNotFound,
    Unauthorized,
)
from cargohold.problems import problem_middleware
from cargohold.serving import serve_until_stopped
from cargohold.storage import direct_read
from cargohold.storage.local import LocalShareStore, validate_share_id

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Cargohold-Secret"
#: Socket reads of up to this size reach the handler in one chunk (aiohttp's default is 64 KiB).
READ_BUFSIZE = 1024 * 1024

STORE = web.AppKey("store", LocalShareStore)
ZONE = web.AppKey("zone", str)


def _auth(secret: str) -> Middleware:
    expected = secret.encode()

    @web.middleware
    async def check_secret(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Only holders of the cluster secret (gateways, workers) may talk to a node."""
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            raise Unauthorized(f"missing or wrong {SECRET_HEADER} header")
        return await handler(request)

    return check_secret


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    """Request body chunks as they arrive; a broken body is the client's fault (400)."""
    try:
        async for chunk in request.content.iter_any():
            yield chunk
    except web.RequestPayloadError as exc:
        raise IncompleteBody(f"request body could not be read: {exc}") from exc


def _share_id(request: web.Request) -> str:
    return validate_share_id(request.match_info["share_id"])


async def put_share(request: web.Request) -> web.Response:
    store = request.app[STORE]
    share_id = _share_id(request)
    size = await store.put(share_id, _body(request), request.content_length)
    return web.json_response({"share_id": share_id, "size": size}, status=201)


async def get_share(request: web.Request) -> web.StreamResponse:
    """GET and HEAD with one optional Range (206/416).

    Bodies are read with O_DIRECT (see ``direct_read``); HEAD needs no bytes.
    """
    path = request.app[STORE].path(_share_id(request))
    size = (await run_io(os.stat, path)).st_size
    wanted = parse_range(request.headers.get("Range"), size)
    headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
    start, end = (wanted.start, wanted.end) if wanted else (0, size - 1)
    if wanted is not None:
        headers["Content-Range"] = wanted.content_range(size)
    response = web.StreamResponse(status=206 if wanted else 200, headers=headers)
    response.content_length = end - start + 1
    await begin(request, response)  # a later failure aborts, never answers twice
    if request.method == "GET" and size:
        async for chunk in direct_read.read_range(path, start, end):
            await response.write(chunk)
    await response.write_eof()
    return response


async def delete_share(request: web.Request) -> web.Response:
    store = request.app[STORE]
    share_id = _share_id(request)
    if not await store.delete(share_id):
        raise ShareNotFound(f"share {share_id!r} is not stored on this node")
    return web.Response(status=204)


async def verify_share(request: web.Request) -> web.Response:
    return web.json_response(await request.app[STORE].verify(_share_id(request)))


async def health(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "status": "ok",
            "zone": request.app[ZONE],
            **request.app[STORE].stats(),
            "version": __version__,
        }
    )


def build_node_app(store: LocalShareStore, secret: str, zone: str) -> web.Application:
    """The node's aiohttp application over an opened store."""
    if not secret:
        raise ValueError("a node needs a non-empty cluster secret")
    app = web.Application(
        middlewares=[problem_middleware, _auth(secret)],
        # Bodies are stored verbatim (no gzip undoing) and read in big chunks.
        handler_args={"read_bufsize": READ_BUFSIZE, "auto_decompress": False},
    )
    app[STORE] = store
    app[ZONE] = zone
    app.router.add_put("/v1/shares/{share_id}", put_share)
    app.router.add_get("/v1/shares/{share_id}", get_share)  # HEAD too
    app.router.add_delete("/v1/shares/{share_id}", delete_share)
    app.router.add_get("/v1/shares/{share_id}/verify", verify_share, allow_head=False)
    app.router.add_get("/v1/health", health, allow_head=False)
    return app


async def serve_node(
    data_dir: Path,
    host: str,
    port: int,
    zone: str,
    capacity: int | None,
    secret: str,
) -> None:
    """Run a node until SIGTERM or SIGINT, then finish in-flight requests and return.

    Prints ``node listening on http://HOST:PORT`` once the socket is bound,
    with the real port when ``port`` is 0.
    """
    store = LocalShareStore(data_dir, capacity)
    await store.open()
    await serve_until_stopped(build_node_app(store, secret, zone), host, port, "node")


def run_node(
    data_dir: Path,
    host: str,
    port: int,
    zone: str,
    capacity: int | None,
    secret: str,
) -> None:
    """Blocking entry point for ``cargohold node``: serve_node on uvloop, like the gateway.

    (Nodes ran on the stock loop while they served reads with sendfile, which
    uvloop lacks; reads are O_DIRECT now.) glibc is tuned so per-request
    buffers are not mapped and unmapped.
    """
    tune_malloc()
    install_event_loop_policy()
    asyncio.run(serve_node(data_dir, host, port, zone, capacity, secret))
