"""Several gateway processes on one port: ``gateway --workers N`` and ``up``.

One Python process serves from one core (the GIL), so a gateway runs N
worker processes, by default one per core, under a parent that binds the
port, supervises them (``cli/supervisor.py``: a worker that dies is started
again, with backoff) and stops them all on SIGTERM or SIGINT. The workers
share nothing but the metadata store and the nodes; see ``api/limits.py``
for how they split the request budgets and ``service/auth.py`` for how
long another worker may trust a revoked key.

How the port is shared: the parent binds one ``SO_REUSEPORT`` listening
socket per worker, all on the same port, and each worker inherits its own.
Measured here with 16 keep-alive clients on two aiohttp/uvloop processes,
one socket shared by all workers (pre-fork, accept by whoever wakes first)
sent all 16 connections to one process in one trial of three, and 4/12 in
another, so one core did the work; the kernel's hash over per-worker
``SO_REUSEPORT`` sockets split them 7/9, 6/10, 7/9. Binding in the parent,
rather than in each worker, keeps the rest of what a pre-forked socket
gives: port 0 works (the first bind picks the port, the others join it), no
worker ever binds or closes the port, and a restarted worker takes over the
very socket its predecessor served, so connections queued for it wait for
the new process instead of being reset (they wait the restart delay, about
a second plus start-up; the other workers keep answering meanwhile).

Before any worker starts, the parent migrates the metadata store and
creates the first admin (``first_start``), so the workers do not race to
do it, and it prints what is shown once.

The workers are one gateway to the outside, and two things follow. They
register one URL for redirects, the port they share (``service/gateways.py``):
each heartbeats the same row, and the parent removes it once they have all
stopped. And ``/metrics`` answers for the whole gateway whichever worker
takes the scrape: the workers run prometheus-client's multiprocess mode,
each writing its samples to files in a directory the parent makes for them
(``PROMETHEUS_MULTIPROC_DIR``), and a scrape sums the files of every worker
(counters and histograms; node gauges take the most recent value,
``metrics.py``). A registry per worker would be wrong here: the kernel
hands each scrape to any of the N sockets, so successive scrapes would see
different workers' counters, which Prometheus reads as counter resets and
turns into nonsense rates, and N-1 workers' traffic would be missing from
every scrape. The files of a worker that died stay in the sum, so the
gateway's counters never go down when a worker is replaced; the directory
is made empty at each gateway start and removed at its stop, so counters
start from zero with the gateway, as a single process's would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cargohold.api.app import first_start
from cargohold.bootstrap import open_core
from cargohold.cli.supervisor import ChildSpec, Supervisor
from cargohold.config import Settings
from cargohold.service.accounts import Bootstrap
from cargohold.service.gateways import forget_gateway, registered_url
from cargohold.service.revocations import shared_counter

#: Connections the kernel queues per worker socket before refusing more.
BACKLOG = 1024


def default_workers(given: int) -> int:
    """``0`` (the default of ``gateway_workers``) means one worker per core."""
    return given if given > 0 else max(1, os.cpu_count() or 1)


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one address and port, for ``count`` workers (see module doc)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            address = sock.getsockname()  # port 0: the others join the port the first one got
            sock.listen(BACKLOG)
            sock.set_inheritable(True)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def url_of(sock: socket.socket, tls: bool) -> str:
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{host}:{port}"


def gateway_spec(
    settings: Settings,
    sock: socket.socket,
    number: int,
    count: int,
    shared_fd: int,
    *,
    metrics_dir: str,
    name: str = "gateway",
    public_url: str | None = None,
) -> ChildSpec:
    """Gateway worker ``number`` of ``count``, serving ``sock``, sharing the revocation counter.

    Its settings travel in the environment (a command line is visible to
    every user of the host, and the store URL may hold a password); the
    rest it reads as its parent did, from CARGOHOLD_* and the --config file
    (``load_settings`` leaves its path in CARGOHOLD_CONFIG). ``metrics_dir``
    is its gateway's multiprocess metrics directory (module doc); ``name``
    says which gateway it belongs to when ``up`` runs several, each of
    which registers its own ``public_url`` (none: the URL it listens on).
    """
    fd = sock.fileno()
    resolved = {
        "CARGOHOLD_DB": settings.db_url,
        "CARGOHOLD_CLUSTER_SECRET": settings.cluster_secret or "",
        "CARGOHOLD_LAYOUT": settings.layout,
        "CARGOHOLD_ZONE": settings.zone,
        "CARGOHOLD_LOG_FORMAT": settings.log_format,
        "CARGOHOLD_PUBLIC_URL": public_url or "",
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
    }
    for variable, path in (
        ("CARGOHOLD_TLS_CERT", settings.tls_cert),
        ("CARGOHOLD_TLS_KEY", settings.tls_key),
        ("CARGOHOLD_NODE_CA_FILE", settings.node_ca_file),
    ):
        if path is not None:
            resolved[variable] = str(Path(path).resolve())
    command = [sys.executable, "-m", "cargohold", "gateway", "--workers", str(count)]
    command += ["--listen-fd", str(fd), "--worker-number", str(number), "--shared-fd", str(shared_fd)]
    return ChildSpec(
        f"{name} {number}" if name == "gateway" else f"{name} worker {number}",
        lambda: command,
        "gateway listening on ",
        env={**os.environ, **resolved},
        on_ready=lambda line: line.rsplit(" ", 1)[1],
        pass_fds=(fd, shared_fd),
    )


async def prepare(settings: Settings, node_urls: Sequence[str] = ()) -> Bootstrap:
    """Migrate the store, register ``node_urls`` it does not know yet, create the first admin."""
    async with open_core(settings, monitor_nodes=False) as core:
        known = {node.url for node in core.nodes.nodes()}
        for url in node_urls:
            if url not in known:
                await core.nodes.add(url, "default")
        return await first_start(core, settings)


@dataclass(frozen=True, slots=True)
class Gateway:
    """One gateway's workers as started: its URL, and what is left to clean once they stopped."""

    url: str
    #: The URL its workers registered for redirects (None: not registered).
    registered: str | None
    metrics_dir: str

    async def close(self, settings: Settings) -> None:
        """After the supervisor stopped the workers: forget the registration, drop the metrics files."""
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        if self.registered is not None:
            try:
                await forget_gateway(settings.db_url, self.registered)
            except Exception as exc:  # the row ages out after three missed heartbeats anyway
                print(f"gateway {self.url} not unregistered: {exc}", file=sys.stderr, flush=True)


async def start_gateways(
    supervisor: Supervisor,
    settings: Settings,
    sockets: Sequence[socket.socket],
    *,
    name: str = "gateway",
    public_url: str | None = None,
) -> Gateway:
    """Start one worker per socket, all at once; raises if one does not come up.

    They share one revocation counter (``service/revocations.py``), which
    lives as long as the parent (it keeps the descriptor open), and one
    metrics directory (module doc). The caller stops the supervisor, then
    closes the returned :class:`Gateway`.
    """
    count = len(sockets)
    shared = shared_counter()
    metrics_dir = tempfile.mkdtemp(prefix="cargohold-metrics-")
    url = url_of(sockets[0], settings.tls_cert is not None)
    gateway = Gateway(url, registered_url(public_url, url), metrics_dir)
    try:
        await asyncio.gather(
            *(
                supervisor.start(
                    gateway_spec(
                        settings,
                        sock,
                        n,
                        count,
                        shared,
                        metrics_dir=metrics_dir,
                        name=name,
                        public_url=public_url,
                    )
                )
                for n, sock in enumerate(sockets, 1)
            )
        )
    except BaseException:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        raise
    return gateway


async def until_stopped() -> None:
    """Return on the first SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)


def announce(bootstrap: Bootstrap) -> None:
    """What a gateway shows once, on the store's first start."""
    if bootstrap.password:
        print(f"admin user: admin  password: {bootstrap.password}", flush=True)
    if bootstrap.token:
        print(f"admin key: {bootstrap.token}", flush=True)
    if bootstrap.s3_key:
        print(f"admin S3 key: {bootstrap.s3_key[0]}  secret: {bootstrap.s3_key[1]}", flush=True)


async def run_gateways(settings: Settings, count: int) -> None:
    """The parent of ``count`` gateway workers, until SIGINT or SIGTERM."""
    sockets = listening_sockets(settings.host, settings.port, count)
    supervisor = Supervisor()
    gateway: Gateway | None = None
    try:
        bootstrap = await prepare(settings)
        gateway = await start_gateways(supervisor, settings, sockets, public_url=settings.public_url)
        print(f"gateway: {count} workers", flush=True)
        print(f"gateway listening on {gateway.url}", flush=True)
        announce(bootstrap)
        await until_stopped()
    finally:
        print("gateway stopping", file=sys.stderr, flush=True)
        await supervisor.stop()
        for sock in sockets:
            sock.close()
        if gateway is not None:
            await gateway.close(settings)
