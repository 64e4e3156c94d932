"""`cargohold health`, `scrub`, `rebalance` and `worker-settings`: watching and steering self-healing.

``health`` answers "is my data safe?" in one screen: how many objects and
parts have every share, how many miss some (and how many), how many cannot
be read at all, the bytes repair still has to rebuild, nodes by state and the
fill spread that rebalance evens out. ``scrub --now`` and ``rebalance --now``
start that work at once instead of at its next scheduled time, and
``worker-settings`` shows or changes the workers' throttles while they run.
All of these are admin calls (see docs: the healing API).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.table import Column, Table

from cargohold.cli.client import KeyOpt, PlainOpt, UrlOpt, _gateway
from cargohold.cli.jobs import fetch_jobs, show_jobs
from cargohold.cli.output import Col, plain_line, print_table
from cargohold.cli.transfer import parse_size
from cargohold.domain.jobs import KIND_GROUPS

NODE_STATES = ("up", "down", "lost", "draining", "retired")
#: Node states that call for attention when any node is in them.
_BAD_NODE_STATES = {"down": "red", "lost": "red", "draining": "yellow"}
BANDWIDTHS = ("repair_bandwidth", "rebalance_bandwidth", "scrub_bandwidth")
_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))
_UNLIMITED = {"0", "unlimited", "none", "off"}

# ---------------------------------------------------------------- health


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _n(value: int, style: str | None = None) -> str:
    text = f"{value:,}"
    return f"[{style}]{text}[/]" if style and value else text


def _degraded(parts: dict[str, Any]) -> tuple[int, str]:
    """Total degraded parts, and ``3 missing 1 share, 1 missing 2`` (by missing shares)."""
    raw = parts.get("degraded")
    by_missing = (
        {int(k): _count(v) for k, v in raw.items() if str(k).isdigit()} if isinstance(raw, dict) else {}
    )
    detail = [
        f"{count:,} missing {missing} share{'s' if missing != 1 else ''}"
        for missing, count in sorted(by_missing.items())
        if count
    ]
    return sum(by_missing.values()), ", ".join(detail)


def verdict(report: dict[str, Any]) -> str:
    """One line a person reads first: safe, healing, or losing data."""
    objects = report.get("objects") or {}
    parts = report.get("parts") or {}
    unreadable = _count(objects.get("unreadable")) or _count(parts.get("unreadable"))
    degraded = _count(objects.get("degraded")) or _degraded(parts)[0]
    if unreadable:
        return f"[red]unreadable: {unreadable:,} object(s) or part(s) cannot be read until nodes return[/]"
    if degraded:
        return f"[yellow]degraded: {degraded:,} object(s) miss shares; repair rebuilds them[/]"
    return "[green]healthy: every object has all its shares[/]"


def health_lines(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(topic, Rich text) rows of the health table."""
    objects = report.get("objects") or {}
    parts = report.get("parts") or {}
    nodes = report.get("nodes") or {}
    jobs = report.get("jobs") or {}
    degraded_parts, by_missing = _degraded(parts)
    part_text = (
        f"{_n(_count(parts.get('total')))} total · {_n(_count(parts.get('healthy')))} healthy · "
        f"{_n(degraded_parts, 'yellow')} degraded"
    )
    if by_missing:
        part_text += f" ({by_missing})"
    part_text += f" · {_n(_count(parts.get('unreadable')), 'red')} unreadable"
    if "not_zone_safe" in parts:
        part_text += f" · {_n(_count(parts.get('not_zone_safe')), 'yellow')} not zone-safe"
    spread = report.get("fill_spread")
    spread_text = f"{spread:.1f} points" if isinstance(spread, int | float) else "-"
    return [
        (
            "objects",
            f"{_n(_count(objects.get('total')))} total · {_n(_count(objects.get('healthy')))} healthy · "
            f"{_n(_count(objects.get('degraded')), 'yellow')} degraded · "
            f"{_n(_count(objects.get('unreadable')), 'red')} unreadable",
        ),
        ("parts", part_text),
        ("repair", f"{decimal(_count(report.get('repair_waiting_bytes')))} waiting"),
        (
            "nodes",
            " · ".join(f"{_n(_count(nodes.get(s)), _BAD_NODE_STATES.get(s))} {s}" for s in NODE_STATES),
        ),
        ("fill spread", spread_text),
        (
            "jobs",
            " · ".join(
                f"{_n(_count(jobs.get(s)), 'red' if s == 'failed' else None)} {s}"
                for s in ("queued", "running", "failed")
            ),
        ),
    ]


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, object]]:
    """``{"parts": {"degraded": {"1": 3}}}`` -> ``("parts.degraded.1", 3)``, for --plain."""
    if isinstance(value, dict):
        for name, inner in value.items():
            yield from flatten(inner, f"{prefix}.{name}" if prefix else str(name))
    else:
        yield prefix, value


def health(plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Redundancy at a glance: healthy, degraded and unreadable objects, repair backlog, nodes (admin)."""
    with _gateway(url, key) as api:
        report = api.request_json("GET", "/api/v1/health")
    if plain:
        for name, value in flatten(report):
            typer.echo(plain_line((name, value)))
        return
    table = Table(Column(no_wrap=True), Column(overflow="fold"), box=None, show_header=False, pad_edge=False)
    for row in health_lines(report):
        table.add_row(*row)
    console = Console(highlight=False)
    console.print(verdict(report))
    console.print(table)


# ---------------------------------------------------------------- scrub, rebalance

NowOpt = Annotated[bool, typer.Option("--now", help="Start it now, instead of showing its recent jobs.")]


def _start_or_show(what: str, path: str, group: str, now: bool, url: str | None, key: str | None) -> None:
    with _gateway(url, key) as api:
        if not now:
            show_jobs(fetch_jobs(api, list(KIND_GROUPS[group]), [], 20), plain=False)
            return
        queued = _count(api.request_json("POST", path).get("queued"))
    typer.echo(f"{what} started: {queued} job(s) queued (`cargohold jobs --kind {group}` shows progress)")


def scrub(now: NowOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Verify every share's checksums on its node; with --now, start a full pass at once (admin)."""
    _start_or_show("scrub", "/api/v1/scrub", "scrub", now, url, key)


def rebalance(now: NowOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Move shares from the fullest to the emptiest nodes; with --now, start at once (admin)."""
    _start_or_show("rebalance", "/api/v1/rebalance", "rebalance", now, url, key)


# ---------------------------------------------------------------- worker settings


def parse_bandwidth(value: str) -> int:
    """``50MiB`` or ``50MiB/s`` (bytes per second), ``0`` or ``unlimited`` for no limit."""
    text = value.strip()
    if text.lower() in _UNLIMITED:
        return 0
    try:
        return parse_size(re.sub(r"\s*/\s*s$", "", text, flags=re.IGNORECASE))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: expected bytes per second such as 50MiB, 200MB/s or 0 (unlimited)"
        ) from None


def bandwidth_text(value: object) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        return "-"
    if value == 0:
        return "unlimited"
    for unit, size in _UNITS:
        if value >= size:
            return f"{round(value / size, 2):g} {unit}/s"
    return f"{value} B/s"


def _setting_rows(settings: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [(name.replace("_", " "), bandwidth_text(settings.get(name))) for name in BANDWIDTHS]
    concurrency = settings.get("concurrency")
    rows.append(("concurrency", f"{concurrency} jobs at once" if concurrency is not None else "-"))
    return rows


def _bandwidth_option(name: str, what: str) -> Any:
    return typer.Option(
        f"--{name}-bandwidth",
        parser=parse_bandwidth,
        metavar="RATE",
        help=f"Bytes/s {what} may use per worker (50MiB, 200MB/s; 0 = unlimited).",
        show_default=False,
    )


def worker_settings(
    repair: Annotated[int | None, _bandwidth_option("repair", "repair")] = None,
    rebalance: Annotated[int | None, _bandwidth_option("rebalance", "rebalance and drain")] = None,
    scrub: Annotated[int | None, _bandwidth_option("scrub", "scrub (per node)")] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Jobs a worker runs at once.", show_default=False),
    ] = None,
    plain: PlainOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Show the workers' throttles, or change them while they run (any subset of options) (admin)."""
    changes = {
        name: value
        for name, value in zip(
            (*BANDWIDTHS, "concurrency"), (repair, rebalance, scrub, concurrency), strict=True
        )
        if value is not None
    }
    with _gateway(url, key) as api:
        if changes:
            settings = api.request_json("PATCH", "/api/v1/worker/settings", json=changes)
        else:
            settings = api.request_json("GET", "/api/v1/worker/settings")
    if plain:
        for name in (*BANDWIDTHS, "concurrency"):
            typer.echo(plain_line((name, settings.get(name))))
        return
    print_table((Col("setting", no_wrap=True), Col("value", no_wrap=True)), _setting_rows(settings))


def register(app: typer.Typer) -> None:
    """Attach health, scrub, rebalance and worker-settings to the main app."""
    app.command("health")(health)
    app.command("scrub")(scrub)
    app.command("rebalance")(rebalance)
    app.command("worker-settings")(worker_settings)
