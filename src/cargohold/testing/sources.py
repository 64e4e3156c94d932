"""Import sources for tests and the benchmark: a real HTTP server with scripted faults, and a
fake of the ``Source`` port for tests without sockets.

:class:`SourceServer` serves one file on 127.0.0.1 from a thread of its own,
as a web server out there would: ``Content-Length``, a strong ``ETag``,
``Accept-Ranges`` and ``206`` answers to ``Range`` (honouring ``If-Range``),
unless told to do without ranges. It records every request (its ``Range``
and ``If-Range``), can break the connection after given offsets of the file
(each once), can send slowly (``pace`` bytes/s), and can answer with another
status instead.

A client drops what it has received but not read when its connection
breaks, so which byte a transfer broke off at depends on how far behind the
reader was. With ``hold``, the server stops at each drop offset and breaks
the connection only once the test calls :meth:`release` (having seen the
client read every byte sent): the test then knows the byte exactly.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from cargohold.domain.imports import Answer, SourceBrokeOff
from cargohold.service.imports import SourceReply

CHUNK = 256 * 1024
#: Seconds between the last byte before a scripted drop and the drop itself (without ``hold``).
DROP_LINGER = 0.5
_RANGE = re.compile(r"bytes=(\d+)-")


@dataclass
class Seen:
    """One request the server answered: its Range and If-Range headers and the status sent."""

    range: str | None
    if_range: str | None
    status: int = 0


@dataclass
class SourceServer:
    data: bytes | None = None
    #: Serve this file instead of ``data`` (with aiohttp's FileResponse: the benchmark's source).
    path: Path | None = None
    ranges: bool = True
    #: Break the connection once the file's bytes up to each of these offsets are sent (once each).
    drops: list[int] = field(default_factory=list)
    pace: int = 0  # bytes/s; 0: as fast as the connection goes
    hold: bool = False
    #: The drop offset the server is stopped at (with ``hold``), until :meth:`release`.
    holding: int | None = None
    status: int = 200
    etag: str = '"v1"'
    seen: list[Seen] = field(default_factory=list)
    #: Requests being answered now, the most at any one time, and bytes of the file sent.
    active: int = 0
    most_active: int = 0
    sent: int = 0
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _released: threading.Event = field(default_factory=threading.Event)

    def start(self) -> SourceServer:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the source server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> SourceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def release(self) -> None:
        """Break the connection held at a drop offset (see ``hold``)."""
        self.holding = None  # at once: a test waiting for the next hold must not see this one
        self._released.set()

    def file_url(self, name: str = "file.bin") -> str:
        return f"{self.url}/{name}"

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_get("/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        ready.set()
        loop.run_forever()
        loop.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            return await self._answer(request)
        finally:
            self.active -= 1

    async def _before_drop(self, offset: int) -> None:
        if not self.hold:
            await asyncio.sleep(DROP_LINGER)
            return
        self.holding = offset
        while not self._released.is_set():
            await asyncio.sleep(0.02)
        self._released.clear()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.headers.get("Range"), request.headers.get("If-Range"))
        self.seen.append(seen)
        if self.status != 200:
            seen.status = self.status
            return web.Response(status=self.status, text="no such file")
        if self.path is not None:
            seen.status = 200
            return web.FileResponse(self.path, chunk_size=1 << 20)
        assert self.data is not None
        size = len(self.data)
        start = 0
        match = _RANGE.fullmatch(seen.range or "")
        if self.ranges and match and seen.if_range in (None, self.etag) and int(match.group(1)) < size:
            start = int(match.group(1))
        headers = {"ETag": self.etag, "Content-Type": "application/x-test"}
        if self.ranges:
            headers["Accept-Ranges"] = "bytes"
        seen.status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        response = web.StreamResponse(status=seen.status, headers=headers)
        response.content_length = size - start
        await response.prepare(request)
        position = start
        while position < size:
            end = min(size, position + CHUNK)
            drop = next((d for d in sorted(self.drops) if position < d <= end), None)
            if drop is not None:
                end = drop
            if self.pace:  # before the write: the answer ends with its last byte
                await asyncio.sleep((end - position) / self.pace)
            await response.write(self.data[position:end])
            self.sent += end - position
            position = end
            if drop is not None:
                self.drops.remove(drop)
                await self._before_drop(drop)
                assert request.transport is not None
                request.transport.abort()  # the connection breaks: the client has a short body
                return response
        await response.write_eof()
        return response


@dataclass
class FakeSource:
    """The ``Source`` port over bytes in memory, for tests without sockets.

    Answers like :class:`SourceServer` (ranges, If-Range, drops at offsets,
    once each) and records the offset and validator of every ``open``.
    ``changed``: the file (bytes and validator) the source holds from the
    first drop on, to play a file replaced while it was being fetched.
    """

    data: bytes
    ranges: bool = True
    validator: str | None = '"v1"'
    drops: list[int] = field(default_factory=list)
    changed: tuple[bytes, str | None] | None = None
    chunk: int = 64 * 1024
    opened: list[tuple[int, str | None]] = field(default_factory=list)
    allow_private_seen: list[bool] = field(default_factory=list)

    @asynccontextmanager
    async def open(
        self, url: str, *, offset: int, validator: str | None, allow_private: bool
    ) -> AsyncIterator[SourceReply]:
        self.opened.append((offset, validator))
        self.allow_private_seen.append(allow_private)
        size = len(self.data)
        partial = self.ranges and offset > 0 and validator == self.validator
        start = offset if partial else 0
        answer = Answer(206 if partial else 200, start, size, self.validator)
        yield SourceReply(answer, "application/x-test", self._body(start))

    async def _body(self, start: int) -> AsyncIterator[bytes]:
        position = start
        while position < len(self.data):
            end = min(len(self.data), position + self.chunk)
            drop = next((d for d in sorted(self.drops) if position < d <= end), None)
            if drop is not None:
                end = drop
            yield self.data[position:end]
            position = end
            await asyncio.sleep(0)
            if drop is not None:
                self.drops.remove(drop)
                if self.changed is not None:
                    (self.data, self.validator), self.changed = self.changed, None
                raise SourceBrokeOff(f"dropped at {drop}")
