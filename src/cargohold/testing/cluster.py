"""A real cluster in subprocesses on loopback ports, for tests and the benchmark.

Every role runs as its own ``python -m cargohold`` process, exactly as an
operator would start it. Readiness is the "listening on" line each process
prints once its socket is bound (never a sleep).
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import text

from cargohold.cli.children import die_with_parent, node_command
from cargohold.metadata.db import make_engine

ADMIN_KEY = "CHTESTADMIN0000000.test-admin-secret-that-is-long-enough"
ADMIN_PASSWORD = "test-admin-password"
SECRET = "test-cluster-secret"


def _wait_for_line(process: subprocess.Popen[bytes], marker: str, timeout: float = 60.0) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline().decode(errors="replace")
            if not line and process.poll() is not None:
                break
            seen.append(line)
            if marker in line:
                return line.strip()
        elif process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"process did not print {marker!r}; output: {''.join(seen)!r}")


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc), in start order."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # Field 4 (ppid) and 22 (start time) follow the command name, which may hold spaces.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append((int(fields[19]), int(entry.name)))
    return [child for _, child in sorted(found)]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A server's certificate and key, and the CA file its clients should trust
    (``testing/tls.py`` makes throwaway ones)."""

    ca: Path
    cert: Path
    key: Path


@dataclass
class NodeProc:
    number: int
    data: Path
    zone: str
    capacity: int | None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    node_id: int | None = None
    tls: TlsFiles | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def share_files(self) -> list[Path]:
        return sorted(p for p in (self.data / "shares").rglob("*") if p.is_file())


@dataclass
class Cluster:
    root: Path
    node_count: int = 8
    db_url: str | None = None
    layout: str = "ec:5+2"
    env: dict[str, str] = field(default_factory=dict)
    #: Serve the gateway and the nodes over TLS with these files (nodes verified against ``tls.ca``).
    tls: TlsFiles | None = None
    #: Write each process's stderr (its log) to ``root/logs/<role>.log`` instead of inheriting it.
    capture_logs: bool = False
    nodes: list[NodeProc] = field(default_factory=list)
    gateway: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    url: str = ""
    #: When set, the gateway's stderr (its log) is appended to this file for tests to read.
    gateway_log: Path | None = None
    #: Zones of the nodes ``start`` creates, round-robin (node 1 in the first, ...).
    zones: tuple[str, ...] = ()
    #: The gateway's own zone (``--zone``).
    gateway_zone: str | None = None
    #: Gateway processes on the one port (``gateway --workers``); one saves CPU in most tests.
    gateway_workers: int = 1

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARGOHOLD_")}
        env.update(
            CARGOHOLD_CLUSTER_SECRET=SECRET,
            CARGOHOLD_ADMIN_KEY=ADMIN_KEY,
            CARGOHOLD_ADMIN_PASSWORD=ADMIN_PASSWORD,
            CARGOHOLD_HEALTH_INTERVAL="0.5",
            CARGOHOLD_NODE_TIMEOUT="5",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)
        return env

    def _spawn(self, cmd: list[str], log_name: str | None = None) -> subprocess.Popen[bytes]:
        stderr = None
        if log_name == "gateway" and self.gateway_log is not None:
            stderr = self.gateway_log.open("ab")
        elif self.capture_logs and log_name is not None:
            self.log_path(log_name).parent.mkdir(parents=True, exist_ok=True)
            stderr = self.log_path(log_name).open("ab")
        try:
            # Unbuffered: a buffered reader could take several lines at once and leave
            # _wait_for_line's select() waiting on a pipe already read (a gateway with
            # workers prints a line per worker before its own).
            return subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=self._env(),
                preexec_fn=die_with_parent,
                bufsize=0,
            )
        finally:
            if stderr is not None:
                stderr.close()

    def log_path(self, name: str) -> Path:
        """Where ``capture_logs`` writes a process's log: "gateway", "worker" or "node-N"."""
        return self.root / "logs" / f"{name}.log"

    def log_lines(self, name: str) -> list[str]:
        path = self.log_path(name)
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    @staticmethod
    def _tls_args(tls: TlsFiles | None) -> list[str]:
        return ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)] if tls else []

    # -- nodes --------------------------------------------------------------

    def add_node(
        self,
        zone: str = "default",
        capacity: int | None = None,
        register: bool = True,
        tls: TlsFiles | None = None,
    ) -> NodeProc:
        """Start (and register) one more node; ``tls`` overrides the cluster's certificate."""
        number = len(self.nodes) + 1
        node = NodeProc(number, self.root / "nodes" / str(number), zone, capacity, tls=tls or self.tls)
        self.nodes.append(node)
        self.start_node(node)
        if register and self.url:
            self.register(node)
        return node

    def start_node(self, node: NodeProc) -> None:
        node.data.mkdir(parents=True, exist_ok=True)
        command = node_command(node.data, node.port, node.zone, node.capacity) + self._tls_args(node.tls)
        node.process = self._spawn(command, f"node-{node.number}")
        line = _wait_for_line(node.process, "listening on")
        node.port = int(line.rsplit(":", 1)[1])

    def stop_node(self, node: NodeProc, kill: bool = False) -> None:
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            node.process.wait(10)
        node.process = None

    def register(self, node: NodeProc) -> None:
        reply = self.client().post("/api/v1/nodes", json={"url": node.url, "zone": node.zone})
        reply.raise_for_status()
        node.node_id = reply.json()["id"]

    # -- gateway ------------------------------------------------------------

    def start_gateway(self) -> None:
        """Start the gateway, on its previous port after a restart.

        That port was handed out by the kernel and may have gone to another
        process meanwhile (tests run in parallel): the gateway then starts on
        a fresh port and ``url`` follows it.
        """
        try:
            self._start_gateway(self._gateway_port())
        except RuntimeError:
            if not self.url:
                raise
            self._start_gateway(0)

    def _start_gateway(self, port: int) -> None:
        cmd = [sys.executable, "-m", "cargohold", "gateway", "--db", self.db, "--port", str(port)]
        cmd += ["--layout", self.layout, "--workers", str(self.gateway_workers)]
        if self.gateway_zone is not None:
            cmd += ["--zone", self.gateway_zone]
        if self.tls is not None:
            cmd += [*self._tls_args(self.tls), "--tls-ca", str(self.tls.ca)]
        self.gateway = self._spawn(cmd, "gateway")
        # A parent prepares the store, then starts its workers: two process start-ups in a row.
        # (A fresh PostgreSQL store's migrations alone took over 30 s on a machine at load 23.)
        timeout = 60.0 if self.gateway_workers == 1 else 120.0
        line = _wait_for_line(self.gateway, "gateway listening on", timeout)
        self.url = line.rsplit(" ", 1)[1]

    def spawn_gateway(
        self, zone: str | None = None, env: dict[str, str] | None = None, workers: int | None = None
    ) -> tuple[subprocess.Popen[bytes], str]:
        """One more gateway over the same metadata store and nodes; returns it and its URL.

        It runs ``workers`` processes (default: as many as the first gateway). The caller stops
        it (``terminate``); ``env`` adds settings for this one only.
        """
        count = self.gateway_workers if workers is None else workers
        cmd = [sys.executable, "-m", "cargohold", "gateway", "--db", self.db, "--port", "0"]
        cmd += ["--layout", self.layout, "--workers", str(count), *(["--zone", zone] if zone else [])]
        if self.tls is not None:
            cmd += [*self._tls_args(self.tls), "--tls-ca", str(self.tls.ca)]
        process = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            env={**self._env(), **(env or {})},
            preexec_fn=die_with_parent,
            bufsize=0,  # see _spawn
        )
        line = _wait_for_line(process, "gateway listening on", 60.0 if count == 1 else 120.0)
        return process, line.rsplit(" ", 1)[1]

    # -- worker -------------------------------------------------------------

    @property
    def db(self) -> str:
        return self.db_url or f"sqlite+aiosqlite:///{self.root / 'meta.db'}"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of one read-only SQL statement against the cluster's metadata store (either engine)."""

        async def run() -> list[tuple[Any, ...]]:
            engine = make_engine(self.db)
            try:
                async with engine.connect() as conn:
                    return [tuple(row) for row in await conn.execute(text(sql))]
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def _worker_command(self, *args: str) -> list[str]:
        tls = ["--tls-ca", str(self.tls.ca)] if self.tls is not None else []
        return [sys.executable, "-m", "cargohold", "worker", "--db", self.db, *tls, *args]

    @staticmethod
    def _once_args(kinds: tuple[str, ...]) -> list[str]:
        args = ["--once"]
        for kind in kinds:
            args += ["--kind", kind]
        return args

    def run_worker_once(self, *kinds: str, timeout: float = 120.0) -> str:
        """Run ``cargohold worker --once [--kind K ...]`` to completion; return its stdout."""
        done = subprocess.run(
            self._worker_command(*self._once_args(kinds)),
            capture_output=True,
            env=self._env(),
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"worker --once failed ({done.returncode}): {done.stderr.decode()[-4000:]}")
        return done.stdout.decode()

    def spawn_worker_once(self, *kinds: str, output: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
        """``worker --once`` in the background, for callers that watch it (pid, timing) while it runs.

        Its stdout and log go to ``output`` (discarded without one); the caller waits for it.
        """
        sink = output if output is not None else subprocess.DEVNULL
        return subprocess.Popen(
            self._worker_command(*self._once_args(kinds)),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=self._env(),
            preexec_fn=die_with_parent,
        )

    def start_worker(self, metrics: bool = False) -> str | None:
        """A long-running worker process, as `up` runs one; with ``metrics``, the URL of its /metrics."""
        command = self._worker_command(*(["--metrics-port", "0"] if metrics else []))
        self.worker = self._spawn(command, "worker")
        found = _wait_for_line(self.worker, "worker metrics on").rsplit(" ", 1)[1] if metrics else None
        _wait_for_line(self.worker, "worker running")
        return found

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            self.worker.wait(15)
        self.worker = None

    def gateway_pids(self) -> list[int]:
        """The processes that serve requests: the gateway, or the workers its parent runs."""
        assert self.gateway is not None
        if self.gateway_workers == 1:
            return [self.gateway.pid]
        return children_of(self.gateway.pid)

    def _gateway_port(self) -> int:
        return int(self.url.rsplit(":", 1)[1]) if self.url else 0

    def stop_gateway(self) -> None:
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.terminate()
            self.gateway.wait(15)
        self.gateway = None

    # -- whole cluster ----------------------------------------------------------

    def start(self) -> Cluster:
        self.root.mkdir(parents=True, exist_ok=True)
        for number in range(self.node_count):
            zone = self.zones[number % len(self.zones)] if self.zones else "default"
            self.add_node(zone=zone, register=False)
        self.start_gateway()
        for node in self.nodes:
            self.register(node)
        if self.gateway_workers > 1:
            self.wait_for(self._workers_see_every_node, timeout=30)
        return self

    def _workers_see_every_node(self) -> bool:
        """Each worker's registry holds every node up (one registered them; the others reload it)."""
        views: dict[str, int] = {}
        for _ in range(8 * self.gateway_workers):
            with self.client() as fresh:  # a new connection: the kernel picks the worker
                reply = fresh.get("/api/v1/nodes")
                healthy = sum(1 for n in reply.json()["nodes"] if n["healthy"])
                views[reply.headers["X-Gateway-Worker"]] = healthy
        return len(views) == self.gateway_workers and set(views.values()) == {len(self.nodes)}

    def stop(self) -> None:
        self.stop_worker()
        self.stop_gateway()
        for node in self.nodes:
            self.stop_node(node)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, key: str | None = ADMIN_KEY, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        verify: ssl.SSLContext | bool = True
        if self.tls is not None:
            verify = ssl.create_default_context(cafile=str(self.tls.ca))
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout, verify=verify)

    def wait_for(self, predicate, timeout: float = 10.0, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
        """Poll ``predicate`` until it is true (readiness without sleeps of fixed length)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(interval)
        raise TimeoutError("condition not met in time")
