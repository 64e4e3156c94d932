"""Commands that run server roles: ``up`` (everything), ``gateway`` and ``node``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cargohold.config import Settings, load_settings

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file")]


class LogFormat(StrEnum):
    text = "text"
    json = "json"


LogFormatOpt = Annotated[
    LogFormat | None,
    typer.Option("--log-format", help="Log lines as text or JSON objects (or CARGOHOLD_LOG_FORMAT)"),
]
TlsCertOpt = Annotated[
    Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this PEM certificate (chain)")
]
TlsKeyOpt = Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert")]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="Gateway processes serving the port (or gateway_workers) [default: one per core]",
        min=1,
        max=256,
    ),
]
TlsCaOpt = Annotated[
    Path | None,
    typer.Option("--tls-ca", help="PEM CA that https:// node certificates must chain to (node_ca_file)"),
]


def _log_format(given: LogFormat | None) -> str | None:
    return given.value if given is not None else None


def _require_secret(settings: Settings) -> str:
    """The cluster secret a gateway, node or worker must be given (``up`` makes its own)."""
    if not settings.cluster_secret:
        raise typer.BadParameter("give --secret or CARGOHOLD_CLUSTER_SECRET", param_hint="--secret")
    return settings.cluster_secret


def _start_role(settings: Settings) -> None:
    """What every server role does first: owner-only files, and logging as configured."""
    from cargohold.logs import configure_logging

    os.umask(0o077)
    configure_logging(settings.log_format)


def _server_tls(settings: Settings):  # type: ignore[no-untyped-def]
    from cargohold.serving import server_ssl_context

    try:
        return server_ssl_context(settings.tls_cert, settings.tls_key)
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--tls-cert/--tls-key") from None


def register(app: typer.Typer) -> None:
    """Attach the role commands to the main app."""
    app.command(help="Start a whole local cluster: metadata store, N nodes and the gateway.")(up)
    app.command(help="Run a gateway against an existing metadata store and nodes.")(gateway)
    app.command(help="Run one storage node that keeps share files under --data.")(node)
    app.command(help="Run background work: repair, scrub, rebalance, drain, garbage collection, imports.")(
        worker
    )


def cluster_secret(data_dir: Path, given: str | None) -> str:
    """The secret gateways present to nodes; `up` keeps it in the data directory."""
    if given:
        return given
    path = data_dir / "cluster.secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


def up(
    data_dir: Annotated[Path | None, typer.Option(help="Data directory [default: ./.cargohold]")] = None,
    host: Annotated[str | None, typer.Option(help="Gateway address [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Gateway port [default: 8080]")] = None,
    nodes: Annotated[int | None, typer.Option(help="Storage nodes to run [default: 8]")] = None,
    gateways: Annotated[
        int | None,
        typer.Option(help="Gateways to run over one metadata store, on --port, --port+1, … [default: 1]"),
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="Metadata store URL (default: SQLite in the data directory)")
    ] = None,
    layout: Annotated[str | None, typer.Option(help="Default layout [default: ec:5+2]")] = None,
    workers: WorkersOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    log_format: LogFormatOpt = None,
    config: ConfigOpt = None,
) -> None:
    from cargohold.cli.up import run_up

    settings = load_settings(
        config,
        data_dir=data_dir,
        host=host,
        port=port,
        nodes=nodes,
        gateways=gateways,
        db=db,
        layout=layout,
        gateway_workers=workers,
        tls_cert=tls_cert,
        tls_key=tls_key,
        log_format=_log_format(log_format),
    )
    _start_role(settings)
    _server_tls(settings)  # a bad certificate stops `up` here, not in every gateway worker
    settings.cluster_secret = cluster_secret(settings.data_dir, settings.cluster_secret)
    _run(run_up(settings))


def gateway(
    db: Annotated[
        str | None,
        typer.Option(help="Metadata store URL (sqlite+aiosqlite:///… or postgresql+asyncpg://…)"),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (0: any free port)")] = None,
    secret: Annotated[str | None, typer.Option(help="Cluster secret (or CARGOHOLD_CLUSTER_SECRET)")] = None,
    layout: Annotated[str | None, typer.Option(help="Default layout for new buckets")] = None,
    zone: Annotated[str | None, typer.Option(help="Zone of this gateway")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Directory for the default SQLite store")] = None,
    workers: WorkersOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_ca: TlsCaOpt = None,
    log_format: LogFormatOpt = None,
    config: ConfigOpt = None,
    listen_fd: Annotated[int | None, typer.Option(hidden=True, help="Serve this inherited socket")] = None,
    worker_number: Annotated[int | None, typer.Option(hidden=True, help="This worker's number")] = None,
    shared_fd: Annotated[int | None, typer.Option(hidden=True, help="Revocation counter to map")] = None,
) -> None:
    """With --workers N > 1 this process binds the port and supervises N gateway processes
    (``cli/gateways.py``); with 1 it is the gateway. The hidden options start one of the N."""
    from cargohold.api.app import BOOTSTRAP, announce_gateway, build_gateway
    from cargohold.cli.gateways import announce, default_workers, run_gateways
    from cargohold.serving import serve_gateway

    settings = load_settings(
        config,
        db=db,
        host=host,
        port=port,
        cluster_secret=secret,
        layout=layout,
        zone=zone,
        data_dir=data_dir,
        gateway_workers=workers,
        tls_cert=tls_cert,
        tls_key=tls_key,
        node_ca_file=tls_ca,
        log_format=_log_format(log_format),
    )
    _require_secret(settings)
    _start_role(settings)
    tls = _server_tls(settings)
    count = default_workers(settings.gateway_workers)
    sock = None
    if listen_fd is not None:
        sock = socket.socket(fileno=listen_fd)
    elif count > 1:
        _run(run_gateways(settings, count))
        return
    app = build_gateway(settings, processes=count, worker=worker_number, shared_fd=shared_fd)

    async def ready(url: str) -> None:
        await announce_gateway(app, settings, url)
        announce(app[BOOTSTRAP])

    _run(serve_gateway(app, settings, ready, tls, sock))


def node(
    data: Annotated[Path, typer.Option(help="Directory for this node's share files")],
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port)")] = 0,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    zone: Annotated[str, typer.Option(help="Zone this node is in")] = "default",
    capacity: Annotated[int | None, typer.Option(help="Bytes this node may use [default: its disk]")] = None,
    secret: Annotated[str | None, typer.Option(help="Cluster secret (or CARGOHOLD_CLUSTER_SECRET)")] = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    log_format: LogFormatOpt = None,
    config: ConfigOpt = None,
) -> None:
    from cargohold.metrics_http import ScrapeAccess
    from cargohold.serving import deadlines_for
    from cargohold.storage.node_app import run_node

    settings = load_settings(
        config, cluster_secret=secret, tls_cert=tls_cert, tls_key=tls_key, log_format=_log_format(log_format)
    )
    secret = _require_secret(settings)
    _start_role(settings)
    tls = _server_tls(settings)
    with contextlib.suppress(KeyboardInterrupt):
        run_node(
            data,
            host,
            port,
            zone,
            capacity,
            secret,
            deadlines=deadlines_for(settings, "node"),
            ssl_context=tls,
            scrape=ScrapeAccess.from_settings(settings.metrics_token, settings.metrics_allow),
        )


WORK_KINDS = ("repair", "scrub", "rebalance", "drain", "gc", "imports")


def worker(
    db: Annotated[
        str | None,
        typer.Option(help="Metadata store URL (sqlite+aiosqlite:///… or postgresql+asyncpg://…)"),
    ] = None,
    secret: Annotated[str | None, typer.Option(help="Cluster secret (or CARGOHOLD_CLUSTER_SECRET)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Directory for the default SQLite store")] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Do the chosen work now, until none is left, then exit.")
    ] = False,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            help="With --once: only this kind of work (repeatable): " + ", ".join(WORK_KINDS),
            metavar="KIND",
        ),
    ] = None,
    tls_ca: TlsCaOpt = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve /metrics on this port (0: any free port; token or allow-list)"),
    ] = None,
    log_format: LogFormatOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Any number of workers may run beside any number of gateways; each job runs once."""
    for name in kind or ():
        if name not in WORK_KINDS:
            raise typer.BadParameter(f"{name!r} is not one of {', '.join(WORK_KINDS)}", param_hint="--kind")
    if kind and not once:
        raise typer.BadParameter(
            "--kind needs --once (a running worker does every kind)", param_hint="--kind"
        )
    settings = load_settings(
        config,
        db=db,
        cluster_secret=secret,
        data_dir=data_dir,
        node_ca_file=tls_ca,
        metrics_port=metrics_port,
        log_format=_log_format(log_format),
    )
    _require_secret(settings)
    _start_role(settings)
    from cargohold.workers.main import run_worker

    _run(run_worker(settings, once=once, kinds=tuple(kind or WORK_KINDS)))


def _run(main) -> None:  # type: ignore[no-untyped-def]
    from cargohold.concurrency import install_event_loop_policy

    install_event_loop_policy()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main)
