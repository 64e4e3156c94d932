"""``cargohold up``: a whole cluster in one command.

Starts N node processes (each its own process, so a second core does node
work beside the gateway and a dying node cannot take the gateway with it),
waits for each to announce its port, then runs the gateway in this process,
registers any node it does not know yet, and prints the URL and, on first
start, the admin key. Node ports are remembered so a restart finds every node
at the address the metadata store has for it. Once the gateway is up, one
worker process (``cargohold worker``) repairs, scrubs, rebalances and drains.
The children are supervised (``cli/supervisor.py``): one that dies is
started again (a node on the same port), with backoff, and ``up`` says so on
stderr.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from pathlib import Path

from cargohold.api.app import BOOTSTRAP, build_gateway
from cargohold.api.context import SERVICES
from cargohold.cli.children import node_command
from cargohold.cli.clientconfig import S3_REGION, aws_profile_snippet, write_client_config
from cargohold.cli.supervisor import ChildSpec, Supervisor
from cargohold.config import Settings
from cargohold.serving import serve_gateway


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


async def run_up(settings: Settings, tls: ssl.SSLContext | None = None) -> None:
    """Nodes listen on loopback only and speak plain HTTP; ``tls`` serves the gateway over HTTPS."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # the metadata, the cluster secret and every share live below
    secret = settings.cluster_secret or ""
    supervisor = Supervisor()
    try:
        nodes = await asyncio.gather(
            *(
                supervisor.start(
                    node_spec(n, data_dir / "nodes" / str(n), secret, log_format=settings.log_format)
                )
                for n in range(1, settings.nodes + 1)
            )
        )
        app = build_gateway(settings)
    except BaseException:
        await supervisor.stop()
        raise

    async def ready(url: str) -> None:
        registry = app[SERVICES].nodes
        known = {n.url for n in registry.nodes()}
        for node in nodes:
            if node.address not in known:
                await registry.add(node.address or "", "default")
        # After the gateway: the metadata store is migrated and the nodes are registered.
        await supervisor.start(worker_spec(settings, secret))
        config_paths = [data_dir / "client.toml"]
        bootstrap = app[BOOTSTRAP]
        token = bootstrap.token
        print(f"cargohold is up: {url}  ({len(nodes)} nodes, a worker, layout {settings.layout})")
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

    try:
        await serve_gateway(app, settings, ready, tls)
    finally:
        await supervisor.stop()
