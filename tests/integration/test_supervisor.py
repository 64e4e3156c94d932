"""The supervisor with real child processes (tiny Python scripts, no sockets).

Delays are shortened through :class:`Backoff`; everything else is what
``cargohold up`` runs: readiness by the child's own line, restart on exit,
a message on stderr, and nothing left running after :meth:`Supervisor.stop`.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from cargohold.cli.supervisor import Backoff, ChildFailed, ChildSpec, Supervisor

#: Prints its pid as its readiness line and a second line, then waits to be stopped.
CHILD = "import os, time; print('ready', os.getpid(), flush=True); print('more', flush=True); time.sleep(600)"


def _spec(name: str = "child 1", script: str = CHILD, marker: str = "ready") -> ChildSpec:
    command = [sys.executable, "-c", script]
    return ChildSpec(name, lambda: command, marker, on_ready=lambda line: line.split()[1])


def _fast() -> Backoff:
    return Backoff(first=0.05, cap=0.2, stable_after=60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_a_killed_child_is_restarted_and_the_restart_is_reported() -> None:
    out, err = io.StringIO(), io.StringIO()

    async def main() -> None:
        supervisor = Supervisor(_fast, out=out, err=err)
        child = await supervisor.start(_spec())
        first = child.pid
        assert child.address == str(first)
        await _until(lambda: "child 1: more" in out.getvalue())  # later stdout is passed on
        os.kill(first, signal.SIGKILL)
        await _until(lambda: child.restarts == 1)
        assert child.pid != first and _alive(child.pid) and child.address == str(child.pid)
        os.kill(child.pid, signal.SIGKILL)  # dies again at once: the delay doubles
        await _until(lambda: child.restarts == 2)
        last = child.pid
        await supervisor.stop()
        assert not _alive(last)
        assert err.getvalue().splitlines() == [
            "child 1 exited with code -9; restarting in 0.05 s",
            "child 1 exited with code -9; restarting in 0.1 s",
        ]
        starts = [line for line in out.getvalue().splitlines() if " pid " in line]
        assert len(starts) == 3 and starts[-1] == f"child 1 pid {last} on {last}"

    asyncio.run(main())


def test_a_child_that_cannot_start_fails_its_first_start() -> None:
    async def main() -> None:
        supervisor = Supervisor(_fast, out=io.StringIO(), err=io.StringIO())
        with pytest.raises(ChildFailed, match=r"child 1 did not start: no such option / exited with code 3"):
            await supervisor.start(_spec(script="print('no such option'); raise SystemExit(3)"))
        await supervisor.stop()

    asyncio.run(main())


def test_a_failing_restart_is_retried_with_backoff(tmp_path: Path) -> None:
    """The first start works; later starts fail while a flag file exists, then work again."""
    flag = tmp_path / "broken"
    script = f"import pathlib\nif pathlib.Path({str(flag)!r}).exists(): raise SystemExit(2)\n" + CHILD
    err = io.StringIO()

    async def main() -> None:
        supervisor = Supervisor(_fast, out=io.StringIO(), err=err)
        child = await supervisor.start(_spec(script=script))
        flag.touch()
        os.kill(child.pid, signal.SIGTERM)
        await _until(lambda: err.getvalue().count("retrying") >= 2)
        flag.unlink()
        await _until(lambda: child.restarts == 1)
        assert _alive(child.pid)
        await supervisor.stop()
        lines = err.getvalue().splitlines()
        assert lines[0] == "child 1 exited with code -15; restarting in 0.05 s"
        assert lines[1:3] == [
            "child 1 did not start: exited with code 2; retrying in 0.1 s",
            "child 1 did not start: exited with code 2; retrying in 0.2 s",
        ]

    asyncio.run(main())


def test_stop_ends_every_child() -> None:
    async def main() -> None:
        supervisor = Supervisor(_fast, out=io.StringIO(), err=io.StringIO())
        children = await asyncio.gather(*(supervisor.start(_spec(f"child {n}")) for n in range(3)))
        pids = [child.pid for child in children]
        assert all(_alive(pid) for pid in pids)
        await supervisor.stop()
        assert not any(_alive(pid) for pid in pids)

    asyncio.run(main())
