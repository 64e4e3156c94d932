"""LocalShareStore against real temp directories: durability, counters, cleanup, scrub."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from cargohold.erasure import framing
from cargohold.errors import (
    IncompleteBody,
    InsufficientStorage,
    InvalidArgument,
    InvalidShareId,
    ShareNotFound,
)
from cargohold.storage import local
from cargohold.storage.local import FLUSH_SIZE, LocalShareStore
from cargohold.storage.share_store import VerifyReport


async def chunks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def failing(parts: Iterable[bytes], error: Exception) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    raise error


def framed(payloads: list[bytes]) -> bytes:
    return b"".join(framing.frame_header(i, p) + p for i, p in enumerate(payloads))


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


async def opened(root: Path, capacity: int | None = None) -> LocalShareStore:
    store = LocalShareStore(root, capacity)
    await store.start()
    return store


def tmp_files(root: Path) -> list[str]:
    return os.listdir(root / "tmp")


def test_put_then_path_and_stats(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path)
        size = await store.put("abc.s0", chunks([b"hello ", b"world"]), 11)
        assert size == 11
        path = store.path("abc.s0")
        assert path == tmp_path / "shares" / "ab" / "abc.s0"
        assert path.read_bytes() == b"hello world"
        stats = store.stats()
        assert stats["used"] == 11 and stats["shares"] == 1 and stats["capacity"] == 11 + stats["free"]
        assert stats["free"] > 0
        assert tmp_files(tmp_path) == []

    asyncio.run(scenario())


def test_large_share_over_many_flushes_in_odd_chunks(tmp_path: Path) -> None:
    data = os.urandom(2 * FLUSH_SIZE + 12345)
    sizes = [1, 7, 65536, 300_001, 4096]
    pieces, at, i = [], 0, 0
    while at < len(data):
        n = sizes[i % len(sizes)]
        pieces.append(data[at : at + n])
        at, i = at + n, i + 1

    async def scenario() -> None:
        store = await opened(tmp_path)
        assert await store.put("big", chunks(pieces), None) == len(data)
        assert store.path("big").read_bytes() == data

    asyncio.run(scenario())


def test_replace_is_atomic_and_counted_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path)
        await store.put("s1", chunks([b"x" * 100]), 100)
        await store.put("s1", chunks([b"y" * 40]), None)
        assert store.path("s1").read_bytes() == b"y" * 40
        assert store.stats()["used"] == 40
        assert store.stats()["shares"] == 1

    asyncio.run(scenario())


def test_delete(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path)
        await store.put("gone", chunks([b"12345"]), 5)
        assert await store.delete("gone") is True
        assert await store.delete("gone") is False
        with pytest.raises(ShareNotFound):
            store.path("gone")
        assert store.stats()["used"] == 0 and store.stats()["shares"] == 0

    asyncio.run(scenario())


def test_open_recounts_and_removes_stale_temp_files(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path)
        await store.put("one", chunks([b"a" * 10]), 10)
        await store.put("two", chunks([b"b" * 20]), 20)
        (tmp_path / "tmp" / "two.deadbeef.tmp").write_bytes(b"half a share")
        again = await opened(tmp_path)
        assert again.stats()["used"] == 30 and again.stats()["shares"] == 2
        assert tmp_files(tmp_path) == []

    asyncio.run(scenario())


def test_failing_iterator_leaves_no_temp_file_and_keeps_old_share(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path)
        await store.put("keep", chunks([b"old"]), 3)
        big = os.urandom(FLUSH_SIZE + 1)  # forces a background write before the failure
        with pytest.raises(RuntimeError, match="client went away"):
            await store.put("keep", failing([big, b"more"], RuntimeError("client went away")), None)
        assert tmp_files(tmp_path) == []
        assert store.path("keep").read_bytes() == b"old"
        assert store.stats()["used"] == 3 and store.stats()["shares"] == 1

    asyncio.run(scenario())


def test_cancelled_put_leaves_no_temp_file(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path)
        started = asyncio.Event()

        async def stalled() -> AsyncIterator[bytes]:
            yield os.urandom(FLUSH_SIZE + 10)
            started.set()
            await asyncio.Event().wait()
            yield b""  # pragma: no cover

        task = asyncio.create_task(store.put("stall", stalled(), None))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert tmp_files(tmp_path) == []
        with pytest.raises(ShareNotFound):
            store.path("stall")

    asyncio.run(scenario())


def test_insufficient_storage(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path, capacity=100)
        assert store.stats()["free"] == 100
        with pytest.raises(InsufficientStorage) as info:
            await store.put("huge", chunks([b"x" * 200]), 200)
        assert info.value.status == 507
        with pytest.raises(InsufficientStorage):
            await store.put("sneaky", chunks([b"x" * 60, b"x" * 60]), None)
        assert tmp_files(tmp_path) == []
        await store.put("fits", chunks([b"x" * 60]), 60)
        assert store.stats()["free"] == 40
        with pytest.raises(InsufficientStorage):
            await store.put("second", chunks([b"x" * 41]), 41)
        assert store.stats() == {"capacity": 100, "used": 60, "free": 40, "shares": 1, "quarantined": 0}

    asyncio.run(scenario())


def test_body_must_match_announced_size(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path)
        with pytest.raises(IncompleteBody):
            await store.put("short", chunks([b"12345"]), 10)
        with pytest.raises(InvalidArgument):
            await store.put("long", chunks([b"12345"]), 3)
        assert tmp_files(tmp_path) == []
        assert store.stats()["shares"] == 0

    asyncio.run(scenario())


def test_invalid_ids_are_refused_everywhere(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path)
        for bad in ("..", "../x", "a/b", ""):
            with pytest.raises(InvalidShareId):
                await store.put(bad, chunks([b"x"]), 1)
            with pytest.raises(InvalidShareId):
                store.path(bad)
            with pytest.raises(InvalidShareId):
                await store.delete(bad)
        assert not (tmp_path / "x").exists()

    asyncio.run(scenario())


def test_verify_clean_and_flipped_payload(tmp_path: Path) -> None:
    payloads = [os.urandom(1000), os.urandom(1000), os.urandom(1000), os.urandom(300)]
    frame = framing.frame_size(1000)

    async def scenario() -> None:
        store = await opened(tmp_path)
        size = await store.put("scrub", chunks([framed(payloads)]), None)
        assert await store.verify("scrub") == VerifyReport("scrub", 4, (), size)
        flip(store.path("scrub"), frame + framing.HEADER_SIZE + 500)  # payload of block 1
        assert (await store.verify("scrub")).corrupt_blocks == (1,)
        flip(store.path("scrub"), 3 * frame + framing.HEADER_SIZE + 299)  # last, short frame
        assert await store.verify("scrub") == VerifyReport("scrub", 4, (1, 3), size, quarantined=False)
        assert store.path("scrub").is_file()  # a plain verify changes nothing

    asyncio.run(scenario())


def test_verify_skips_a_frame_with_a_broken_header(tmp_path: Path) -> None:
    payloads = [os.urandom(500) for _ in range(3)]
    frame = framing.frame_size(500)

    async def scenario() -> None:
        store = await opened(tmp_path)
        await store.put("hdr", chunks([framed(payloads)]), None)
        flip(store.path("hdr"), frame)  # magic of block 1
        assert await store.verify("hdr") == VerifyReport("hdr", 3, (1,), 3 * frame)
        flip(store.path("hdr"), 0)  # magic of block 0: nothing after it can be located
        assert await store.verify("hdr") == VerifyReport("hdr", 1, (0,), 3 * frame)
        with pytest.raises(ShareNotFound):
            await store.verify("missing")

    asyncio.run(scenario())


def test_verify_reports_a_truncated_share(tmp_path: Path) -> None:
    payloads = [os.urandom(500) for _ in range(3)]

    async def scenario() -> None:
        store = await opened(tmp_path)
        await store.put("cut", chunks([framed(payloads)[:-10]]), None)
        result = await store.verify("cut")
        assert (result.frames, result.corrupt_blocks) == (3, (2,))

    asyncio.run(scenario())


def test_concurrent_puts_of_one_id_keep_counters_exact(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path)
        sizes = [1000 + 37 * i for i in range(12)]
        await asyncio.gather(*(store.put("same", chunks([bytes([i]) * n]), n) for i, n in enumerate(sizes)))
        final = store.path("same").read_bytes()
        assert len(set(final)) == 1 and len(final) in sizes
        assert store.stats()["used"] == len(final) and store.stats()["shares"] == 1

    asyncio.run(scenario())


def test_space_promised_to_a_running_put_is_not_given_twice(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path, capacity=100)
        release, started = asyncio.Event(), asyncio.Event()

        async def slow() -> AsyncIterator[bytes]:
            yield b"a" * 30
            started.set()
            await release.wait()
            yield b"a" * 30

        first = asyncio.create_task(store.put("first", slow(), 60))
        await started.wait()  # the first put is under way and holds its space
        with pytest.raises(InsufficientStorage):
            await store.put("second", chunks([b"b" * 60]), 60)
        release.set()
        assert await first == 60
        assert store.stats()["free"] == 40

    asyncio.run(scenario())


def test_file_systems_without_o_direct_still_store_durably(tmp_path: Path) -> None:
    """tmpfs refuses O_DIRECT: the store falls back to page-cache writes, same results."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no writable tmpfs at /dev/shm")
    root = Path(tempfile.mkdtemp(dir=shm))
    try:

        async def scenario() -> None:
            store = await opened(root)
            data = bytes(range(256)) * 40_000 + b"tail"
            assert await store.put(
                "shm.s0", chunks([data[i : i + 70_000] for i in range(0, len(data), 70_000)])
            ) == len(data)
            assert store.path("shm.s0").read_bytes() == data

        asyncio.run(scenario())
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_quarantine_moves_the_file_aside_and_is_counted_across_restarts(tmp_path: Path) -> None:
    payloads = [os.urandom(700) for _ in range(3)]
    frame = framing.frame_size(700)

    async def scenario() -> None:
        store = await opened(tmp_path, capacity=100_000)
        size = await store.put("bad.s1", chunks([framed(payloads)]), None)
        await store.put("good.s1", chunks([framed(payloads)]), None)
        original = store.path("bad.s1").read_bytes()
        flip(store.path("bad.s1"), 2 * frame + framing.HEADER_SIZE + 9)
        assert await store.verify("good.s1", quarantine=True) == VerifyReport("good.s1", 3, (), size)
        report = await store.verify("bad.s1", quarantine=True)
        assert report == VerifyReport("bad.s1", 3, (2,), size, quarantined=True)
        (moved,) = (tmp_path / "quarantine").iterdir()
        assert moved.name.startswith("bad.s1.") and moved.name.removeprefix("bad.s1.").isdigit()
        assert moved.read_bytes()[: 2 * frame] == original[: 2 * frame]
        with pytest.raises(ShareNotFound):
            store.path("bad.s1")
        assert store.stats() == {
            "capacity": 100_000,
            "used": size,
            "free": 100_000 - size,
            "shares": 1,
            "quarantined": 1,
        }
        again = await opened(tmp_path, capacity=100_000)
        assert (again.stats()["used"], again.stats()["shares"], again.stats()["quarantined"]) == (size, 1, 1)
        assert [info.share_id for info in await again.list()] == ["good.s1"]

    asyncio.run(scenario())


def test_quarantine_spares_a_share_replaced_while_it_was_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = [os.urandom(300) for _ in range(2)]
    clean = framed(payloads)

    async def scenario() -> None:
        store = await opened(tmp_path)
        await store.put("race", chunks([clean]), None)
        flip(store.path("race"), framing.HEADER_SIZE + 5)
        walk = local.frames.walk_frames
        calls = []

        def walk_then_replace(pread, size):  # type: ignore[no-untyped-def]
            result = walk(pread, size)
            calls.append(result)
            if len(calls) == 1:  # a put lands between the walk and the quarantine
                fresh = tmp_path / "fresh"
                fresh.write_bytes(clean)
                os.replace(fresh, store.path("race"))
            return result

        monkeypatch.setattr(local.frames, "walk_frames", walk_then_replace)
        report = await store.verify("race", quarantine=True)
        assert calls == [(2, [0]), (2, [])]  # the new file was verified in turn
        assert report == VerifyReport("race", 2, (), len(clean), quarantined=False)
        assert store.path("race").read_bytes() == clean
        assert list((tmp_path / "quarantine").iterdir()) == []

    asyncio.run(scenario())


def test_parallel_unsized_puts_share_the_capacity(tmp_path: Path) -> None:
    """Unsized puts reserve as their bytes arrive: together they never pass the capacity."""

    async def scenario() -> None:
        store = await opened(tmp_path, capacity=100_000)
        await store.put("prefill", chunks([b"p" * 40_000]), None)
        first_halves = asyncio.Barrier(4)

        async def body(fill: bytes) -> AsyncIterator[bytes]:
            yield fill * 12_500
            await first_halves.wait()  # all four hold 12,500 bytes before any goes on
            yield fill * 12_500

        results = await asyncio.gather(
            *(store.put(f"par{i}", body(bytes([65 + i])), None) for i in range(4)),
            return_exceptions=True,
        )
        stored = [i for i, r in enumerate(results) if r == 25_000]
        refused = [i for i, r in enumerate(results) if isinstance(r, InsufficientStorage)]
        # 40,000 + 4 x 12,500 fit; of the second halves exactly two fit.
        assert (len(stored), len(refused)) == (2, 2)
        for i in stored:
            assert store.path(f"par{i}").read_bytes() == bytes([65 + i]) * 25_000
        assert store.stats()["used"] == 90_000
        assert tmp_files(tmp_path) == []

    asyncio.run(scenario())
