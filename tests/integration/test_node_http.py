"""A real node app on a loopback port, driven through NodeClient and raw HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from cargohold import __version__
from cargohold.erasure import framing
from cargohold.errors import (
    IncompleteBody,
    InsufficientStorage,
    InvalidArgument,
    InvalidShareId,
    NodeUnavailable,
    ShareCorrupt,
    ShareNotFound,
)
from cargohold.storage.local import LocalShareStore
from cargohold.storage.node_app import SECRET_HEADER, build_node_app
from cargohold.storage.node_client import NodeClient
from cargohold.storage.share_store import ShareInfo, VerifyReport

SECRET = "test-secret"


class Node:
    def __init__(self, url: str, store: LocalShareStore, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.store = store
        self.session = session
        self.client = NodeClient(session, url, SECRET, timeout=10)

    def raw(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request with an already-encoded path, so nothing normalises '..' away."""
        return self.session.request(method, URL(self.url + path, encoded=True), **kwargs)


@contextlib.asynccontextmanager
async def running_node(root: Path, capacity: int | None = None) -> AsyncIterator[Node]:
    store = LocalShareStore(root, capacity)
    await store.start()
    runner = web.AppRunner(build_node_app(store, SECRET, "zone-a"))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session:
            yield Node(f"http://127.0.0.1:{port}", store, session)
    finally:
        await runner.cleanup()


def run(root: Path, scenario: Callable[[Node], Awaitable[None]], **kwargs: Any) -> None:
    async def main() -> None:
        async with running_node(root, **kwargs) as node:
            await scenario(node)

    asyncio.run(main())


async def body(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def framed(payloads: list[bytes]) -> bytes:
    return b"".join(framing.frame_header(i, p) + p for i, p in enumerate(payloads))


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll (never sleep blindly) until the server side has caught up."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


async def _chunks(data: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_put_get_range_head_delete(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)

    async def scenario(node: Node) -> None:
        client = node.client
        third = len(data) // 3
        parts = [data[:third], data[third : 2 * third], data[2 * third :]]
        assert await client.put("obj1.s0", body(parts), len(data)) == len(data)

        async with await client.open("obj1.s0", 0, None) as stream:
            assert stream.length == len(data) and stream.total == len(data)
            assert await stream.readexactly(len(data)) == data

        async with await client.open("obj1.s0", 1000, 1999) as stream:
            assert stream.length == 1000 and stream.total == len(data)
            assert await stream.readexactly(1000) == data[1000:2000]

        async with await client.open("obj1.s0", len(data) - 5) as stream:
            assert await stream.readexactly(5) == data[-5:]
            with pytest.raises(NodeUnavailable, match="early"):
                await stream.readexactly(1)

        headers = {SECRET_HEADER: SECRET}
        async with node.raw("HEAD", "/v1/shares/obj1.s0", headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Length"] == str(len(data))
            assert resp.headers["Content-Type"] == "application/octet-stream"
            assert resp.headers["Accept-Ranges"] == "bytes"
            assert await resp.read() == b""

        async with node.raw("GET", "/v1/shares/obj1.s0", headers={**headers, "Range": "bytes=-10"}) as resp:
            assert resp.status == 206
            assert resp.headers["Content-Range"] == f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}"
            assert await resp.read() == data[-10:]

        past_end = {**headers, "Range": f"bytes={len(data)}-"}
        async with node.raw("GET", "/v1/shares/obj1.s0", headers=past_end) as resp:
            assert resp.status == 416
            assert resp.headers["Content-Range"] == f"bytes */{len(data)}"

        # Reads are O_DIRECT in aligned 4 MiB pieces: ranges that start and end
        # off the 4 KiB grid, and cross a read boundary, come back exact.
        big = bytes(range(256)) * (5 * 4096 * 4 + 7)
        await client.put("big.s0", _chunks(big))
        for start, end in ((4095, 4097), (1, len(big) - 2), (4 * 1024 * 1024 - 3, 4 * 1024 * 1024 + 5000)):
            async with await client.open("big.s0", start, end) as stream:
                assert await stream.readexactly(end - start + 1) == big[start : end + 1]

        assert await client.delete("obj1.s0") is True
        assert await client.delete("obj1.s0") is False
        with pytest.raises(ShareNotFound):
            await client.open("obj1.s0", 0)

    run(tmp_path, scenario)


def test_chunked_upload_without_size(tmp_path: Path) -> None:
    async def scenario(node: Node) -> None:
        assert await node.client.put("chunky", body([b"ab", b"cd", b"e" * 70000])) == 70004
        assert node.store.path("chunky").read_bytes() == b"abcd" + b"e" * 70000

    run(tmp_path, scenario)


def test_secret_is_required(tmp_path: Path) -> None:
    async def scenario(node: Node) -> None:
        await node.client.put("private", body([b"secret bytes"]), 12)
        for headers in ({}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET + "x"}):
            for method, path in (
                ("GET", "/v1/shares/private"),
                ("GET", "/v1/health"),
                ("DELETE", "/v1/shares/private"),
                ("PUT", "/v1/shares/other"),
            ):
                async with node.raw(method, path, headers=headers, data=b"zz") as resp:
                    assert resp.status == 401
                    assert resp.content_type == "application/problem+json"
                    problem = await resp.json(content_type=None)
                    assert problem["code"] == "unauthorized" and problem["status"] == 401
                    assert set(problem) == {"type", "title", "status", "detail", "code"}
        assert node.store.path("private").read_bytes() == b"secret bytes"
        with pytest.raises(ShareNotFound):
            node.store.path("other")

        intruder = NodeClient(node.session, node.url, "not-the-secret")
        with pytest.raises(NodeUnavailable, match="secret"):
            await intruder.health()

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/shares/..%2Fetc",
        "/v1/shares/..%2F..%2Foutside.txt",
        "/v1/shares/%2E%2E%2F%2E%2E%2Foutside.txt",
        "/v1/shares/%2E%2E",
        "/v1/shares/a/b",
        "/v1/shares/..",
        "/v1/shares/%2Foutside.txt",
        "/v1/shares/.hidden",
        "/v1/shares/a%00b",
    ],
)
def test_invalid_share_ids_never_reach_the_disk(tmp_path: Path, path: str) -> None:
    root = tmp_path / "node"
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not a share")

    async def scenario(node: Node) -> None:
        headers = {SECRET_HEADER: SECRET}
        for method in ("GET", "HEAD", "DELETE", "PUT"):
            async with node.raw(method, path, headers=headers, data=b"evil") as resp:
                assert resp.status in (400, 404), (method, resp.status)
                assert b"not a share" not in await resp.read()
                if method != "HEAD":
                    assert resp.content_type == "application/problem+json"
        async with node.raw("GET", path + "/verify", headers=headers) as resp:
            assert resp.status in (400, 404)
        assert outside.read_bytes() == b"not a share"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["node", "outside.txt"]
        assert node.store.stats()["shares"] == 0

    run(root, scenario)


def test_invalid_share_id_is_a_400_problem(tmp_path: Path) -> None:
    async def scenario(node: Node) -> None:
        async with node.raw("GET", "/v1/shares/..%2Fetc", headers={SECRET_HEADER: SECRET}) as resp:
            assert resp.status == 400
            assert (await resp.json(content_type=None))["code"] == "invalid_share_id"
        with pytest.raises(InvalidShareId):
            await node.client.open("../etc", 0)

    run(tmp_path, scenario)


def test_health_figures(tmp_path: Path) -> None:
    async def scenario(node: Node) -> None:
        health = await node.client.health()
        assert health == {
            "status": "ok",
            "zone": "zone-a",
            "capacity": 10_000,
            "used": 0,
            "free": 10_000,
            "shares": 0,
            "quarantined": 0,
            "version": __version__,
        }
        await node.client.put("h1", body([b"x" * 1234]), 1234)
        await node.client.put("h2", body([b"y" * 766]))
        health = await node.client.health()
        assert (health["used"], health["free"], health["shares"]) == (2000, 8000, 2)

    run(tmp_path, scenario, capacity=10_000)


def test_full_node_answers_507(tmp_path: Path) -> None:
    async def scenario(node: Node) -> None:
        with pytest.raises(InsufficientStorage):
            await node.client.put("too-big", body([b"z" * 200]), 200)
        with pytest.raises(InsufficientStorage):
            await node.client.put("too-big", body([b"z" * 60, b"z" * 60]))
        await wait_until(lambda: not os.listdir(tmp_path / "tmp"))
        assert (await node.client.health())["shares"] == 0

    run(tmp_path, scenario, capacity=100)


def test_failing_upload_body_raises_its_own_error_and_leaves_nothing(tmp_path: Path) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(3 * 1024 * 1024)
        raise ValueError("upstream client vanished")

    async def scenario(node: Node) -> None:
        with pytest.raises(ValueError, match="vanished"):
            await node.client.put("half", broken(), 6 * 1024 * 1024)
        with pytest.raises(ValueError, match="vanished"):
            await node.client.put("half", broken())
        await wait_until(lambda: not os.listdir(tmp_path / "tmp"))
        with pytest.raises(ShareNotFound):
            node.store.path("half")
        assert node.store.stats()["used"] == 0

    run(tmp_path, scenario)


def test_read_frame_verifies_checksums(tmp_path: Path) -> None:
    payloads = [os.urandom(4000) for _ in range(4)]
    frame = framing.frame_size(4000)

    async def scenario(node: Node) -> None:
        await node.client.put("frames", body([framed(payloads)]))
        async with await node.client.open("frames", 0, None) as stream:
            assert [await stream.read_frame(i) for i in range(4)] == payloads

        async with await node.client.open("frames", 2 * frame, 4 * frame - 1) as stream:
            assert await stream.read_frame(2) == payloads[2]
            assert await stream.read_frame(3) == payloads[3]

        async with await node.client.open("frames", frame, None) as stream:
            with pytest.raises(ShareCorrupt, match="block 1 found where block 0"):
                await stream.read_frame(0)

        path = node.store.path("frames")
        raw = bytearray(path.read_bytes())
        raw[frame + framing.HEADER_SIZE + 123] ^= 0x40
        path.write_bytes(bytes(raw))
        async with await node.client.open("frames", 0, None) as stream:
            assert await stream.read_frame(0) == payloads[0]
            with pytest.raises(ShareCorrupt, match="checksum"):
                await stream.read_frame(1)
        assert await node.client.verify("frames") == VerifyReport("frames", 4, (1,), 4 * frame)

        with pytest.raises(ShareCorrupt):  # the share is shorter than the layout says
            await node.client.open("frames", 10 * frame)
        with pytest.raises(ShareNotFound):
            await node.client.verify("nope")

    run(tmp_path, scenario)


def test_compressed_sibling_is_never_served_instead(tmp_path: Path) -> None:
    async def scenario(node: Node) -> None:
        await node.client.put("x", body([b"plain share"]))
        await node.client.put("x.gz", body([b"another share"]))
        headers = {SECRET_HEADER: SECRET, "Accept-Encoding": "gzip, br"}
        async with node.raw("GET", "/v1/shares/x", headers=headers) as resp:
            assert "Content-Encoding" not in resp.headers
            assert await resp.read() == b"plain share"

    run(tmp_path, scenario)


def test_unknown_routes_are_problems(tmp_path: Path) -> None:
    async def scenario(node: Node) -> None:
        headers = {SECRET_HEADER: SECRET}
        async with node.raw("GET", "/v1/nothing", headers=headers) as resp:
            assert resp.status == 404
            assert (await resp.json(content_type=None))[
                "code"
            ] == "route_not_found"  # the same code as the gateway's
        async with node.raw("POST", "/v1/shares/abc", headers=headers) as resp:
            assert resp.status == 405
            assert (await resp.json(content_type=None))["code"] == "method_not_allowed"

    run(tmp_path, scenario)


def test_unreachable_node_is_unavailable(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_node(tmp_path) as node:
            url = node.url
        async with aiohttp.ClientSession() as session:
            client = NodeClient(session, url, SECRET, timeout=2)
            with pytest.raises(NodeUnavailable):
                await client.health()
            with pytest.raises(NodeUnavailable):
                await client.open("abc", 0)
            with pytest.raises(NodeUnavailable):
                await client.put("abc", body([b"x"]), 1)

    asyncio.run(main())


def test_serve_node_prints_its_port_and_stops_on_sigterm(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from cargohold.storage.node_app import run_node; "
        "run_node(Path(sys.argv[1]), '127.0.0.1', 0, 'z9', 5000, 's3cret')"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("node listening on http://127.0.0.1:"), line
        url = line.removeprefix("node listening on ")
        assert not url.endswith(":0")

        async def probe() -> dict[str, Any]:
            async with aiohttp.ClientSession() as session:
                return await NodeClient(session, url, "s3cret").health()

        health = asyncio.run(probe())
        assert health["zone"] == "z9" and health["capacity"] == 5000
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_listing_pages_through_shares_in_id_order(tmp_path: Path) -> None:
    ids = ["b.s1", "a", "ab.s0", "ab.s2", "Zz.s3", "00.s1", "ab-1", "b.s10", "zz_9"]

    async def scenario(node: Node) -> None:
        for n, share_id in enumerate(ids):
            await node.client.put(share_id, body([b"x" * (n + 1)]), n + 1)
        headers = {SECRET_HEADER: SECRET}
        async with node.raw("GET", "/v1/shares?limit=4", headers=headers) as resp:
            assert resp.status == 200
            page = await resp.json()
        assert [s["share_id"] for s in page["shares"]] == sorted(ids)[:4]
        assert page["next"] == sorted(ids)[3]
        first = page["shares"][0]
        assert set(first) == {"share_id", "size", "mtime"}
        assert first["size"] == ids.index(first["share_id"]) + 1
        assert abs(first["mtime"] - node.store.path(first["share_id"]).stat().st_mtime) < 1e-3
        async with node.raw("GET", f"/v1/shares?after={page['next']}&limit=4", headers=headers) as resp:
            page = await resp.json()
        assert [s["share_id"] for s in page["shares"]] == sorted(ids)[4:8] and page["next"] == sorted(ids)[7]
        async with node.raw("GET", f"/v1/shares?after={page['next']}", headers=headers) as resp:
            page = await resp.json()
        assert [s["share_id"] for s in page["shares"]] == sorted(ids)[8:] and page["next"] is None

        listed: list[ShareInfo] = []
        after = ""
        while batch := await node.client.list(after, limit=2):
            listed += batch
            after = batch[-1].share_id
        assert [info.share_id for info in listed] == sorted(ids)
        assert sorted(ids)[3:5] == ["ab-1", "ab.s0"]  # '-' sorts before '.'
        assert await node.client.list("ab.s0", 2) == listed[5:7]
        assert await node.client.list("ab.s1", 2) == listed[5:7]  # a cursor need not be a stored id

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=10001",
        "limit=-1",
        "limit=abc",
        "limit=",
        "limit=1.5",
        "limit=%2B5",
        "limit=1&limit=2",
        "after=" + "a" * 161,
        "cursor=x",
    ],
)
def test_listing_refuses_bad_arguments(tmp_path: Path, query: str) -> None:
    async def scenario(node: Node) -> None:
        async with node.raw("GET", f"/v1/shares?{query}", headers={SECRET_HEADER: SECRET}) as resp:
            assert resp.status == 400
            assert resp.content_type == "application/problem+json"
            assert (await resp.json(content_type=None))["code"] == "invalid_argument"

    run(tmp_path, scenario)


def test_listing_limit_bounds_are_inclusive(tmp_path: Path) -> None:
    async def scenario(node: Node) -> None:
        await node.client.put("one", body([b"1"]), 1)
        assert [i.share_id for i in await node.client.list(limit=1)] == ["one"]
        assert [i.share_id for i in await node.client.list(limit=10_000)] == ["one"]
        with pytest.raises(InvalidArgument):
            await node.client.list(limit=10_001)

    run(tmp_path, scenario)


def test_get_verify_is_read_only_and_post_quarantines(tmp_path: Path) -> None:
    payloads = [os.urandom(900) for _ in range(3)]
    frame = framing.frame_size(900)

    async def scenario(node: Node) -> None:
        await node.client.put("q.s0", body([framed(payloads)]))
        path = node.store.path("q.s0")
        raw = bytearray(path.read_bytes())
        raw[2 * frame + framing.HEADER_SIZE] ^= 1
        path.write_bytes(bytes(raw))
        headers = {SECRET_HEADER: SECRET}
        async with node.raw("GET", "/v1/shares/q.s0/verify", headers=headers) as resp:
            assert resp.status == 200
            assert await resp.json() == {
                "share_id": "q.s0",
                "frames": 3,
                "corrupt_blocks": [2],
                "bytes": 3 * frame,
                "quarantined": False,
            }
        assert path.is_file() and node.store.stats()["quarantined"] == 0
        async with node.raw("POST", "/v1/shares/q.s0/verify", headers=headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["quarantined"] is True
        health = await node.client.health()
        assert (health["shares"], health["used"], health["quarantined"]) == (0, 0, 1)
        with pytest.raises(ShareNotFound):
            await node.client.open("q.s0")
        with pytest.raises(ShareNotFound):
            await node.client.verify("q.s0", quarantine=True)
        assert await node.client.list() == []
        assert await node.client.delete("q.s0") is False
        async with node.raw("GET", "/v1/shares/q.s0", headers=headers) as resp:
            assert resp.status == 404

    run(tmp_path, scenario)


def test_client_holds_a_sized_body_to_its_size(tmp_path: Path) -> None:
    async def scenario(node: Node) -> None:
        await node.client.put("kept", body([b"old"]), 3)
        with pytest.raises(IncompleteBody):
            await node.client.put("kept", body([b"12345"]), 10)
        with pytest.raises(InvalidArgument):
            await node.client.put("kept", body([b"12345", b"678"]), 6)
        await wait_until(lambda: not os.listdir(tmp_path / "tmp"))
        assert node.store.path("kept").read_bytes() == b"old"

    run(tmp_path, scenario)


def test_iter_raw_streams_a_range_in_bounded_chunks(tmp_path: Path) -> None:
    data = os.urandom(300_000)

    async def scenario(node: Node) -> None:
        await node.client.put("raw", body([data]))
        async with await node.client.open("raw", 1000, 250_999) as stream:
            pieces = [piece async for piece in stream.iter_raw(64 * 1024)]
        assert b"".join(pieces) == data[1000:251_000]
        assert max(len(p) for p in pieces) <= 64 * 1024

    run(tmp_path, scenario)
