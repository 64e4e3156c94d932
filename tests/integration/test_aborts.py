"""Responses that fail after they started: one status line, a cut connection, one log line.

A small app behind the real problem middleware on a loopback port, read
with a raw socket so that a second response written into a body would be
seen, plus a real node whose disk read fails in the middle of a share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from cargohold.aborts import ABORTS, begin
from cargohold.errors import ReadUnavailable
from cargohold.problems import problem_middleware
from cargohold.storage import direct_read, node_app
from cargohold.storage.local import LocalShareStore

LENGTH = 1_000_000
SECRET = "test-secret"


async def late_failure(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_length = LENGTH
    await begin(request, response)
    await response.write(b"x" * 1000)
    raise ReadUnavailable("fewer than 5 shares of a part are readable")


async def late_bug(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await begin(request, response)
    await response.write(b"event: upload\ndata: {}\n\n")
    raise RuntimeError("something\nunexpected")


async def early_failure(request: web.Request) -> web.StreamResponse:
    raise ReadUnavailable("fewer than 5 shares of a part are readable")


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[int]:
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def _app() -> web.Application:
    app = web.Application(middlewares=[problem_middleware])
    app.router.add_get("/late", late_failure)
    app.router.add_get("/late-bug", late_bug)
    app.router.add_get("/early", early_failure)
    return app


async def raw_get(port: int, path: str, headers: str = "") -> bytes:
    """Everything the server sends for one keep-alive GET, until it closes (at most 5 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n".encode())
        await writer.drain()
        chunks = []
        async with asyncio.timeout(5):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()


@pytest.fixture
def abort_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def _aborts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "cargohold.aborts"]


def test_late_failure_cuts_the_connection_after_one_status_line(abort_log: pytest.LogCaptureFixture) -> None:
    before = ABORTS.by_code().get("read_unavailable", 0)

    async def main() -> bytes:
        async with serving(_app()) as port:
            return await raw_get(port, "/late")

    got = asyncio.run(main())
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 1000000" in head
    assert got.count(b"HTTP/1.1") == 1  # no second response inside the body
    assert body == b"x" * 1000  # short of Content-Length: the client knows it is broken
    [record] = _aborts(abort_log)
    assert record.getMessage() == (
        "GET /late -> 200 aborted after "
        f"{len(got)} bytes sent: read_unavailable: fewer than 5 shares of a part are readable"
    )
    assert record.exc_info is None
    assert ABORTS.by_code()["read_unavailable"] == before + 1
    assert not [r for r in abort_log.records if r.name.startswith("aiohttp") and r.levelno >= logging.ERROR]


def test_late_bug_in_a_chunked_stream_aborts_too(abort_log: pytest.LogCaptureFixture) -> None:
    async def main() -> bytes:
        async with serving(_app()) as port:
            return await raw_get(port, "/late-bug")

    got = asyncio.run(main())
    assert got.count(b"HTTP/1.1") == 1
    assert b"Transfer-Encoding: chunked" in got
    assert not got.endswith(b"0\r\n\r\n")  # no final chunk: the stream is visibly broken
    [record] = _aborts(abort_log)
    assert record.getMessage().endswith("RuntimeError: something unexpected")  # one line
    assert record.exc_info is None


def test_failure_before_the_first_byte_is_a_problem(abort_log: pytest.LogCaptureFixture) -> None:
    async def main() -> bytes:
        async with serving(_app()) as port:
            return await raw_get(port, "/early", "Connection: close\r\n")

    got = asyncio.run(main())
    assert got.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Content-Type: application/problem+json" in got and b'"code": "read_unavailable"' in got
    assert _aborts(abort_log) == []


def test_node_disk_error_mid_share_aborts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, abort_log: pytest.LogCaptureFixture
) -> None:
    async def failing_read(handle: direct_read.DirectFile, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            yield b"s" * 4096
            raise OSError(5, "Input/output error")
        finally:
            handle.close()

    monkeypatch.setattr(node_app.direct_read, "read_range", failing_read)

    async def main() -> bytes:
        store = LocalShareStore(tmp_path, None)
        await store.start()
        await store.put("part.0", _one(b"s" * LENGTH), LENGTH)
        async with serving(node_app.build_node_app(store, SECRET, "zone-a")) as port:
            return await raw_get(port, "/v1/shares/part.0", f"{node_app.SECRET_HEADER}: {SECRET}\r\n")

    got = asyncio.run(main())
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and got.count(b"HTTP/1.1") == 1
    assert body == b"s" * 4096
    [record] = _aborts(abort_log)
    assert record.getMessage().endswith("OSError: [Errno 5] Input/output error")


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
