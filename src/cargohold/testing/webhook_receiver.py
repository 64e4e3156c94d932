"""A real webhook receiver for tests and the benchmark: an aiohttp server on a loopback port.

It runs its own event loop in a thread, verifies every delivery's signature
with the ``standardwebhooks`` package (as a user's receiver would), and
records what arrived. ``down()`` closes its socket (deliveries are refused
at the TCP level, as with a receiver that crashed) and ``up()`` listens on
the same port again.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True, slots=True)
class Delivery:
    path: str
    message_id: str
    body: dict[str, Any]
    verified: bool
    received_at: float  # time.time()

    @property
    def event_id(self) -> int | None:
        data = self.body.get("data") or {}
        return data.get("id") if self.body.get("type") != "webhook.ping" else None


class Receiver:
    """Deliveries to ``url(path)`` are checked with the secret registered for ``path``."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._secrets: dict[str, Verifier] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="webhook-receiver")
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.status = 204
        self.on_delivery: Callable[[Delivery], None] | None = None

    # -- life -----------------------------------------------------------------------

    def __enter__(self) -> Receiver:
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _start(self) -> None:
        """Listen (on the same port again after ``down``)."""
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def down(self) -> None:
        """Close the socket and every open connection: deliveries are refused until ``up``."""
        self._call(self._stop())

    def up(self) -> None:
        self._call(self._start())

    # -- deliveries ----------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def expect(self, path: str, secret: str) -> None:
        """Verify deliveries to ``path`` with ``secret`` (``whsec_...``)."""
        self._secrets[path] = Verifier(secret)

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        path = request.match_info["path"]
        verifier = self._secrets.get(path)
        verified = False
        if verifier is not None:
            try:
                verifier.verify(raw, dict(request.headers))
                verified = True
            except WebhookVerificationError:
                verified = False
        delivery = Delivery(
            path, request.headers.get("webhook-id", ""), json.loads(raw), verified, time.time()
        )
        with self._lock:
            self.deliveries.append(delivery)
        if self.on_delivery is not None:
            self.on_delivery(delivery)
        return web.Response(status=self.status if verified else 401)

    def received(self, path: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.path == path]

    def event_ids(self, path: str) -> list[int]:
        return [d.event_id for d in self.received(path) if d.event_id is not None]
