"""`cargohold import` (have the cluster fetch a URL) and `cargohold imports` (list, show, cancel).

The transfer runs in a worker, not here: `import` asks for it and returns, or
with ``--wait`` follows it with a progress bar until it is UPLOADED (exit 0)
or FAILED/DELETED (exit 1). The bar is fed by the caller's event stream
(``GET /api/v1/events?type=import.*``), opened before the import is asked
for, so not one of its events is missed; a gateway without the stream is
polled once a second instead. Leaving with Ctrl-C leaves the import running.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from cargohold.cli.api_client import ApiError, GatewayClient
from cargohold.cli.client import (
    KeyOpt,
    ObjectArg,
    PlainOpt,
    QuietOpt,
    UrlOpt,
    _esc,
    _fail,
    _gateway,
    _progress,
    _size,
    _when,
    group_main,
    group_options,
    parse_bucket,
)
from cargohold.cli.output import Col, show_rows

IMPORTS = "/api/v1/imports"
EVENTS = "/api/v1/events"
STATUSES = ("PENDING", "LOADING", "UPLOADED", "FAILED", "DELETED")
FINAL = ("UPLOADED", "FAILED", "DELETED")
#: The events that end an import.
LAST_EVENTS = ("import.completed", "import.failed", "import.cancelled")
#: Seconds between looks at an import being followed without an event stream.
POLL = 1.0

imports_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)

ImportArg = Annotated[
    str, typer.Argument(metavar="ID", help="Import id, as printed by `import` or shown by `imports list`.")
]


def _import_path(import_id: str) -> str:
    return f"{IMPORTS}/{import_id}"


def _percent(record: dict[str, Any]) -> str:
    value = record.get("uploaded_percentage")
    return f"{value:.1f}%" if isinstance(value, int | float) else "-"


def _error(record: dict[str, Any]) -> tuple[str, str]:
    error = record.get("error") or {}
    return str(error.get("code") or record.get("status", "failed")).lower(), str(error.get("message") or "")


def import_(
    source: Annotated[str, typer.Argument(metavar="URL", help="http:// or https:// URL of the file.")],
    target: ObjectArg,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the import with a progress bar until it ends.")
    ] = False,
    sha256: Annotated[
        str | None,
        typer.Option("--sha256", metavar="HEX", help="Expected SHA-256 of the file.", show_default=False),
    ] = None,
    md5: Annotated[
        str | None, typer.Option("--md5", metavar="HEX", help="Expected MD5 of the file.", show_default=False)
    ] = None,
    content_type: Annotated[
        str | None,
        typer.Option(
            "--content-type", help="Media type to store (default: the source's).", show_default=False
        ),
    ] = None,
    quiet: QuietOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Have the cluster fetch URL into BUCKET/KEY in the background (a worker does the transfer)."""
    body: dict[str, Any] = {"source": source, "bucket": target.bucket, "key": target.key}
    for name, value in (("expected_sha256", sha256), ("expected_md5", md5), ("content_type", content_type)):
        if value is not None:
            body[name] = value
    with _gateway(url, key) as api:
        if not wait:
            record = api.request_json("POST", IMPORTS, json=body)
            typer.echo(f"import {record['id']} {record.get('status')}: {source} -> {target}")
            return
        with _event_stream(api) as events:
            record = api.request_json("POST", IMPORTS, json=body)
            import_id = str(record["id"])
            record = _follow(api, record, str(target), quiet, events)
    if record.get("status") != "UPLOADED":
        code, message = _error(record)
        _fail(code, message or f"import {import_id} ended {record.get('status')}")
    if not quiet:
        typer.echo(
            f"imported {target} ({_size(record.get('size'))}, version {record.get('version_id')},"
            f" import {import_id})"
        )


@contextlib.contextmanager
def _event_stream(api: GatewayClient) -> Iterator[Iterator[dict[str, Any] | None] | None]:
    """The caller's import events as they are committed (None where the gateway has no stream).

    The stream is open (its first line read) when this yields: whatever
    happens afterwards arrives on it. It yields an event's document, or
    None for a heartbeat (a quiet stream: time to look at the import).
    """
    try:
        with api.open_stream(EVENTS, {"type": "import.*"}) as lines:
            next(lines, None)  # "retry: ...": the stream is established
            yield _sse_events(lines)
    except ApiError as exc:
        if exc.status != 404:
            raise
        yield None


def _sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any] | None]:
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif line.startswith(":"):
            yield None  # a heartbeat
        elif not line and data:
            yield json.loads("".join(data))
            data = []


def _follow(
    api: GatewayClient,
    record: dict[str, Any],
    label: str,
    quiet: bool,
    events: Iterator[dict[str, Any] | None] | None,
) -> dict[str, Any]:
    """Move a progress bar with the import's events (or by polling it) until it is over."""
    import_id = str(record["id"])
    with _progress(quiet) as progress:
        task = progress.add_task(label, total=None)

        def show(status: Any, size: Any, done: Any) -> None:
            progress.update(
                task,
                total=size if isinstance(size, int) else None,
                completed=int(done or 0),
                description=f"{label} [{status}]",
            )

        try:
            for event in events or ():
                if event is None:  # quiet for a while: the import may have ended unseen
                    record = api.request_json("GET", _import_path(import_id))
                    if record.get("status") in FINAL:
                        return record
                    continue
                detail = event.get("detail") or {}
                if detail.get("import_id") != import_id:
                    continue
                show(detail.get("status"), event.get("size"), detail.get("bytes_done"))
                if event.get("type") in LAST_EVENTS:
                    break
            record = api.request_json("GET", _import_path(import_id))
            while record.get("status") not in FINAL:  # no stream, or it ended early: poll
                show(record.get("status"), record.get("size"), record.get("bytes_done"))
                time.sleep(POLL)
                record = api.request_json("GET", _import_path(import_id))
            return record
        except KeyboardInterrupt:
            progress.stop()
            typer.echo(
                f"stopped following; import {import_id} goes on (`cargohold imports show {import_id}`)",
                err=True,
            )
            raise typer.Exit(130) from None


# -- imports list | show | cancel ------------------------------------------------------------

_COLUMNS = (
    Col("id", no_wrap=True),
    Col("object", overflow="fold"),
    Col("status", no_wrap=True),
    Col("progress", justify="right", no_wrap=True),
    Col("size", justify="right", no_wrap=True),
    Col("created", no_wrap=True),
)


def _fields(r: dict[str, Any]) -> tuple[object, ...]:
    return (r.get("id"), f"{r.get('bucket')}/{r.get('key')}", r.get("status"),
            r.get("uploaded_percentage"), r.get("size"), r.get("created_at"))  # fmt: skip


def _cells(r: dict[str, Any]) -> tuple[str, ...]:
    return (
        _esc(str(r.get("id", "-"))),
        _esc(f"{r.get('bucket')}/{r.get('key')}"),
        _esc(str(r.get("status", "-"))),
        _percent(r),
        _size(r.get("size")),
        _when(r.get("created_at")),
    )


def _show(r: dict[str, Any]) -> None:
    rate = r.get("rate")
    eta = r.get("eta_seconds")
    lines = [
        ("import", r.get("id")),
        ("source", r.get("source")),
        ("object", f"{r.get('bucket')}/{r.get('key')}"),
        ("owner", r.get("owner")),
        ("status", r.get("status")),
        ("size", f"{r['size']} ({_size(r['size'])})" if isinstance(r.get("size"), int) else "unknown"),
        ("done", f"{r.get('bytes_done')} ({_size(r.get('bytes_done'))}), {_percent(r)}"),
        ("rate", f"{_size(int(rate))}/s" if isinstance(rate, int | float) else "-"),
        ("time left", f"{eta:.0f} s" if isinstance(eta, int | float) else "-"),
        ("connections", f"{r.get('attempts')} ({r.get('resumes')} resumed, {r.get('restarts')} restarted)"),
        ("version", r.get("version_id")),
        ("created", _when(r.get("created_at"))),
        ("finished", _when(r.get("finished_at"))),
    ]
    if r.get("error"):
        code, message = _error(r)
        lines.append(("error", f"{code}: {message}"))
    for label, value in lines:
        typer.echo(f"{label + ':':<14}{'-' if value is None else value}")


def _status(value: str) -> str:
    upper = value.upper()
    if upper not in STATUSES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(STATUSES)}")
    return upper


@imports_app.callback()
def imports_main(ctx: typer.Context, plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Background imports. Without a sub-command: the same as `imports list`."""
    group_main(ctx, url, key, lambda: imports_list(ctx, None, None, plain, url, key))


@imports_app.command("list")
def imports_list(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", parser=_status, help="Only imports in this status (repeatable)."),
    ] = None,
    bucket: Annotated[
        str | None, typer.Option("--bucket", parser=parse_bucket, help="Only imports into this bucket.")
    ] = None,
    plain: PlainOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """List your imports, newest first (admins: everyone's): id, object, status, progress, size."""
    params: dict[str, str] = {}
    if status:
        params["status"] = ",".join(status)
    if bucket:
        params["bucket"] = bucket
    with _gateway(*group_options(ctx, url, key)) as api:
        found = api.collect(IMPORTS, "imports", params, 1000, cursor="cursor", page_max=1000)
    show_rows(_COLUMNS, found, plain=plain, fields=_fields, cells=_cells, empty="no imports")


@imports_app.command("show")
def imports_show(ctx: typer.Context, import_id: ImportArg, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Show one import: source, status, bytes done, rate, time left, and why it failed."""
    with _gateway(*group_options(ctx, url, key)) as api:
        _show(api.request_json("GET", _import_path(import_id)))


@imports_app.command("cancel")
def imports_cancel(ctx: typer.Context, import_id: ImportArg, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Cancel an import: it stops within a second or two and what it stored is freed."""
    with _gateway(*group_options(ctx, url, key)) as api:
        record = api.request_json("DELETE", _import_path(import_id))
    typer.echo(f"cancelled import {import_id} ({record.get('bucket')}/{record.get('key')})")


def register(app: typer.Typer) -> None:
    """Attach `import` and the `imports` group to the main app."""
    app.command("import")(import_)
    app.add_typer(imports_app, name="imports", help="List, show and cancel background imports.")
