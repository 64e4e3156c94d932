"""``cargohold up``: a whole cluster in one command.

Starts N node processes (each its own process, so a second core does node
work beside the gateway and a dying node cannot take the gateway with it),
waits for each to announce its port, then runs the gateway in this process,
registers any node it does not know yet, and prints the URL and, on first
start, the admin key. Node ports are remembered so a restart finds every node
at the address the metadata store has for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cargohold.api.app import BOOTSTRAP, build_gateway
from cargohold.api.context import SERVICES
from cargohold.cli.children import die_with_parent, node_command
from cargohold.cli.clientconfig import write_client_config
from cargohold.config import Settings
from cargohold.serving import deadlines_for, serve_until_stopped

READY_TIMEOUT = 30.0


@dataclass
class NodeProcess:
    number: int
    data: Path
    process: asyncio.subprocess.Process
    url: str


def _remembered_port(data: Path) -> int:
    path = data / "port"
    return int(path.read_text()) if path.exists() else 0


async def start_node(
    number: int, data: Path, secret: str, zone: str = "default", log_format: str = "text"
) -> NodeProcess:
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {**os.environ, "CARGOHOLD_CLUSTER_SECRET": secret, "CARGOHOLD_LOG_FORMAT": log_format}
    process = await asyncio.create_subprocess_exec(
        *node_command(data, _remembered_port(data), zone),
        stdout=asyncio.subprocess.PIPE,
        env=env,
        preexec_fn=die_with_parent,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT)
    text = line.decode().strip()
    if " listening on " not in text:
        process.kill()
        raise RuntimeError(f"node {number} did not start: {text or 'no output'}")
    url = text.rsplit(" ", 1)[1]
    (data / "port").write_text(url.rsplit(":", 1)[1])
    return NodeProcess(number, data, process, url)


async def stop_nodes(nodes: list[NodeProcess]) -> None:
    for node in nodes:
        if node.process.returncode is None:
            node.process.terminate()
    for node in nodes:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(node.process.wait(), 10)
        if node.process.returncode is None:
            node.process.kill()


async def run_up(settings: Settings, tls: ssl.SSLContext | None = None) -> None:
    """Nodes listen on loopback only and speak plain HTTP; ``tls`` serves the gateway over HTTPS."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # the metadata, the cluster secret and every share live below
    secret = settings.cluster_secret or ""
    nodes = await asyncio.gather(
        *(
            start_node(n, data_dir / "nodes" / str(n), secret, log_format=settings.log_format)
            for n in range(1, settings.nodes + 1)
        )
    )
    app = build_gateway(settings)

    async def ready(url: str) -> None:
        registry = app[SERVICES].nodes
        known = {n.url for n in registry.nodes()}
        for node in nodes:
            if node.url not in known:
                await registry.add(node.url, "default")
        config_paths = [data_dir / "client.toml"]
        bootstrap = app[BOOTSTRAP]
        token = bootstrap.token
        print(f"cargohold is up: {url}  ({len(nodes)} nodes, layout {settings.layout})")
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
        print("API docs: " + url + "/docs   stop with Ctrl-C", flush=True)

    try:
        await serve_until_stopped(
            app,
            settings.host,
            settings.port,
            "gateway",
            ready,
            deadlines=deadlines_for(settings, "gateway"),
            ssl_context=tls,
        )
    finally:
        await stop_nodes(list(nodes))
