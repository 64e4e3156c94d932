"""`cargohold uploads`: list open upload sessions, show one, abort one."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import typer

from cargohold.cli import transfer
from cargohold.cli.api_client import ClientError, GatewayClient
from cargohold.cli.client import (
    KeyOpt,
    PlainOpt,
    UrlOpt,
    _esc,
    _gateway,
    _size,
    _when,
    group_main,
    group_options,
    parse_bucket,
)
from cargohold.cli.output import Col, show_rows

uploads_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)

UploadArg = Annotated[
    str, typer.Argument(metavar="ID", help="Upload id, as shown by `uploads ls` or printed by `put`.")
]


def _percent(upload: dict[str, Any]) -> str:
    value = upload.get("uploaded_percentage")
    return f"{value:.1f}%" if isinstance(value, int | float) else "-"


_UPLOAD_COLUMNS = (
    Col("id", no_wrap=True),
    Col("object", overflow="fold"),
    Col("status", no_wrap=True),
    Col("progress", justify="right", no_wrap=True),
    Col("size", justify="right", no_wrap=True),
    Col("expires", no_wrap=True),
)


def _upload_fields(u: dict[str, Any]) -> tuple[object, ...]:
    return (u.get("id"), f"{u.get('bucket')}/{u.get('key')}", u.get("status"),
            u.get("uploaded_percentage"), u.get("size"), u.get("expires_at"))  # fmt: skip


def _upload_cells(u: dict[str, Any]) -> tuple[str, ...]:
    return (
        _esc(str(u.get("id", "-"))),
        _esc(f"{u.get('bucket')}/{u.get('key')}"),
        _esc(str(u.get("status", "-"))),
        _percent(u),
        _size(u.get("size")),
        _when(u.get("expires_at")),
    )


def _show_uploads(uploads: list[dict[str, Any]], plain: bool) -> None:
    show_rows(
        _UPLOAD_COLUMNS,
        uploads,
        plain=plain,
        fields=_upload_fields,
        cells=_upload_cells,
        empty="no open uploads",
    )


def _show_upload(u: dict[str, Any]) -> None:
    parts = [p for p in u.get("parts") or [] if isinstance(p, dict)]
    numbers = [p["part_number"] for p in parts if isinstance(p.get("part_number"), int)]
    sizes = [p["size"] for p in parts if isinstance(p.get("size"), int)]
    size = u.get("size")
    received = u.get("bytes_received")
    lines = [
        ("upload", u.get("id")),
        ("object", f"{u.get('bucket')}/{u.get('key')}"),
        ("status", u.get("status")),
        ("protocol", u.get("protocol")),
        ("size", f"{size} ({_size(size)})" if isinstance(size, int) else "unknown"),
        ("received", f"{received} ({_size(received)}), {_percent(u)}"),
        ("offset", u.get("offset")),
        ("part size", _size(u.get("part_size")) if u.get("part_size") else "-"),
        ("parts", f"{len(parts)} ({transfer.part_ranges(numbers)}), {_size(sum(sizes))}"),
        ("content-type", u.get("content_type")),
        ("created", _when(u.get("created_at"))),
        ("expires", _when(u.get("expires_at"))),
    ]
    if u.get("error"):
        lines.append(("error", u["error"]))
    for label, value in lines:
        typer.echo(f"{label + ':':<14}{'-' if value is None else value}")


def _with_progress(api: GatewayClient, uploads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The gateway lists uploads without their parts (so 0 bytes): ask for those receiving data."""
    filled = []
    for u in uploads:
        if u.get("status") == "LOADING" and not u.get("parts") and not u.get("bytes_received"):
            with contextlib.suppress(ClientError):
                u = api.get_upload(str(u["id"]))
        filled.append(u)
    return filled


@uploads_app.callback()
def uploads_main(ctx: typer.Context, plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Open upload sessions (resumable puts). Without a sub-command: the same as `uploads ls`."""
    group_main(ctx, url, key, lambda: uploads_ls(ctx, None, plain, url, key))


@uploads_app.command("ls")
def uploads_ls(
    ctx: typer.Context,
    bucket: Annotated[
        str | None,
        typer.Argument(metavar="BUCKET", parser=parse_bucket, help="Only this bucket's uploads."),
    ] = None,
    plain: PlainOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """List open upload sessions: id, object, status, progress, size, expiry."""
    with _gateway(*group_options(ctx, url, key)) as api:
        _show_uploads(_with_progress(api, api.list_uploads(bucket)), plain)


@uploads_app.command("show")
def uploads_show(ctx: typer.Context, upload_id: UploadArg, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Show one upload: status, bytes received, percentage, parts and expiry."""
    with _gateway(*group_options(ctx, url, key)) as api:
        _show_upload(api.get_upload(upload_id))


@uploads_app.command("abort")
def uploads_abort(ctx: typer.Context, upload_id: UploadArg, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Abort an upload: its parts are freed, and a later `put` of the same file starts over."""
    with _gateway(*group_options(ctx, url, key)) as api:
        upload = api.abort_upload(upload_id)
        transfer.forget_upload(transfer.state_dir(), upload_id)
    typer.echo(f"aborted upload {upload_id} ({upload.get('bucket')}/{upload.get('key')})")


def register(app: typer.Typer) -> None:
    """Attach the `uploads` command group to the main app."""
    app.add_typer(uploads_app, name="uploads", help="List, show and abort upload sessions.")
