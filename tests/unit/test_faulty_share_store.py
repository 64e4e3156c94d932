"""FaultyShareStore injects each scripted fault, and only where and as often as told."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from cargohold.erasure import framing
from cargohold.errors import InsufficientStorage, NodeUnavailable, ShareCorrupt, ShareNotFound
from cargohold.testing.faults import FaultyShareStore
from cargohold.testing.memory_store import MemoryShareStore

PAYLOADS = [os.urandom(1000) for _ in range(3)]
FRAME = framing.frame_size(1000)
SHARE = b"".join(framing.frame_header(i, p) + p for i, p in enumerate(PAYLOADS))


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def run(scenario: Callable[[FaultyShareStore], Awaitable[None]]) -> None:
    async def main() -> None:
        store = FaultyShareStore(MemoryShareStore("node-7"))
        for share_id in ("p.0", "p.1"):
            await store.put(share_id, one(SHARE), len(SHARE))
        store.calls.clear()
        await scenario(store)

    asyncio.run(main())


def test_fail_raises_the_given_error_for_the_given_ids_and_times() -> None:
    async def scenario(store: FaultyShareStore) -> None:
        fault = store.fail("open", NodeUnavailable, share_ids={"p.1"}, times=2)
        reader = await store.open("p.0")  # another id: untouched
        await reader.close()
        for _ in range(2):
            with pytest.raises(NodeUnavailable, match=r"injected fault: open p\.1 on node-7"):
                await store.open("p.1")
        assert store.faults == []  # used up
        reader = await store.open("p.1")  # used up
        assert await reader.read_frame(0) == PAYLOADS[0]
        await reader.close()
        assert fault.hits == 2 and store.faults == []

        store.fail("put", InsufficientStorage("disk full"))
        for _ in range(3):  # no times: every call
            with pytest.raises(InsufficientStorage, match="disk full"):
                await store.put("p.2", one(b"x"), 1)
        with pytest.raises(ShareNotFound):
            await store.inner.open("p.2")

        store.fail("list", TimeoutError, times=1)
        with pytest.raises(TimeoutError):
            await store.list()
        assert [i.share_id for i in await store.list()] == ["p.0", "p.1"]
        assert store.calls[:3] == [("open", "p.0"), ("open", "p.1"), ("open", "p.1")]

    run(scenario)


def test_each_method_can_fail() -> None:
    async def scenario(store: FaultyShareStore) -> None:
        store.fail("verify", ShareCorrupt, times=1)
        store.fail("delete", NodeUnavailable, times=1)
        with pytest.raises(ShareCorrupt):
            await store.verify("p.0")
        with pytest.raises(NodeUnavailable):
            await store.delete("p.0")
        assert (await store.verify("p.0")).ok
        assert await store.delete("p.0") is True

    run(scenario)


def test_stall_waits_for_its_event() -> None:
    async def scenario(store: FaultyShareStore) -> None:
        gate = asyncio.Event()
        fault = store.stall("delete", until=gate, share_ids={"p.0"})
        task = asyncio.create_task(store.delete("p.0"))
        await fault.fired.wait()
        assert not task.done()
        assert await store.delete("p.1") is True  # other ids pass
        assert [i.share_id for i in await store.inner.list()] == ["p.0"]
        gate.set()
        assert await task is True
        assert await store.inner.list() == []

    run(scenario)


def test_stall_for_some_seconds_and_then_down_wins() -> None:
    async def scenario(store: FaultyShareStore) -> None:
        loop = asyncio.get_running_loop()
        store.stall("verify", seconds=0.05, times=1)
        started = loop.time()
        assert (await store.verify("p.0")).ok
        assert loop.time() - started >= 0.05

        gate = asyncio.Event()
        fault = store.stall("open", until=gate)
        task = asyncio.create_task(store.open("p.0"))
        await fault.fired.wait()
        store.down = True  # the node died while the call was waiting
        gate.set()
        with pytest.raises(NodeUnavailable, match="down"):
            await task

    run(scenario)


def test_flip_byte_corrupts_what_open_returns_not_the_share() -> None:
    async def scenario(store: FaultyShareStore) -> None:
        target = FRAME + framing.HEADER_SIZE + 10  # in block 1's payload
        store.flip_byte(target, share_ids={"p.0"}, times=1)
        reader = await store.open("p.0")
        assert await reader.read_frame(0) == PAYLOADS[0]
        with pytest.raises(ShareCorrupt, match="checksum"):
            await reader.read_frame(1)
        await reader.close()

        store.flip_byte(target, xor=0x01)
        reader = await store.open("p.1", FRAME)  # flips follow share offsets, whatever the range
        raw = await reader.readexactly(FRAME)
        await reader.close()
        expected = bytearray(SHARE[FRAME : 2 * FRAME])
        expected[framing.HEADER_SIZE + 10] ^= 0x01
        assert raw == bytes(expected)
        reader = await store.open("p.1", FRAME)
        raw = b"".join([piece async for piece in reader.iter_raw(7)])
        assert raw == bytes(expected) + SHARE[2 * FRAME :]
        await reader.close()
        assert (await store.verify("p.0")).ok and (await store.verify("p.1")).ok

    run(scenario)


def test_cut_short_breaks_reads_after_some_bytes() -> None:
    async def scenario(store: FaultyShareStore) -> None:
        store.cut_short(FRAME + 5, share_ids={"p.0"}, times=2)
        reader = await store.open("p.0")
        assert await reader.read_frame(0) == PAYLOADS[0]
        with pytest.raises(NodeUnavailable, match="broke after"):
            await reader.read_frame(1)
        await reader.close()

        reader = await store.open("p.0")
        got = []
        with pytest.raises(NodeUnavailable, match="broke after"):
            async for piece in reader.iter_raw(1000):
                got.append(piece)
        assert b"".join(got) == SHARE[: FRAME + 5]
        await reader.close()

        reader = await store.open("p.0")  # the two cut opens are used up
        assert [await reader.read_frame(i) for i in range(3)] == PAYLOADS
        await reader.close()

    run(scenario)


def test_down_makes_every_call_and_open_reader_unavailable() -> None:
    async def scenario(store: FaultyShareStore) -> None:
        reader = await store.open("p.0")
        store.down = True
        with pytest.raises(NodeUnavailable):
            await reader.readexactly(1)
        await reader.close()
        with pytest.raises(NodeUnavailable):
            await store.put("p.9", one(b"x"), 1)
        with pytest.raises(NodeUnavailable):
            await store.open("p.0")
        with pytest.raises(NodeUnavailable):
            await store.verify("p.0")
        with pytest.raises(NodeUnavailable):
            await store.list()
        with pytest.raises(NodeUnavailable):
            await store.delete("p.0")
        assert [i.share_id for i in await store.inner.list()] == ["p.0", "p.1"]
        store.down = False
        assert await store.delete("p.0") is True
        assert [m for m, _ in store.calls] == ["open", "put", "open", "verify", "list", "delete", "delete"]

    run(scenario)


def test_scripting_mistakes_are_refused() -> None:
    store = FaultyShareStore(MemoryShareStore())
    with pytest.raises(ValueError, match="method"):
        store.fail("get", NodeUnavailable)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly one"):
        store.stall("put")
    with pytest.raises(ValueError, match="times"):
        store.fail("put", NodeUnavailable, times=0)
    with pytest.raises(ValueError, match="xor"):
        store.flip_byte(0, xor=0)
