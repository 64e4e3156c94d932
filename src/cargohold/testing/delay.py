"""A TCP proxy that adds latency by zone pair, for tests where ``tc netem`` is not available.

Each listener stands in front of one server of a known zone; the delay of a
connection is looked up from the zone of the connecting address (the
``zone_of`` function) and the server's zone. Every chunk is delivered
``delay`` seconds after it arrived, in order, in both directions: latency is
added, bandwidth is not taken away, as a long link behaves.

The proxy runs its own event loop in a thread, so a synchronous test can
start it, read its listening ports, and stop it at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

#: (client zone, server zone) -> one-way delay in seconds; a missing pair is 0.
DelayMatrix = dict[tuple[str, str], float]


@dataclass
class _Target:
    host: str
    port: int
    zone: str


@dataclass
class DelayProxy:
    """Listeners on ``listen_host``, one per target, delaying by (client zone, target zone)."""

    listen_host: str
    zone_of: Callable[[str], str]
    delays: DelayMatrix
    _targets: list[_Target] = field(default_factory=list)
    _ports: list[int] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _servers: list[asyncio.base_events.Server] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def add(self, host: str, port: int, zone: str) -> None:
        """A target to proxy (before :meth:`start`)."""
        self._targets.append(_Target(host, port, zone))

    def start(self) -> list[int]:
        """Start listening; the ports, in the order targets were added."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._listen())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("delay proxy did not start")
        return list(self._ports)

    async def _listen(self) -> None:
        for target in self._targets:
            server = await asyncio.start_server(
                functools.partial(self._serve, target=target), self.listen_host, 0
            )
            self._servers.append(server)
            self._ports.append(server.sockets[0].getsockname()[1])

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: _Target
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")[0]
        delay = self.delays.get((self.zone_of(peer), target.zone), 0.0)
        try:
            up_reader, up_writer = await asyncio.open_connection(target.host, target.port)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer, delay), _pipe(up_reader, writer, delay))
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self._tasks.discard(task)

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            for server in self._servers:
                server.close()
            for task in list(self._tasks):
                task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it was read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=64)  # bounded: 16 MiB in flight

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                with contextlib.suppress(Exception):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            chunk = await reader.read(256 * 1024)
            await queue.put((loop.time() + delay, chunk))
            if not chunk:
                break
        await sender
    except ConnectionError:
        sender.cancel()
    except asyncio.CancelledError:
        sender.cancel()
        raise
