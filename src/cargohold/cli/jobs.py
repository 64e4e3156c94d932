"""`cargohold jobs`: the background work of the cluster (repair, scrub, rebalance, drain, gc).

Each job shows how far it got (bytes done of its total, when known), how fast
it went, how many errors it met, and when it started and finished, so an
operator sees a heal progress instead of guessing. ``--kind`` takes either a
job kind as the API names it (``repair_part``) or one of the worker's groups
(``repair`` = lost_node + repair_part), the names ``cargohold worker --kind``
uses. Jobs come newest first; the gateway's pages are followed up to ``--limit``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.filesize import decimal

from cargohold.cli.api_client import GatewayClient
from cargohold.cli.client import KeyOpt, PlainOpt, UrlOpt, _esc, _gateway, _when
from cargohold.cli.output import Col, show_rows
from cargohold.domain.jobs import ALL_KINDS, KIND_GROUPS

JOB_STATES = ("queued", "running", "done", "failed")
#: What one request to the gateway may return (its maximum page size).
PAGE_MAX = 1000
_STATE_STYLES = {"queued": "cyan", "running": "yellow", "done": "green", "failed": "red"}
LAST_ERROR_WIDTH = 60


def parse_kind(value: str) -> str:
    """A job kind (repair_part) or a worker group (repair); returned as given, checked."""
    if value not in ALL_KINDS and value not in KIND_GROUPS:
        choices = ", ".join(dict.fromkeys([*KIND_GROUPS, *ALL_KINDS]))
        raise typer.BadParameter(f"{value!r} is not a kind of job; choose from {choices}")
    return value


def parse_state(value: str) -> str:
    if value not in JOB_STATES:
        raise typer.BadParameter(f"{value!r} is not a job state; choose from {', '.join(JOB_STATES)}")
    return value


def job_kinds(names: list[str]) -> list[str]:
    """The API's job kinds for ``--kind`` values, groups expanded, each once, in order."""
    kinds: list[str] = []
    for name in names:
        for kind in KIND_GROUPS.get(name, (name,)):
            if kind not in kinds:
                kinds.append(kind)
    return kinds


def fetch_jobs(api: GatewayClient, kinds: list[str], states: list[str], limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` jobs, newest first, following the ``before`` cursor across pages."""
    params = {"kind": ",".join(kinds), "state": ",".join(states)}
    params = {name: value for name, value in params.items() if value}
    return api.collect("/api/v1/jobs", "jobs", params, limit, cursor="before", page_max=PAGE_MAX)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def progress_text(done: object, total: object) -> str:
    """``12.3 MB / 50.0 MB (24.6%)``; the bytes alone while the total is unknown."""
    done_n, total_n = _number(done), _number(total)
    if done_n is None or (total_n is None and done_n == 0):
        return "-"
    if total_n is None:
        return decimal(int(done_n))
    if total_n <= 0:
        return f"{decimal(int(done_n))} / {decimal(int(total_n))}"
    percent = min(done_n / total_n * 100, 100.0)
    return f"{decimal(int(done_n))} / {decimal(int(total_n))} ({percent:.1f}%)"


def rate_text(rate: object) -> str:
    value = _number(rate)
    return f"{decimal(int(value))}/s" if value is not None and value > 0 else "-"


def target_text(payload: object) -> str:
    """What a job works on, from its payload: a node, a part, or the whole cluster."""
    if not isinstance(payload, dict):
        return "-"
    if "node_id" in payload:
        return f"node {payload['node_id']}"
    if "part_id" in payload:
        return f"part {payload['part_id']}"
    return "-"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _errors_cell(job: dict[str, Any]) -> str:
    errors = job.get("errors") or 0
    last = job.get("last_error")
    if not errors and not last:
        return "0"
    text = str(errors)
    if last:
        short = _one_line(last)
        if len(short) > LAST_ERROR_WIDTH:
            short = short[: LAST_ERROR_WIDTH - 1] + "…"
        text += f" {short}"
    return f"[red]{_esc(text)}[/]"


JOB_COLUMNS = (
    Col("id", justify="right", no_wrap=True),
    Col("kind", no_wrap=True),
    Col("target", overflow="fold"),
    Col("state", no_wrap=True),
    Col("progress", justify="right", no_wrap=True),
    Col("rate", justify="right", no_wrap=True),
    Col("errors", overflow="fold"),
    Col("started", no_wrap=True),
    Col("finished", no_wrap=True),
)


def job_fields(job: dict[str, Any]) -> tuple[object, ...]:
    """Plain: id kind target state progress_bytes total_bytes rate errors started finished last_error."""
    last = job.get("last_error")
    return (
        job.get("id"),
        job.get("kind"),
        target_text(job.get("payload")),
        job.get("state"),
        job.get("progress_bytes"),
        job.get("total_bytes"),
        job.get("rate"),
        job.get("errors"),
        job.get("started_at"),
        job.get("finished_at"),
        _one_line(last) if last else None,
    )


def job_cells(job: dict[str, Any]) -> tuple[str, ...]:
    state = str(job.get("state", "-"))
    style = _STATE_STYLES.get(state)
    return (
        _esc(str(job.get("id", "-"))),
        _esc(str(job.get("kind", "-"))),
        _esc(target_text(job.get("payload"))),
        f"[{style}]{_esc(state)}[/]" if style else _esc(state),
        progress_text(job.get("progress_bytes"), job.get("total_bytes")),
        rate_text(job.get("rate")),
        _errors_cell(job),
        _when(job.get("started_at")),
        _when(job.get("finished_at")),
    )


def show_jobs(jobs: list[dict[str, Any]], plain: bool) -> None:
    show_rows(JOB_COLUMNS, jobs, plain=plain, fields=job_fields, cells=job_cells, empty="no jobs")


def jobs(
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            parser=parse_kind,
            metavar="KIND",
            help="Only this kind (repeatable): repair, scrub, rebalance, drain, gc, or a job kind "
            "such as repair_part.",
        ),
    ] = None,
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state", parser=parse_state, metavar="STATE", help="Only jobs queued, running, done or failed."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many jobs.")] = 50,
    plain: PlainOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Background jobs, newest first: kind, state, progress, rate, errors, started and finished (admin)."""
    with _gateway(url, key) as api:
        found = fetch_jobs(api, job_kinds(kind or []), list(dict.fromkeys(state or [])), limit)
    show_jobs(found, plain)


def register(app: typer.Typer) -> None:
    """Attach the `jobs` command to the main app."""
    app.command("jobs")(jobs)
