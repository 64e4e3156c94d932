"""The storage node's HTTP server: share files in and out, nothing else.

A node knows nothing of files, users or layouts; it stores opaque share files
by id (see docs/node-protocol.md). Bodies stream straight into
:class:`LocalShareStore` and ranges go out in O_DIRECT reads of a few MiB
(``direct_read``), so a node's memory does not grow with share size. Errors are problem+json, mapped from the
domain error classes in one middleware.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from cargohold import __version__
from cargohold.aborts import begin
from cargohold.concurrency import install_event_loop_policy, run_io, tune_malloc
from cargohold.connections import Deadlines
from cargohold.domain.ranges import parse_range
from cargohold.errors import (
    IncompleteBody,
    InvalidArgument,
    ShareNotFound,
    Unauthorized,
)
from cargohold.metrics_http import SCRAPE, ScrapeAccess, metrics, metrics_middleware
from cargohold.problems import problem_middleware
from cargohold.serving import request_middleware, serve_requests, serve_until_stopped
from cargohold.storage import direct_read
from cargohold.storage.local import LocalShareStore, validate_share_id
from cargohold.storage.node_lock import DataDirInUse, lock_data_dir
from cargohold.storage.share_store import DEFAULT_LIST_LIMIT, VerifyReport

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
        if request.path == "/metrics":  # guarded by the scrape token or allow-list instead
            return await handler(request)
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
    except (web.RequestPayloadError, ConnectionResetError) as exc:
        raise IncompleteBody(f"request body could not be read: {exc}") from exc


def _share_id(request: web.Request) -> str:
    return validate_share_id(request.match_info["share_id"])


async def put_share(request: web.Request) -> web.Response:
    store = request.app[STORE]
    share_id = _share_id(request)
    size = await store.put(share_id, _body(request), request.content_length)
    return web.json_response({"share_id": share_id, "size": size}, status=201)


async def append_share(request: web.Request) -> web.Response:
    """PATCH ?offset=N: the body goes at the end of a share N bytes long (409 if it is not)."""
    store = request.app[STORE]
    share_id = _share_id(request)
    raw = request.query.get("offset", "")
    # Digits only, as for 'limit': int() would take " 12", "+12" and "1_000" too.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or set(request.query) != {"offset"}:
        raise InvalidArgument(
            f"PATCH needs one query parameter 'offset' of up to 19 digits, not {raw[:40]!r}"
        )
    size = await store.append(share_id, int(raw), _body(request))
    return web.json_response({"share_id": share_id, "size": size})


async def get_share(request: web.Request) -> web.StreamResponse:
    """GET and HEAD with one optional Range (206/416).

    The file is opened before the status line is decided, so a share deleted
    or quarantined meanwhile is a clean 404, and the open descriptor keeps
    serving the file it found. Bodies are read with O_DIRECT (see
    ``direct_read``); HEAD needs no bytes.
    """
    share_id = _share_id(request)
    path = request.app[STORE].path(share_id)
    try:
        handle = await direct_read.open_file(path)
    except FileNotFoundError:
        raise ShareNotFound(f"share {share_id!r} is not stored on this node") from None
    try:
        size = handle.size
        wanted = parse_range(request.headers.get("Range"), size)
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        start, end = (wanted.start, wanted.end) if wanted else (0, size - 1)
        if wanted is not None:
            headers["Content-Range"] = wanted.content_range(size)
        response = web.StreamResponse(status=206 if wanted else 200, headers=headers)
        response.content_length = end - start + 1
        await begin(request, response)  # a later failure aborts, never answers twice
    except BaseException:
        await run_io(handle.close)
        raise
    if request.method == "GET" and size:
        async for chunk in direct_read.read_range(handle, start, end):
            await response.write(chunk)
    else:
        await run_io(handle.close)
    await response.write_eof()
    return response


async def delete_share(request: web.Request) -> web.Response:
    store = request.app[STORE]
    share_id = _share_id(request)
    if not await store.delete(share_id):
        raise ShareNotFound(f"share {share_id!r} is not stored on this node")
    return web.Response(status=204)


def _report(report: VerifyReport) -> web.Response:
    return web.json_response({**dataclasses.asdict(report), "corrupt_blocks": list(report.corrupt_blocks)})


async def verify_share(request: web.Request) -> web.Response:
    """GET: re-read a share's frames and report; nothing changes on the node."""
    return _report(await request.app[STORE].verify(_share_id(request)))


async def verify_and_quarantine(request: web.Request) -> web.Response:
    """POST: the same walk, and a corrupt share is moved to quarantine before the answer."""
    return _report(await request.app[STORE].verify(_share_id(request), quarantine=True))


def _limit(raw: str) -> int:
    # Digits only: int() would also take " 12", "+12", "1_000" and "١٢".
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        raise InvalidArgument(f"'limit' must be an integer from 1 to 10000, not {raw[:20]!r}")
    return int(raw)


async def list_shares(request: web.Request) -> web.Response:
    """One page of share ids in id order, with size and mtime; ``next`` is the cursor or null."""
    query = request.query
    for name in query:
        if name not in ("after", "limit") or len(query.getall(name)) > 1:
            raise InvalidArgument(f"unknown or repeated query parameter {name[:40]!r}")
    limit = _limit(query.get("limit", str(DEFAULT_LIST_LIMIT)))
    page = await request.app[STORE].list(query.get("after", ""), limit)
    return web.json_response(
        {
            "shares": [dataclasses.asdict(info) for info in page],
            "next": page[-1].share_id if len(page) == limit else None,
        }
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "status": "ok",
            "zone": request.app[ZONE],
            **request.app[STORE].stats(),
            "version": __version__,
        }
    )


def build_node_app(
    store: LocalShareStore, secret: str, zone: str, scrape: ScrapeAccess | None = None
) -> web.Application:
    """The node's aiohttp application over an opened store."""
    if not secret:
        raise ValueError("a node needs a non-empty cluster secret")
    app = web.Application(
        middlewares=[request_middleware, metrics_middleware("node"), problem_middleware, _auth(secret)],
        # Bodies are stored verbatim (no gzip undoing) and read in big chunks.
        handler_args={"read_bufsize": READ_BUFSIZE, "auto_decompress": False},
    )
    serve_requests(app)
    app[STORE] = store
    app[ZONE] = zone
    app[SCRAPE] = scrape or ScrapeAccess()
    app.router.add_get("/metrics", metrics, allow_head=False)
    app.router.add_put("/v1/shares/{share_id}", put_share)
    app.router.add_get("/v1/shares/{share_id}", get_share)  # HEAD too
    app.router.add_patch("/v1/shares/{share_id}", append_share)
    app.router.add_delete("/v1/shares/{share_id}", delete_share)
    app.router.add_get("/v1/shares", list_shares, allow_head=False)
    app.router.add_get("/v1/shares/{share_id}/verify", verify_share, allow_head=False)
    app.router.add_post("/v1/shares/{share_id}/verify", verify_and_quarantine)
    app.router.add_get("/v1/health", health, allow_head=False)
    return app


async def serve_node(
    data_dir: Path,
    host: str,
    port: int,
    zone: str,
    capacity: int | None,
    secret: str,
    *,
    deadlines: Deadlines | None = None,
    ssl_context: ssl.SSLContext | None = None,
    scrape: ScrapeAccess | None = None,
) -> None:
    """Run a node until SIGTERM or SIGINT, then finish in-flight requests and return.

    Prints ``node listening on http://HOST:PORT`` (``https://`` with
    ``ssl_context``) once the socket is bound, with the real port when
    ``port`` is 0. Holds the data directory's lock (``node_lock``) from
    before the store starts until it returns; raises :class:`DataDirInUse`
    at once if another node holds it. The data directory is the owner's
    alone (0700), and so is every file the node creates.
    """
    os.umask(0o077)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    lock = lock_data_dir(data_dir)
    try:
        store = LocalShareStore(data_dir, capacity)
        await store.start()
        await serve_until_stopped(
            build_node_app(store, secret, zone, scrape),
            host,
            port,
            "node",
            deadlines=deadlines,
            ssl_context=ssl_context,
        )
    finally:
        os.close(lock)


def run_node(
    data_dir: Path,
    host: str,
    port: int,
    zone: str,
    capacity: int | None,
    secret: str,
    *,
    deadlines: Deadlines | None = None,
    ssl_context: ssl.SSLContext | None = None,
    scrape: ScrapeAccess | None = None,
) -> None:
    """Blocking entry point for ``cargohold node``: serve_node on uvloop, like the gateway.

    (Nodes ran on the stock loop while they served reads with sendfile, which
    uvloop lacks; reads are O_DIRECT now.) glibc is tuned so per-request
    buffers are not mapped and unmapped. A second node on the same data directory exits with status 1 and one
    line on stderr naming the directory.
    """
    tune_malloc()
    install_event_loop_policy()
    try:
        asyncio.run(
            serve_node(
                data_dir,
                host,
                port,
                zone,
                capacity,
                secret,
                deadlines=deadlines,
                ssl_context=ssl_context,
                scrape=scrape,
            )
        )
    except DataDirInUse as exc:
        raise SystemExit(f"cargohold node: {exc}") from None
