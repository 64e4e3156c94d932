"""``cargohold up`` as an operator runs it: a node, worker or gateway worker killed under it comes back.

Three nodes with ``--layout mirror:3`` so every object has a copy on every
node: a write that succeeds after the restart proves the restarted node
stores shares again. HOME points at a temporary folder so the client
config ``up`` writes never reaches the real one.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from cargohold.cli.children import die_with_parent
from cargohold.testing.data import sample
from cargohold.testing.s3 import s3_client_at

NODE_LINE = re.compile(r"^node (\d+) pid (\d+) on (\S+)$")
#: A worker of one of several gateways: gateway, worker, pid, URL.
GATEWAY_LINE = re.compile(r"^gateway (\d+) worker (\d+) pid (\d+) on (\S+)$")


class Lines:
    """Lines of one output stream of a child, read by a thread so the pipe never fills."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def wait(self, pattern: str, after: int = 0, timeout: float = 60.0) -> tuple[int, re.Match[str]]:
        """The first line from index ``after`` on that matches ``pattern`` (polled)."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for index in range(after, len(self.lines)):
                found = regex.search(self.lines[index])
                if found:
                    return index, found
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in {self.lines!r}")


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Lines, Lines]]:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGOHOLD_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        PYTHONUNBUFFERED="1",
        CARGOHOLD_HEALTH_INTERVAL="0.5",
    )
    command = [sys.executable, "-m", "cargohold", "up", "--data-dir", str(tmp_path / "data")]
    command += ["--port", "0", "--nodes", "3", "--layout", "mirror:3", "--gateways", "2", "--workers", "2"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, preexec_fn=die_with_parent
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        yield process, Lines(process.stdout), Lines(process.stderr)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _all_healthy(api: httpx.Client) -> bool:
    nodes = api.get("/api/v1/nodes").json()["nodes"]
    return len(nodes) == 3 and all(node["healthy"] for node in nodes)


def _registered(tmp_path: Path) -> list[str]:
    """URLs in the store's table of gateways (redirect targets)."""
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "meta.db")) as db:
        return sorted(url for (url,) in db.execute("SELECT url FROM gateways"))


def _poll(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_up_restarts_a_killed_node_on_its_port(
    up: tuple[subprocess.Popen[bytes], Lines, Lines], tmp_path: Path
) -> None:
    process, out, err = up
    ready, _ = out.wait(r"^API docs: ")
    _, is_up = out.wait(r"^cargohold is up: (\S+)")
    _, key = out.wait(r"^admin key: (\S+)$")
    started = {int(m[1]): (int(m[2]), m[3]) for line in out.lines[:ready] if (m := NODE_LINE.match(line))}
    assert sorted(started) == [1, 2, 3]
    gateways = {
        (int(m[1]), int(m[2])): (int(m[3]), m[4])
        for line in out.lines[:ready]
        if (m := GATEWAY_LINE.match(line))
    }
    assert sorted(gateways) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert "2 gateways of 2 workers" in is_up.string
    _, worker = out.wait(r"^worker pid (\d+)$")
    assert worker.string in out.lines[:ready]
    old_pid, url = started[2]
    assert (tmp_path / "home" / ".config" / "cargohold" / "client.toml").exists()
    _, endpoint = out.wait(r"^S3 endpoint: (\S+)  \(path-style; region us-east-1\)$")
    _, s3_key = out.wait(r"^admin S3 key: (CH[A-Z0-9]{18})  secret: (\S+)  ")
    assert f"aws_access_key_id = {s3_key[1]}" in out.lines[:ready]
    assert f"endpoint_url = {is_up[1]}" in out.lines[:ready] and endpoint[1] == is_up[1]
    _, page = out.wait(r"^web page: (\S+)  \(sign in as admin\)$")
    assert page[1] == is_up[1] + "/ui/"
    profile = tmp_path / "data" / "aws-profile"
    assert profile.stat().st_mode & 0o777 == 0o600 and s3_key[2] in profile.read_text()

    _, more = out.wait(r"^more gateways: (\S+)  \(one metadata store\)$")
    assert more[1] != is_up[1]
    assert {url for (g, _), (_, url) in gateways.items() if g == 1} == {is_up[1]}
    assert {url for (g, _), (_, url) in gateways.items() if g == 2} == {more[1]}
    # Each gateway registered once for redirects, whichever of its workers came up first.
    assert _registered(tmp_path) == sorted([is_up[1], more[1]])
    with httpx.Client(base_url=more[1], headers={"Authorization": f"Bearer {key[1]}"}, timeout=30) as second:
        assert len(second.get("/api/v1/nodes").json()["nodes"]) == 3  # the same cluster, seen from gateway 2
    with httpx.Client(base_url=is_up[1], headers={"Authorization": f"Bearer {key[1]}"}, timeout=30) as api:
        _poll(lambda: _all_healthy(api))
        os.kill(old_pid, signal.SIGKILL)
        said, _ = err.wait(r"^node 2 exited with code -9; restarting in 1 s$")
        index, again = out.wait(r"^node 2 pid (\d+) on (\S+)$", after=ready)
        new_pid = int(again[1])
        assert new_pid != old_pid and again[2] == url  # same port: the registry's address still holds
        _poll(lambda: _all_healthy(api))

        assert api.put("/api/v1/buckets/restarts").status_code == 201
        data = sample(200_000, seed=31)
        put = api.put("/api/v1/buckets/restarts/objects/after-restart", content=data)
        assert put.status_code == 201, put.text
        assert api.get("/api/v1/buckets/restarts/objects/after-restart").content == data
        listed = s3_client_at(is_up[1], s3_key[1], s3_key[2]).list_buckets()
        assert [b["Name"] for b in listed["Buckets"]] == ["restarts"]
        restarted = [p for p in (tmp_path / "data" / "nodes" / "2" / "shares").rglob("*") if p.is_file()]
        assert len(restarted) == 1  # mirror:3 put a copy on the restarted node too

        # Dying again soon after a restart: the delay doubles.
        os.kill(new_pid, signal.SIGKILL)
        err.wait(r"^node 2 exited with code -9; restarting in 2 s$", after=said + 1)
        _, third = out.wait(r"^node 2 pid (\d+) on (\S+)$", after=index + 1)
        _poll(lambda: _all_healthy(api))
        assert api.get("/api/v1/buckets/restarts/objects/after-restart").content == data

        os.kill(int(worker[1]), signal.SIGKILL)
        err.wait(r"^worker exited with code -9; restarting in 1 s$")
        _, new_worker = out.wait(r"^worker pid (\d+)$", after=ready)
        assert new_worker[1] != worker[1] and _alive(int(new_worker[1]))

        os.kill(gateways[1, 1][0], signal.SIGKILL)
        err.wait(r"^gateway 1 worker 1 exited with code -9; restarting in 1 s$")
        _, new_gateway = out.wait(r"^gateway 1 worker 1 pid (\d+) on (\S+)$", after=ready)
        assert int(new_gateway[1]) != gateways[1, 1][0] and new_gateway[2] == is_up[1]
        for _ in range(6):  # new connections, spread over both workers' sockets
            with httpx.Client(base_url=is_up[1], headers=api.headers, timeout=30) as fresh:
                assert fresh.get("/api/v1/buckets/restarts/objects/after-restart").content == data

    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    assert _registered(tmp_path) == []  # up removed what its gateways' workers left registered
    pids = [pid for pid, _ in started.values()] + [int(third[1]), int(new_worker[1])]
    pids += [pid for key, (pid, _) in gateways.items() if key != (1, 1)] + [int(new_gateway[1])]
    _poll(lambda: not any(_alive(pid) for pid in pids), timeout=10)
