"""Real ``cargohold node`` processes: one node per data directory, and capacity under parallel writes."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from cargohold.cli.children import die_with_parent, node_command
from cargohold.errors import InsufficientStorage
from cargohold.storage.node_client import NodeClient

SECRET = "process-secret"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGOHOLD_")}
    env.update(CARGOHOLD_CLUSTER_SECRET=SECRET, PYTHONUNBUFFERED="1")
    return env


class NodeProcess:
    def __init__(self, data: Path, capacity: int | None = None) -> None:
        self.process = subprocess.Popen(
            node_command(data, 0, "z1", capacity),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
            preexec_fn=die_with_parent,
        )
        self.url = self._wait_until_listening()

    def _wait_until_listening(self, timeout: float = 30.0) -> str:
        """Poll the process's stdout for its "listening on" line (never a fixed sleep)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline().decode()
                if "listening on" in line:
                    return line.strip().rsplit(" ", 1)[1]
            if self.process.poll() is not None:
                break
        self.stop(kill=True)
        raise AssertionError("node did not start")

    def stop(self, kill: bool = False) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(15)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def node_dirs(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    """Started nodes, stopped at the end whatever the test did."""
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.stop(kill=True)


def second_node(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        node_command(data, 0, "z2"), env=_env(), capture_output=True, text=True, timeout=60, check=False
    )


def test_a_second_node_on_the_same_directory_exits_at_once(
    tmp_path: Path, node_dirs: list[NodeProcess]
) -> None:
    data = tmp_path / "data"
    first = NodeProcess(data)
    node_dirs.append(first)
    (data / "tmp" / "x.0123.tmp").write_bytes(b"a put in progress")

    refused = second_node(data)
    assert refused.returncode == 1
    assert refused.stdout == ""
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert lines[0] == (
        f"cargohold node: data directory {data} is in use by another node "
        f"(pid {first.process.pid}): {data / 'lock'} is locked"
    )
    # The refused node touched nothing: the first node's temp file is still there.
    assert (data / "tmp" / "x.0123.tmp").read_bytes() == b"a put in progress"

    async def health() -> dict[str, object]:
        async with aiohttp.ClientSession() as session:
            return await NodeClient(session, first.url, SECRET).health()

    assert asyncio.run(health())["status"] == "ok"

    # The lock dies with its process, even a killed one: a new node may start.
    first.stop(kill=True)
    again = NodeProcess(data)
    node_dirs.append(again)
    assert again.url.startswith("http://127.0.0.1:")


def _disk_bytes(data: Path) -> int:
    """Bytes in share and temp files; shares first, so a file renamed meanwhile is never counted twice."""
    total = 0
    for sub in ("shares", "tmp"):
        for path in (data / sub).rglob("*"):
            try:
                if path.is_file():
                    total += path.stat().st_size
            except FileNotFoundError:
                continue
    return total


def test_parallel_unsized_puts_never_push_a_node_past_its_capacity(
    tmp_path: Path, node_dirs: list[NodeProcess]
) -> None:
    capacity, prefill, size = 100_000, 40_000, 25_000
    data = tmp_path / "full"
    node = NodeProcess(data, capacity)
    node_dirs.append(node)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            client = NodeClient(session, node.url, SECRET, timeout=10)
            await client.put("prefill", _one(b"p" * prefill), prefill)
            first_halves = asyncio.Barrier(4)
            seen: list[tuple[int, int]] = []  # (used, bytes on disk) while the puts run
            done = asyncio.Event()

            async def body(fill: bytes) -> AsyncIterator[bytes]:
                yield fill * (size // 2)
                await first_halves.wait()  # all four are under way before any finishes
                yield fill * (size - size // 2)

            async def watch() -> None:
                while not done.is_set():
                    used = (await client.health())["used"]
                    seen.append((used, await asyncio.to_thread(_disk_bytes, data)))
                    await asyncio.sleep(0)

            watcher = asyncio.create_task(watch())
            results = await asyncio.gather(
                *(client.put(f"par.{i}", body(bytes([65 + i])), None) for i in range(4)),
                return_exceptions=True,
            )
            done.set()
            await watcher

            stored = [i for i, r in enumerate(results) if r == size]
            refused = [i for i, r in enumerate(results) if isinstance(r, InsufficientStorage)]
            # 40,000 + 4 x 12,500 fit; then room is left for exactly two second halves.
            assert (len(stored), len(refused)) == (2, 2), results
            assert seen and all(used <= capacity and disk <= capacity for used, disk in seen), seen
            health = await client.health()
            assert (health["used"], health["shares"]) == (prefill + 2 * size, 3)
            assert _disk_bytes(data) == prefill + 2 * size
            for i in stored:
                reader = await client.open(f"par.{i}")
                assert await reader.readexactly(size) == bytes([65 + i]) * size
                await reader.close()
            assert sorted(info.share_id for info in await client.list()) == sorted(
                ["prefill", *(f"par.{i}" for i in stored)]
            )

    asyncio.run(scenario())


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
