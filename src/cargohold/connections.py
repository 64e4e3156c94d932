"""Deadlines on every server connection, so a client that stalls cannot hold one forever.

aiohttp bounds only the wait for a request on an idle connection
(``keepalive_timeout``). The rest is watched here, by one sweeper per
server that looks at every connection a few times per deadline:

* **headers**: a request's head must be complete within ``header_timeout``
  of its first byte (a slowloris that sends a header line now and then is cut);
* **body silence**: while a handler wants body bytes, none may be missing for
  longer than ``body_idle_timeout``;
* **body trickle**: a body must average ``body_min_rate`` bytes/s over every
  ``body_idle_timeout`` window, so one byte a second does not count as alive.
  A total deadline would do the same but would also cut an honest slow
  upload of a large file; a minimum rate cuts only what is not really
  sending (after Apache's mod_reqtimeout ``MinRate``);
* **stalled response**: a client that stops reading a response for
  ``body_idle_timeout`` is cut too, or a download would hold its node streams.

Time during which the server itself holds the client back (reading paused
because the handler has not consumed what arrived, typically while nodes
are slow) does not count against the client.

A cut aborts the transport. aiohttp then fails the request's body reads,
the handler unwinds through its ``finally`` blocks (node streams closed,
partial shares deleted) and the request middleware logs one line with the
reason. Each connection is a thin :class:`asyncio.Protocol` in front of
aiohttp's own, which only counts bytes and forwards every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Deadlines:
    header_timeout: float = 30.0
    keepalive_timeout: float = 75.0
    body_idle_timeout: float = 60.0
    #: Bytes/s averaged over each ``body_idle_timeout`` window; 0 turns the check off.
    body_min_rate: int = 1024

    @property
    def tick(self) -> float:
        """How often the sweeper looks: a quarter of the shortest deadline, at most a second."""
        return max(0.05, min(1.0, self.header_timeout / 4, self.body_idle_timeout / 4))


class GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the clocks the sweeper reads."""

    def __init__(self, inner: web.RequestHandler, guard: ConnectionGuard) -> None:
        self.inner = inner
        self._guard = guard
        self._loop = guard.loop
        self.transport: asyncio.Transport | None = None
        self.received = 0
        self.last_byte = 0.0
        self.head_started: float | None = None
        self.write_paused_at: float | None = None
        self.request: web.BaseRequest | None = None
        self.window_start = 0.0
        self.window_bytes = 0
        self.cut_reason: str | None = None

    # -- asyncio.Protocol, forwarded -----------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.last_byte = self._loop.time()
        self._guard.connections[self.inner] = self
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        now = self._loop.time()
        self.received += len(data)
        self.last_byte = now
        if self.request is None and self.head_started is None:
            self.head_started = now
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()  # type: ignore[func-returns-value]

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.connections.pop(self.inner, None)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.write_paused_at = self._loop.time()
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.write_paused_at = None
        self.inner.resume_writing()

    # -- the request on this connection ----------------------------------------

    def request_started(self, request: web.BaseRequest) -> None:
        now = self._loop.time()
        self.request = request
        self.head_started = None
        self.last_byte = now
        self.window_start, self.window_bytes = now, self.received

    def request_finished(self) -> None:
        self.request = None

    def cut(self, reason: str) -> None:
        """Abort the connection now (no flushing: the peer is not listening anyway)."""
        if self.cut_reason is None:
            self.cut_reason = reason
            if self.request is None:  # no request to log it (the request middleware does)
                peer = self.transport.get_extra_info("peername") if self.transport else None
                log.info("connection from %s cut: %s", peer, reason)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def check(self, now: float, deadlines: Deadlines) -> None:
        """Cut the connection if it has overrun one of its deadlines."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        idle = deadlines.body_idle_timeout
        if self.write_paused_at is not None and now - self.write_paused_at > idle:
            self.cut(f"response not read for {idle:g}s")
            return
        request = self.request
        if request is None:
            if self.head_started is not None and now - self.head_started > deadlines.header_timeout:
                self.cut(f"request headers incomplete after {deadlines.header_timeout:g}s")
            return
        if request.content.is_eof():
            return
        if not transport.is_reading():
            # We are holding the client back, not the other way round.
            self.last_byte = now
            self.window_start, self.window_bytes = now, self.received
            return
        if now - self.last_byte > idle:
            self.cut(f"no body byte for {idle:g}s")
        elif deadlines.body_min_rate and now - self.window_start >= idle:
            rate = (self.received - self.window_bytes) / (now - self.window_start)
            if rate < deadlines.body_min_rate:
                self.cut(f"body arrived at {rate:.0f} B/s, below the {deadlines.body_min_rate} B/s minimum")
            else:
                self.window_start, self.window_bytes = now, self.received


class ConnectionGuard:
    """Wraps a server's protocol factory and sweeps its connections for overrun deadlines."""

    def __init__(self, deadlines: Deadlines) -> None:
        self.deadlines = deadlines
        #: Every open connection, by the aiohttp protocol it fronts (what a request knows).
        self.connections: dict[web.RequestHandler, GuardedConnection] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.loop = asyncio.get_running_loop()

    def protocol_factory(
        self, make_handler: Callable[[], web.RequestHandler]
    ) -> Callable[[], asyncio.Protocol]:
        def make() -> asyncio.Protocol:
            return GuardedConnection(make_handler(), self)

        return make

    def of(self, request: web.BaseRequest) -> GuardedConnection | None:
        """The guarded connection a request arrived on (None once it is gone)."""
        return self.connections.get(request.protocol)  # type: ignore[arg-type]

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def _sweep(self) -> None:
        deadlines = self.deadlines
        while True:
            await asyncio.sleep(deadlines.tick)
            now = self.loop.time()
            for connection in list(self.connections.values()):
                try:
                    connection.check(now, deadlines)
                except Exception:  # one odd connection must not stop the sweeping
                    log.exception("connection check failed")
