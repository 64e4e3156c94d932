"""``cargohold up``: a whole cluster in one command.

Starts N node processes (each its own process, so node work runs beside the
gateway and a dying node cannot take the gateway with it), waits for each to
announce its port, migrates the metadata store, registers any node it does
not know yet and creates the first admin, then starts the gateway workers
(one per core by default, all on one port: ``cli/gateways.py``) and prints
the URL and, on first start, the admin key. ``--gateways N`` runs N such
gateways over the one metadata store, on consecutive ports, each with its
workers, as N hosts behind a load balancer would. Node ports are remembered so a
restart finds every node at the address the metadata store has for it. Once
the gateway is up, one worker process (``cargohold worker``) repairs, scrubs,
rebalances and drains. Every child is supervised (``cli/supervisor.py``):
one that dies is started again (a node on the same port, a gateway worker on
the same socket), with backoff, and ``up`` says so on stderr.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from cargohold.cli.children import node_command
from cargohold.cli.clientconfig import S3_REGION, aws_profile_snippet, write_client_config
from cargohold.cli.gateways import (
    Gateway,
    default_workers,
    listening_sockets,
    prepare,
    start_gateways,
    until_stopped,
)
from cargohold.cli.supervisor import ChildSpec, Supervisor
from cargohold.config import Settings
from cargohold.service.accounts import Bootstrap


def _remembered_port(data: Path) -> int:
    path = data / "port"
    return int(path.read_text()) if path.exists() else 0


def node_spec(
    number: int, data: Path, secret: str, zone: str = "default", log_format: str = "text"
) -> ChildSpec:
    """Node ``number`` under ``data``: started on its remembered port, which it keeps across restarts."""

    def command() -> list[str]:
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        return node_command(data, _remembered_port(data), zone)

    def ready(line: str) -> str:
        url = line.rsplit(" ", 1)[1]
        (data / "port").write_text(url.rsplit(":", 1)[1])
        return url

    return ChildSpec(
        f"node {number}",
        command,
        " listening on ",
        env={**os.environ, "CARGOHOLD_CLUSTER_SECRET": secret, "CARGOHOLD_LOG_FORMAT": log_format},
        on_ready=ready,
    )


def gateway_ports(settings: Settings) -> list[int]:
    """Ports of the ``gateways`` gateways: ``--port``, ``--port``+1, … (all 0, any free port, for 0).

    Consecutive ports, so a load balancer can be pointed at a known list.
    """
    return [settings.port + n if settings.port else 0 for n in range(settings.gateways)]


def bind_gateways(settings: Settings, count: int) -> list[list[socket.socket]]:
    """``count`` listening sockets for each gateway (``cli/gateways.py``); all or none."""
    bound: list[list[socket.socket]] = []
    try:
        for port in gateway_ports(settings):
            bound.append(listening_sockets(settings.host, port, count))
    except BaseException:
        for sock in (s for group in bound for s in group):
            sock.close()
        raise
    return bound


def worker_spec(settings: Settings, secret: str) -> ChildSpec:
    """The worker that repairs, scrubs, rebalances and drains for this cluster.

    It reads everything else as ``up`` did: the CARGOHOLD_* environment and
    the --config file (``load_settings`` leaves its path in CARGOHOLD_CONFIG).
    """
    return ChildSpec(
        "worker",
        lambda: [sys.executable, "-m", "cargohold", "worker", "--db", settings.db_url],
        "worker running",
        env={**os.environ, "CARGOHOLD_CLUSTER_SECRET": secret, "CARGOHOLD_LOG_FORMAT": settings.log_format},
    )


async def run_up(settings: Settings) -> None:
    """Nodes listen on loopback only and speak plain HTTP; the gateway serves HTTPS given tls_cert."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # the metadata, the cluster secret and every share live below
    secret = settings.cluster_secret or ""
    count = default_workers(settings.gateway_workers)
    supervisor = Supervisor()
    bound = bind_gateways(settings, count)
    gateways: list[Gateway] = []
    try:
        nodes = await asyncio.gather(
            *(
                supervisor.start(
                    node_spec(n, data_dir / "nodes" / str(n), secret, log_format=settings.log_format)
                )
                for n in range(1, settings.nodes + 1)
            )
        )
        bootstrap = await prepare(settings, [node.address or "" for node in nodes])
        # Gateway 1 registers public_url for redirects; the others the URLs they listen on.
        for number, group in enumerate(bound, 1):
            name = "gateway" if len(bound) == 1 else f"gateway {number}"
            public_url = settings.public_url if number == 1 else None
            gateways.append(
                await start_gateways(supervisor, settings, group, name=name, public_url=public_url)
            )
        # After the gateways: the metadata store is migrated and the nodes are registered.
        await supervisor.start(worker_spec(settings, secret))
        if len(gateways) > 1:
            print(f"more gateways: {' '.join(g.url for g in gateways[1:])}  (one metadata store)")
        _show(settings, data_dir, gateways[0].url, len(nodes), len(gateways), count, bootstrap)
        await until_stopped()
    finally:
        await supervisor.stop()
        for sock in (s for group in bound for s in group):
            sock.close()
        for gateway in gateways:
            await gateway.close(settings)


def _show(
    settings: Settings,
    data_dir: Path,
    url: str,
    nodes: int,
    gateways: int,
    workers: int,
    bootstrap: Bootstrap,
) -> None:
    config_paths = [data_dir / "client.toml"]
    token = bootstrap.token
    serving = f"{workers} gateway workers" if gateways == 1 else f"{gateways} gateways of {workers} workers"
    print(f"cargohold is up: {url}  ({nodes} nodes, {serving}, a worker, layout {settings.layout})")
    print(f"web page: {url}/ui/  (sign in as admin)")
    if bootstrap.password:
        print(
            f"admin user: admin  password: {bootstrap.password}  (shown once; change it with"
            " `cargohold passwd`)"
        )
    if token:
        user_config = write_client_config(None, url, token)
        write_client_config(data_dir / "client.toml", url, token)
        config_paths.append(user_config)
        print(f"admin key: {token}")
        print(f"client config written to {', '.join(str(p) for p in config_paths)}")
    else:
        print(f"admin key: as printed at first start (saved in {data_dir / 'client.toml'})")
    print(f"S3 endpoint: {url}  (path-style; region {S3_REGION})")
    if bootstrap.s3_key:
        access_key_id, s3_secret = bootstrap.s3_key
        snippet = aws_profile_snippet(url, access_key_id, s3_secret)
        saved = data_dir / "aws-profile"
        saved.write_text(snippet)
        saved.chmod(0o600)
        print(f"admin S3 key: {access_key_id}  secret: {s3_secret}  (for ~/.aws, also in {saved}):")
        print(snippet, end="")
    else:
        print(f"admin S3 key: as printed at first start (saved in {data_dir / 'aws-profile'})")
    print("API docs: " + url + "/docs   stop with Ctrl-C", flush=True)
