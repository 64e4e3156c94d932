"""Running an aiohttp application until SIGINT/SIGTERM, announcing the bound address.

Port 0 is allowed: the real port is printed in the "listening on" line that
test harnesses and ``up`` wait for (they poll for it instead of sleeping).
A gateway worker serves a listening socket its parent bound and handed down
(``cli/gateways.py``) instead of binding one itself.

Every role serves through here, so every connection gets the same
deadlines (``connections.py``), optional TLS, and the request middleware
below: a request id for each request (``X-Request-Id``, also on every log
line), one log line for a client that went away or was cut, and one logged
traceback, with the request id, for a real server fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from cargohold import logs
from cargohold.config import Settings
from cargohold.connections import ConnectionGuard, Deadlines
from cargohold.problems import Handler, problem

log = logging.getLogger(__name__)

GUARD = web.AppKey("connection_guard", ConnectionGuard)
#: nginx's status for "the client went away before the answer was complete" (never sent).
CLIENT_CLOSED = 499


def server_ssl_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """TLS for a listening socket, or None for plain HTTP; both files or neither."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("TLS needs both a certificate (--tls-cert) and its key (--tls-key)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class _GuardedSite(web.BaseSite):
    """A TCP site whose connections go through a :class:`ConnectionGuard`."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        ssl_context: ssl.SSLContext | None,
        sock: socket.socket | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=1024)
        self._host, self._port, self._guard, self._sock = host, port, guard, sock
        if sock is not None:
            self._host, self._port = sock.getsockname()[:2]
        self.bound_port = self._port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = self._host if ":" not in self._host else f"[{self._host}]"
        return f"{scheme}://{host}:{self.bound_port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        factory = self._guard.protocol_factory(server)
        if self._sock is not None:
            self._server = await loop.create_server(
                factory, sock=self._sock, ssl=self._ssl_context, backlog=self._backlog
            )
        else:
            self._server = await loop.create_server(
                factory,
                self._host,
                self._port,
                ssl=self._ssl_context,
                backlog=self._backlog,
                reuse_address=True,
            )
        self.bound_port = self._server.sockets[0].getsockname()[1]


async def serve_until_stopped(
    app: web.Application,
    host: str,
    port: int,
    role: str,
    on_ready: Callable[[str], Awaitable[None]] | None = None,
    *,
    deadlines: Deadlines | None = None,
    ssl_context: ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
) -> None:
    deadlines = deadlines or Deadlines()
    guard = ConnectionGuard(deadlines)
    app[GUARD] = guard
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=10.0,
        keepalive_timeout=deadlines.keepalive_timeout,
    )
    await runner.setup()
    site = _GuardedSite(runner, host, port, guard, ssl_context, sock)
    await site.start()
    guard.start()
    url = site.name
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    print(f"{role} listening on {url}", flush=True)
    log.info("%s listening on %s", role, url)
    try:
        if on_ready is not None:
            await on_ready(url)
        await stop.wait()
    finally:
        print(f"{role} stopping", file=sys.stderr, flush=True)
        for sig in signals:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
        await guard.stop()
        await runner.cleanup()


# -- per request -------------------------------------------------------------------


def _client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware of every role: request id, deadlines, and what reaches the log.

    A client that goes away (or is cut by a deadline) costs one INFO line,
    not a traceback; an exception nobody turned into a response is a real
    fault: logged once with its traceback and answered 500 ``internal_error``
    naming the request id, which aiohttp would otherwise log a second time.
    """
    rid = logs.new_request_id(request.headers.get(logs.REQUEST_ID_HEADER))
    token = logs.request_id.set(rid)
    guard = request.app.get(GUARD)
    connection = guard.of(request) if guard is not None else None
    if connection is not None:
        connection.request_started(request)
    try:
        response = await handler(request)
        if not response.prepared:  # prepared ones got it from add_request_id
            response.headers[logs.REQUEST_ID_HEADER] = rid
        return response
    except (web.HTTPException, asyncio.CancelledError):
        raise
    except (ConnectionError, web.RequestPayloadError) as exc:
        if _client_gone(request):
            if connection is None or connection.cut_reason is None:
                log.info(
                    "%s %s: client went away after %d body bytes (%s)",
                    request.method,
                    request.path,
                    request.content.total_bytes,
                    type(exc).__name__,
                )
            return web.Response(status=CLIENT_CLOSED)
        if isinstance(exc, web.RequestPayloadError):
            detail = f"request body could not be read: {exc}"
            answer = problem(400, "incomplete_body", "Incomplete body", detail)
            answer.headers[logs.REQUEST_ID_HEADER] = rid
            return answer
        return _internal_error(request, rid)
    except Exception:
        return _internal_error(request, rid)
    finally:
        if connection is not None:
            if connection.cut_reason is not None:
                log.info(
                    "%s %s: cut, %s (%d body bytes received)",
                    request.method,
                    request.path,
                    connection.cut_reason,
                    request.content.total_bytes,
                )
            connection.request_finished()
        logs.request_id.reset(token)


def _internal_error(request: web.BaseRequest, rid: str) -> web.StreamResponse:
    log.exception("%s %s failed", request.method, request.path)
    if request.writer.output_size > 0:  # part of an answer is out: only aborting is honest now
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)
    answer = problem(
        500,
        "internal_error",
        "Internal server error",
        f"the server failed to answer; the operators can find it by request id {rid}",
        request_id=rid,
    )
    answer.headers[logs.REQUEST_ID_HEADER] = rid
    return answer


async def add_request_id(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare``: a response a handler streams names its request id too."""
    rid = logs.request_id.get()
    if rid != logs.NO_REQUEST:
        response.headers.setdefault(logs.REQUEST_ID_HEADER, rid)


def serve_requests(app: web.Application) -> None:
    """Hook the response side of :func:`request_middleware` into ``app`` (put the middleware first)."""
    app.on_response_prepare.append(add_request_id)


def deadlines_for(settings: Settings, role: str) -> Deadlines:
    """The connection deadlines of a role: a node waits longer for bodies, and asks no rate,
    because gateways send whole blocks (a slow client makes a gateway's share streams quiet)."""
    node = role == "node"
    return Deadlines(
        header_timeout=settings.header_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        body_idle_timeout=settings.node_body_idle_timeout if node else settings.body_idle_timeout,
        body_min_rate=0 if node else settings.body_min_rate,
    )


async def serve_gateway(
    app: web.Application,
    settings: Settings,
    on_ready: Callable[[str], Awaitable[None]],
    ssl_context: ssl.SSLContext | None,
    sock: socket.socket | None = None,
) -> None:
    """A gateway on its configured address (or ``sock``) with its deadlines, as ``gateway`` runs it."""
    await serve_until_stopped(
        app,
        settings.host,
        settings.port,
        "gateway",
        on_ready,
        deadlines=deadlines_for(settings, "gateway"),
        ssl_context=ssl_context,
        sock=sock,
    )
