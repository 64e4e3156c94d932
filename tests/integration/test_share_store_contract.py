"""One contract, every share store: local disk, a node over HTTP, memory, and the fault wrapper.

Repair, scrub, rebalance and gc are written against ``ShareStore`` and tested
with the in-memory fake; this suite is what makes that worth anything: every
implementation gives the same answer to the same call, errors included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cargohold.erasure import framing
from cargohold.errors import (
    IncompleteBody,
    InsufficientStorage,
    InvalidArgument,
    InvalidShareId,
    NodeUnavailable,
    ShareCorrupt,
    ShareNotFound,
    ShareOffsetMismatch,
)
from cargohold.storage.local import LocalShareStore
from cargohold.storage.node_app import build_node_app
from cargohold.storage.node_client import NodeClient
from cargohold.storage.share_store import ShareInfo, ShareStore, VerifyReport
from cargohold.testing.faults import FaultyShareStore
from cargohold.testing.memory_store import MemoryShareStore

CAPACITY = 256 * 1024
SECRET = "contract-secret"


@dataclass
class Harness:
    store: ShareStore
    #: Flip one byte of a stored share in place, as bit rot would.
    corrupt: Callable[[str, int], None]
    #: used, shares and quarantined, as the store itself counts them.
    figures: Callable[[], Awaitable[dict[str, Any]]]


def _flip_file(store: LocalShareStore) -> Callable[[str, int], None]:
    def corrupt(share_id: str, offset: int) -> None:
        path = store.path(share_id)
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))

    return corrupt


def _figures(stats: Callable[[], dict[str, Any]]) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def figures() -> dict[str, Any]:
        got = stats()
        return {key: got[key] for key in ("used", "shares", "quarantined")}

    return figures


@contextlib.asynccontextmanager
async def local_store(root: Path) -> AsyncIterator[Harness]:
    store = LocalShareStore(root, CAPACITY)
    await store.start()
    yield Harness(store, _flip_file(store), _figures(store.stats))


@contextlib.asynccontextmanager
async def http_store(root: Path) -> AsyncIterator[Harness]:
    """A real node app on a loopback port, reached through NodeClient."""
    local = LocalShareStore(root, CAPACITY)
    await local.start()
    runner = web.AppRunner(build_node_app(local, SECRET, "zone-c"))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with aiohttp.ClientSession() as session:
            client = NodeClient(session, url, SECRET, timeout=10)

            async def figures() -> dict[str, Any]:
                health = await client.health()
                return {key: health[key] for key in ("used", "shares", "quarantined")}

            yield Harness(client, _flip_file(local), figures)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def memory_store(root: Path) -> AsyncIterator[Harness]:
    store = MemoryShareStore("memory", CAPACITY)
    yield Harness(store, store.corrupt, _figures(store.stats))


@contextlib.asynccontextmanager
async def faulty_store(root: Path) -> AsyncIterator[Harness]:
    """The fault wrapper with no faults scripted must be invisible."""
    async with local_store(root) as inner:
        yield Harness(FaultyShareStore(inner.store), inner.corrupt, inner.figures)


STORES = {"local": local_store, "http": http_store, "memory": memory_store, "faulty": faulty_store}

Scenario = Callable[[Harness], Awaitable[None]]


@pytest.fixture(params=sorted(STORES))
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Scenario], None]:
    def runner(scenario: Scenario) -> None:
        async def main() -> None:
            async with STORES[request.param](tmp_path) as harness:
                await scenario(harness)

        asyncio.run(main())

    return runner


async def chunks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def framed(payloads: list[bytes]) -> bytes:
    return b"".join(framing.frame_header(i, p) + p for i, p in enumerate(payloads))


async def read_all(store: ShareStore, share_id: str, start: int = 0, end: int | None = None) -> bytes:
    reader = await store.open(share_id, start, end)
    try:
        assert reader.length is not None
        return await reader.readexactly(reader.length)
    finally:
        await reader.close()


# -- put and open -------------------------------------------------------------


def test_put_and_read_back_whole_and_in_ranges(run: Callable[[Scenario], None]) -> None:
    data = os.urandom(100_000)

    async def scenario(h: Harness) -> None:
        store = h.store
        assert await store.put("obj.s0", chunks([data[:40_000], data[40_000:]]), len(data)) == len(data)
        assert await store.put("obj.s1", chunks([data[:7], data[7:500]])) == 500
        reader = await store.open("obj.s0")
        assert (reader.length, reader.total) == (len(data), len(data))
        assert await reader.readexactly(10) == data[:10]
        assert await reader.readexactly(len(data) - 10) == data[10:]
        with pytest.raises(NodeUnavailable):
            await reader.readexactly(1)
        await reader.close()

        for start, end in ((0, 0), (1, 1), (4095, 4097), (99_000, None), (50_000, 10**9), (99_999, 99_999)):
            reader = await store.open("obj.s0", start, end)
            last = len(data) - 1 if end is None else min(end, len(data) - 1)
            assert (reader.length, reader.total) == (last - start + 1, len(data))
            assert await reader.readexactly(last - start + 1) == data[start : last + 1]
            await reader.close()
        reader = await store.open("obj.s0", 10, 19)
        with pytest.raises(NodeUnavailable):  # more than the range holds
            await reader.readexactly(11)
        await reader.close()
        assert await read_all(store, "obj.s1") == data[:500]

    run(scenario)


def test_iter_raw_returns_the_rest_of_the_range_in_bounded_chunks(run: Callable[[Scenario], None]) -> None:
    data = os.urandom(70_000)

    async def scenario(h: Harness) -> None:
        await h.store.put("raw", chunks([data]), len(data))
        reader = await h.store.open("raw", 100, 60_099)
        assert await reader.readexactly(50) == data[100:150]
        pieces = [piece async for piece in reader.iter_raw(8192)]
        await reader.close()
        assert b"".join(pieces) == data[150:60_100]
        assert pieces and max(len(p) for p in pieces) <= 8192
        reader = await h.store.open("raw")
        assert b"".join([p async for p in reader.iter_raw()]) == data
        await reader.close()

    run(scenario)


def test_read_frame_returns_only_verified_payloads(run: Callable[[Scenario], None]) -> None:
    payloads = [os.urandom(3000) for _ in range(4)] + [os.urandom(1234)]
    frame = framing.frame_size(3000)
    share = framed(payloads)

    async def scenario(h: Harness) -> None:
        await h.store.put("fr.s2", chunks([share]), len(share))
        reader = await h.store.open("fr.s2")
        assert [await reader.read_frame(i) for i in range(5)] == payloads
        await reader.close()

        reader = await h.store.open("fr.s2", 2 * frame, 4 * frame - 1)
        assert await reader.read_frame(2) == payloads[2]
        assert await reader.read_frame(3) == payloads[3]
        await reader.close()

        reader = await h.store.open("fr.s2", frame)
        with pytest.raises(ShareCorrupt, match="block 1 found where block 0"):
            await reader.read_frame(0)
        await reader.close()

        reader = await h.store.open("fr.s2", 0, frame + 100)  # range ends inside frame 1
        assert await reader.read_frame(0) == payloads[0]
        with pytest.raises(ShareCorrupt, match="remain in the range"):
            await reader.read_frame(1)
        await reader.close()

        h.corrupt("fr.s2", 3 * frame + framing.HEADER_SIZE + 77)
        reader = await h.store.open("fr.s2", 2 * frame)
        assert await reader.read_frame(2) == payloads[2]
        with pytest.raises(ShareCorrupt, match="checksum"):
            await reader.read_frame(3)
        await reader.close()

    run(scenario)


def test_a_range_must_start_inside_the_share(run: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        await h.store.put("short", chunks([b"0123456789"]), 10)
        for start in (10, 11, 10_000):
            with pytest.raises(ShareCorrupt):
                await h.store.open("short", start)
        for start, end in ((-1, None), (5, 4)):
            with pytest.raises(InvalidArgument):
                await h.store.open("short", start, end)
        assert await h.store.put("empty", chunks([]), 0) == 0
        reader = await h.store.open("empty")
        assert (reader.length, reader.total) == (0, 0)
        assert [p async for p in reader.iter_raw()] == []
        with pytest.raises(NodeUnavailable):
            await reader.readexactly(1)
        await reader.close()
        with pytest.raises(ShareCorrupt):
            await h.store.open("empty", 1)

    run(scenario)


def test_replacing_a_share_is_atomic_and_open_readers_keep_their_bytes(
    run: Callable[[Scenario], None],
) -> None:
    async def scenario(h: Harness) -> None:
        await h.store.put("rep", chunks([b"a" * 1000]), 1000)
        reader = await h.store.open("rep", 0, 99)
        await h.store.put("rep", chunks([b"b" * 400]))
        assert await reader.readexactly(100) == b"a" * 100
        await reader.close()
        assert await read_all(h.store, "rep") == b"b" * 400
        assert await h.figures() == {"used": 400, "shares": 1, "quarantined": 0}

    run(scenario)


# -- failed puts ----------------------------------------------------------------


def test_a_failed_put_stores_nothing_and_keeps_the_old_share(run: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        await h.store.put("keep", chunks([b"old!"]), 4)
        with pytest.raises(IncompleteBody):
            await h.store.put("keep", chunks([b"12345"]), 10)
        with pytest.raises(InvalidArgument):
            await h.store.put("keep", chunks([b"12345", b"6789"]), 6)
        with pytest.raises(InvalidArgument):
            await h.store.put("keep", chunks([b"x"]), -1)
        with pytest.raises(InsufficientStorage):
            await h.store.put("keep", chunks([b"z" * (CAPACITY + 1)]), CAPACITY + 1)
        with pytest.raises(InsufficientStorage):  # unsized: refused once it outgrows the room
            await h.store.put("keep", chunks([b"z" * 65536] * 5))
        with pytest.raises(InsufficientStorage):
            await h.store.put("new", chunks([b"z" * 65536] * 5))
        assert await read_all(h.store, "keep") == b"old!"
        with pytest.raises(ShareNotFound):
            await h.store.open("new")
        assert await h.figures() == {"used": 4, "shares": 1, "quarantined": 0}
        # Refused space is given back: a share that fills the rest exactly fits.
        rest = CAPACITY - 4
        assert await h.store.put("fill", chunks([b"f" * (rest // 2), b"f" * (rest - rest // 2)])) == rest
        with pytest.raises(InsufficientStorage):
            await h.store.put("one-more", chunks([b"1"]), 1)

    run(scenario)


# -- append ---------------------------------------------------------------------


def test_append_grows_a_share_only_at_its_expected_offset(run: Callable[[Scenario], None]) -> None:
    payloads = [os.urandom(1000) for _ in range(5)]
    frames = [framing.frame_header(i, p) + p for i, p in enumerate(payloads)]

    async def scenario(h: Harness) -> None:
        store = h.store
        assert await store.append("grow", 0, chunks([frames[0][:7], frames[0][7:]])) == len(frames[0])
        size = len(frames[0])
        assert await store.append("grow", size, chunks(frames[1:3])) == size + len(frames[1]) * 2
        size += len(frames[1]) * 2
        for wrong in (0, size - 1, size + 1):
            with pytest.raises(ShareOffsetMismatch):
                await store.append("grow", wrong, chunks([b"x"]))
        assert await store.append("grow", size, chunks([])) == size  # an empty append changes nothing
        assert await store.append("grow", size, chunks(frames[3:])) == len(b"".join(frames))
        assert await read_all(store, "grow") == b"".join(frames)
        report = await store.verify("grow")
        assert (report.frames, report.corrupt_blocks, report.bytes) == (5, (), len(b"".join(frames)))
        with pytest.raises(ShareNotFound):
            await store.append("absent", 10, chunks([b"x"]))
        with pytest.raises(InvalidArgument):
            await store.append("grow", -1, chunks([b"x"]))
        with pytest.raises(InvalidShareId):
            await store.append("../x", 0, chunks([b"x"]))
        await store.put("whole", chunks([b"12345"]), 5)  # a put share takes appends too
        assert await store.append("whole", 5, chunks([b"678"])) == 8
        assert await read_all(store, "whole") == b"12345678"
        with pytest.raises(InsufficientStorage):
            await store.append("whole", 8, chunks([b"z" * 65536] * 5))
        assert await read_all(store, "whole") == b"12345678"
        assert await h.figures() == {"used": len(b"".join(frames)) + 8, "shares": 2, "quarantined": 0}

    run(scenario)


def test_racing_appends_at_one_offset_never_interleave(run: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        await h.store.put("race", chunks([b"base"]), 4)
        release = asyncio.Event()

        async def gated(fill: bytes) -> AsyncIterator[bytes]:
            yield fill * 1000
            await release.wait()
            yield fill * 1000

        first = asyncio.create_task(h.store.append("race", 4, gated(b"a")))
        second = asyncio.create_task(h.store.append("race", 4, gated(b"b")))
        await asyncio.sleep(0)  # both started before either may finish
        release.set()
        results = await asyncio.gather(first, second, return_exceptions=True)
        refused = [r for r in results if isinstance(r, ShareOffsetMismatch)]
        won = [(fill, r) for fill, r in zip(b"ab", results, strict=True) if r == 2004]
        assert (len(refused), len(won)) == (1, 1), results
        assert await read_all(h.store, "race") == b"base" + bytes([won[0][0]]) * 2000

    run(scenario)


def test_a_failed_append_leaves_the_acknowledged_bytes_and_offset(run: Callable[[Scenario], None]) -> None:
    acknowledged = os.urandom(3000)

    async def breaks() -> AsyncIterator[bytes]:
        yield b"lost" * 1000
        raise IncompleteBody("the writer went away mid-append")

    async def scenario(h: Harness) -> None:
        assert await h.store.append("crash", 0, chunks([acknowledged])) == 3000
        with pytest.raises(IncompleteBody):
            await h.store.append("crash", 3000, breaks())
        assert await read_all(h.store, "crash", 0, 2999) == acknowledged
        # Over HTTP the node cuts the share back once it notices the broken body: poll.
        deadline = time.monotonic() + 10
        while True:
            try:
                assert await h.store.append("crash", 3000, chunks([b"next"])) == 3004
                break
            except ShareOffsetMismatch:
                assert time.monotonic() < deadline, "the share was never cut back to its acknowledged offset"
                await asyncio.sleep(0.02)
        assert await read_all(h.store, "crash") == acknowledged + b"next"
        assert await h.figures() == {"used": 3004, "shares": 1, "quarantined": 0}

    run(scenario)


# -- errors common to every call ------------------------------------------------


def test_missing_shares(run: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        with pytest.raises(ShareNotFound):
            await h.store.open("nope")
        with pytest.raises(ShareNotFound):
            await h.store.verify("nope")
        with pytest.raises(ShareNotFound):
            await h.store.verify("nope", quarantine=True)
        assert await h.store.delete("nope") is False

    run(scenario)


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "", ".hidden", "x" * 161, "a b", "a%2Fb"])
def test_invalid_share_ids_are_refused_by_every_call(run: Callable[[Scenario], None], bad: str) -> None:
    async def scenario(h: Harness) -> None:
        with pytest.raises(InvalidShareId):
            await h.store.put(bad, chunks([b"x"]), 1)
        with pytest.raises(InvalidShareId):
            await h.store.open(bad)
        with pytest.raises(InvalidShareId):
            await h.store.verify(bad)
        with pytest.raises(InvalidShareId):
            await h.store.delete(bad)
        assert await h.store.list() == []

    run(scenario)


def test_delete(run: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        await h.store.put("gone", chunks([b"12345"]), 5)
        await h.store.put("stays", chunks([b"678"]), 3)
        assert await h.store.delete("gone") is True
        assert await h.store.delete("gone") is False
        with pytest.raises(ShareNotFound):
            await h.store.open("gone")
        assert [i.share_id for i in await h.store.list()] == ["stays"]
        assert await h.figures() == {"used": 3, "shares": 1, "quarantined": 0}

    run(scenario)


def test_a_delete_that_overtakes_a_running_put_wins(run: Callable[[Scenario], None]) -> None:
    """A writer that gave up deletes its share at once, while the put may still be finishing:
    the put must not leave the share behind. A put begun after the delete is kept."""

    async def scenario(h: Harness) -> None:
        started, release = asyncio.Event(), asyncio.Event()

        async def held_body() -> AsyncIterator[bytes]:
            yield b"first"
            started.set()
            await release.wait()
            yield b"-last"

        put = asyncio.create_task(h.store.put("raced", held_body(), 10))
        await asyncio.wait_for(started.wait(), 10)
        for _ in range(500):  # until the store has the put under way (before, there is nothing)
            if await h.store.delete("raced"):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the put never showed as under way")
        release.set()
        assert await asyncio.wait_for(put, 10) == 10
        with pytest.raises(ShareNotFound):
            await h.store.open("raced")
        assert await h.figures() == {"used": 0, "shares": 0, "quarantined": 0}
        assert await h.store.put("raced", chunks([b"again"]), 5) == 5
        assert await read_all(h.store, "raced") == b"again"

    run(scenario)


# -- verify and quarantine ------------------------------------------------------


def test_verify_reports_corrupt_blocks_and_quarantine_moves_the_share_away(
    run: Callable[[Scenario], None],
) -> None:
    payloads = [os.urandom(2000) for _ in range(3)] + [os.urandom(500)]
    frame = framing.frame_size(2000)
    share = framed(payloads)

    async def scenario(h: Harness) -> None:
        await h.store.put("v.s0", chunks([share]), len(share))
        await h.store.put("v.s1", chunks([share]), len(share))
        clean = VerifyReport("v.s0", 4, (), len(share))
        assert await h.store.verify("v.s0") == clean
        assert await h.store.verify("v.s0", quarantine=True) == clean  # clean: stays
        h.corrupt("v.s0", frame + framing.HEADER_SIZE + 1)
        h.corrupt("v.s0", 3 * frame + framing.HEADER_SIZE + 499)
        report = await h.store.verify("v.s0")
        assert report == VerifyReport("v.s0", 4, (1, 3), len(share), quarantined=False)
        assert not report.ok
        assert await read_all(h.store, "v.s0", 0, frame - 1) == share[:frame]  # a plain verify moves nothing
        assert await h.figures() == {"used": 2 * len(share), "shares": 2, "quarantined": 0}

        moved = await h.store.verify("v.s0", quarantine=True)
        assert moved == VerifyReport("v.s0", 4, (1, 3), len(share), quarantined=True)
        assert await h.figures() == {"used": len(share), "shares": 1, "quarantined": 1}
        with pytest.raises(ShareNotFound):
            await h.store.open("v.s0")
        with pytest.raises(ShareNotFound):
            await h.store.verify("v.s0")
        assert await h.store.delete("v.s0") is False
        assert [i.share_id for i in await h.store.list()] == ["v.s1"]
        # The id is free again: a repaired copy can be written under it.
        await h.store.put("v.s0", chunks([share]), len(share))
        assert await h.store.verify("v.s0") == clean

    run(scenario)


def test_verify_of_a_share_with_an_unreadable_first_header(run: Callable[[Scenario], None]) -> None:
    share = framed([os.urandom(100), os.urandom(100)])

    async def scenario(h: Harness) -> None:
        await h.store.put("hdr", chunks([share]), len(share))
        h.corrupt("hdr", 0)
        assert await h.store.verify("hdr") == VerifyReport("hdr", 1, (0,), len(share))

    run(scenario)


# -- listing ----------------------------------------------------------------


IDS = ["b.s1", "a", "ab.s0", "ab.s2", "Zz.s3", "00.s1", "ab-1", "b.s10", "zz_9", "a0", "B", "ab.s1"]


def test_list_pages_through_every_share_in_id_order(run: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        before = time.time()
        for n, share_id in enumerate(IDS):
            await h.store.put(share_id, chunks([b"x" * (n + 1)]), n + 1)
        after_puts = time.time()
        everything = await h.store.list()
        assert [i.share_id for i in everything] == sorted(IDS)
        for info in everything:
            assert info.size == IDS.index(info.share_id) + 1
            assert before - 2 <= info.mtime <= after_puts + 2
        for limit in (1, 2, 5, 12, 13):
            pages: list[list[ShareInfo]] = []
            cursor = ""
            while True:
                page = await h.store.list(cursor, limit)
                pages.append(page)
                if len(page) < limit:
                    break
                cursor = page[-1].share_id
            assert [i for page in pages for i in page] == everything
            assert all(len(page) == limit for page in pages[:-1])
        assert [i.share_id for i in await h.store.list("ab.s1", 3)] == ["ab.s2", "b.s1", "b.s10"]
        assert [i.share_id for i in await h.store.list("ab.s15", 1)] == ["ab.s2"]  # any string is a cursor
        assert await h.store.list("zz_9") == []

    run(scenario)


@pytest.mark.parametrize(("after", "limit"), [("", 0), ("", 10_001), ("", -5), ("x" * 161, 10)])
def test_list_refuses_bad_arguments(run: Callable[[Scenario], None], after: str, limit: int) -> None:
    async def scenario(h: Harness) -> None:
        with pytest.raises(InvalidArgument):
            await h.store.list(after, limit)

    run(scenario)
