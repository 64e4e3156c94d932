"""Child processes that are started, watched and restarted when they die.

``cargohold up`` runs its nodes and its worker as child processes, so one of
them crashing (or being killed by the OOM killer) cannot take the gateway
with it. Without supervision, though, such a child stays dead and the
cluster silently runs one node short until someone notices. A
:class:`Supervisor` restarts a child that exits on its own, after a delay
that starts at 1 s and doubles up to 30 s while the child keeps failing
quickly, and says so on stderr, so a crash loop neither spins the CPU nor
goes unseen. A child that ran a while before dying starts over at 1 s.

A child is *ready* when it prints its readiness line on stdout (the
"listening on" line of a node, "worker running" of a worker); after that its
stdout is passed on, prefixed with its name, so a full pipe can never stall it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from cargohold.cli.children import die_with_parent

READY_TIMEOUT = 60.0  # a loaded machine takes tens of seconds to import and migrate
STOP_TIMEOUT = 10.0


@dataclass
class Backoff:
    """Delays between restarts: ``first`` doubling up to ``cap``, reset by a long enough run."""

    first: float = 1.0
    cap: float = 30.0
    #: A child that ran at least this long before exiting counts as healthy again.
    stable_after: float = 60.0
    _next: float = field(default=0.0, init=False)

    def after_exit(self, ran_for: float) -> float:
        """The delay before the next start, given how long the last run lasted."""
        if ran_for >= self.stable_after or self._next == 0.0:
            self._next = self.first
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay


@dataclass
class ChildSpec:
    """How to start one child. ``command`` is called at every start (a node's port may be remembered)."""

    name: str
    command: Callable[[], list[str]]
    ready_marker: str
    env: Mapping[str, str] | None = None
    #: Called with the readiness line at every (re)start; returns what to show after "on" (e.g. the URL).
    on_ready: Callable[[str], str | None] | None = None
    #: Descriptors the child inherits (a gateway worker's listening socket).
    pass_fds: tuple[int, ...] = ()


class ChildFailed(RuntimeError):
    """A child exited or stayed silent before printing its readiness line."""


@dataclass
class Child:
    spec: ChildSpec
    process: asyncio.subprocess.Process
    started_at: float
    #: What :attr:`ChildSpec.on_ready` made of the readiness line (a node's URL).
    address: str | None = None
    restarts: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid


class Supervisor:
    """Starts children, restarts the ones that die, and stops them all on :meth:`stop`."""

    def __init__(
        self,
        backoff: Callable[[], Backoff] = Backoff,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self._backoff = backoff
        self._out = out
        self._err = err
        self._stopping = False
        self._watchers: list[asyncio.Task[None]] = []
        self._copiers: set[asyncio.Task[None]] = set()
        self.children: list[Child] = []

    def _say(self, text: str, to_err: bool = False) -> None:
        stream = (self._err or sys.stderr) if to_err else (self._out or sys.stdout)
        print(text, file=stream, flush=True)

    async def start(self, spec: ChildSpec) -> Child:
        """Start ``spec`` and wait until it is ready; from then on it is restarted whenever it dies.

        Raises :class:`ChildFailed` if this first start does not come up: a
        child that cannot start at all is a configuration error, not a crash.
        """
        child = await self._spawn(spec)
        self.children.append(child)
        self._watchers.append(asyncio.create_task(self._watch(child), name=f"watch {spec.name}"))
        return child

    async def _spawn(self, spec: ChildSpec) -> Child:
        process = await asyncio.create_subprocess_exec(
            *spec.command(),
            stdout=asyncio.subprocess.PIPE,
            env=dict(spec.env) if spec.env is not None else None,
            preexec_fn=die_with_parent,
            pass_fds=spec.pass_fds,
        )
        child = Child(spec, process, time.monotonic())
        try:
            line = await asyncio.wait_for(self._ready_line(process, spec.ready_marker), READY_TIMEOUT)
        except (TimeoutError, ChildFailed) as exc:
            await _end(process)
            raise ChildFailed(f"{spec.name} did not start: {exc or 'no readiness line in time'}") from exc
        except BaseException:  # cancelled by stop(): no child may be left behind
            await _end(process)
            raise
        child.address = spec.on_ready(line) if spec.on_ready is not None else None
        where = f" on {child.address}" if child.address else ""
        self._say(f"{spec.name} pid {process.pid}{where}")
        copier = asyncio.create_task(self._pass_on(child))
        self._copiers.add(copier)
        copier.add_done_callback(self._copiers.discard)
        return child

    @staticmethod
    async def _ready_line(process: asyncio.subprocess.Process, marker: str) -> str:
        assert process.stdout is not None
        seen = []
        while line := await process.stdout.readline():
            text = line.decode(errors="replace").strip()
            if marker in text:
                return text
            seen.append(text)
        raise ChildFailed(" / ".join([*seen, f"exited with code {await process.wait()}"]))

    async def _pass_on(self, child: Child) -> None:
        """Copy the child's further stdout lines to ours until it exits."""
        stdout = child.process.stdout
        assert stdout is not None
        while line := await stdout.readline():
            self._say(f"{child.spec.name}: {line.decode(errors='replace').rstrip()}")

    async def _watch(self, child: Child) -> None:
        backoff = self._backoff()
        while True:
            code = await child.process.wait()
            if self._stopping:
                return
            delay = backoff.after_exit(time.monotonic() - child.started_at)
            self._say(f"{child.spec.name} exited with code {code}; restarting in {delay:g} s", to_err=True)
            while True:
                await asyncio.sleep(delay)
                try:
                    fresh = await self._spawn(child.spec)
                    break
                except ChildFailed as exc:
                    delay = backoff.after_exit(0.0)
                    self._say(f"{exc}; retrying in {delay:g} s", to_err=True)
            child.process, child.started_at, child.address = fresh.process, fresh.started_at, fresh.address
            child.restarts += 1

    async def stop(self) -> None:
        """Stop restarting, then SIGTERM every child (SIGKILL after 10 s) and wait for them."""
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        for task in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(_end(child.process) for child in self.children))
        for copier in list(self._copiers):  # they end with their child's stdout
            with contextlib.suppress(asyncio.CancelledError):
                await copier


async def _end(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
