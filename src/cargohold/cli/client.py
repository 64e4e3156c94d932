"""Client commands: get, ls, stat, rm, mb, rb, and the helpers every client command shares.

This module is presentation only: argument parsing, progress bars, tables and
error messages (``output.py`` prints tables and --plain lines). ``put`` lives in
``put.py`` (and runs in parts through ``multipart.py``), ``nodes`` in
``nodes.py``, ``uploads`` in ``uploads.py``, ``mv``, ``versions``, ``restore``
and ``versioning`` in ``versions.py``. HTTP lives in ``api_client.py``; finding the gateway URL and
key lives in ``clientconfig.py``. Every failure is printed as one red line,
``error: <code>: <detail>``, on stderr, and the command exits with status 1;
malformed arguments are usage errors (status 2) caught before any request.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.markup import escape as _esc
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cargohold.cli.api_client import ClientError, GatewayClient
from cargohold.cli.clientconfig import ClientConfigError, normalize_url, resolve_client_config
from cargohold.cli.output import Col, show_rows

# ---------------------------------------------------------------- arguments


@dataclass(frozen=True)
class ObjectRef:
    """A ``BUCKET/KEY`` argument; ``key`` may be empty or end in '/' only for put."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{self.bucket}/{self.key}"


def _split(value: str) -> tuple[str, str]:
    bucket, _, rest = value.partition("/")
    if not bucket:
        raise typer.BadParameter(f"{value!r}: the bucket name is empty")
    return bucket, rest


def parse_object_ref(value: str) -> ObjectRef:
    """``BUCKET/KEY`` with a non-empty key; the key may contain further '/'."""
    if "/" not in value:
        raise typer.BadParameter(f"{value!r}: expected BUCKET/KEY, e.g. photos/2024/cat.jpg")
    bucket, key = _split(value)
    if not key:
        raise typer.BadParameter(f"{value!r}: the key is empty (expected BUCKET/KEY)")
    return ObjectRef(bucket, key)


def parse_put_target(value: str) -> ObjectRef:
    """Like BUCKET/KEY, but ``BUCKET/`` or ``BUCKET/dir/`` mean "under the source's name"."""
    if "/" not in value:
        raise typer.BadParameter(f"{value!r}: expected BUCKET/KEY (or BUCKET/ to keep the file's name)")
    return ObjectRef(*_split(value))


def parse_listing_ref(value: str) -> ObjectRef:
    """``BUCKET`` or ``BUCKET/PREFIX``; the key field holds the prefix."""
    return ObjectRef(*_split(value))


def parse_bucket(value: str) -> str:
    if not value or "/" in value:
        raise typer.BadParameter(f"{value!r}: expected a bucket name without '/'")
    return value


def parse_range(value: str) -> str:
    """``A-B`` (inclusive), ``A-`` (from A to the end) or ``-N`` (the last N bytes)."""
    m = re.fullmatch(r"(\d*)-(\d*)", value.strip())
    if not m or not (m[1] or m[2]):
        raise typer.BadParameter(f"{value!r}: expected A-B, A- or -N (byte offsets)")
    if m[1] and m[2] and int(m[1]) > int(m[2]):
        raise typer.BadParameter(f"{value!r}: the range ends before it starts")
    return f"{m[1]}-{m[2]}"


def parse_node_url(value: str) -> str:
    try:
        return normalize_url(value)
    except ClientConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc


UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Gateway URL. Default: $CARGOHOLD_URL, then client.toml, then http://127.0.0.1:8080.",
        show_default=False,
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--key", help="API key. Default: $CARGOHOLD_KEY, then client.toml.", show_default=False),
]
PlainOpt = Annotated[
    bool, typer.Option("--plain", help="Tab-separated lines instead of a table (for scripts).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary line.")]
ObjectArg = Annotated[
    ObjectRef,
    typer.Argument(metavar="BUCKET/KEY", parser=parse_object_ref, help="Object, as BUCKET/KEY."),
]
BucketArg = Annotated[str, typer.Argument(metavar="BUCKET", parser=parse_bucket, help="Bucket.")]
VersionOpt = Annotated[
    str | None,
    typer.Option(
        "--version-id",
        metavar="VERSION_ID",
        help="One version of the object (see `cargohold versions`); default: the latest.",
        show_default=False,
    ),
]

# ---------------------------------------------------------------- plumbing


def keep_group_options(ctx: typer.Context, url: str | None, key: str | None) -> None:
    """Hand --url/--key given to a command group on to its sub-commands (see :func:`group_options`)."""
    ctx.obj = {"url": url, "key": key}


def group_main(ctx: typer.Context, url: str | None, key: str | None, ls: Callable[[], None]) -> None:
    """A command group's own body: keep its --url/--key, and run ``ls`` if no sub-command was given."""
    keep_group_options(ctx, url, key)
    if ctx.invoked_subcommand is None:
        ls()


def group_options(ctx: typer.Context, url: str | None, key: str | None) -> tuple[str | None, str | None]:
    """--url/--key given to a command group (``nodes --url X ls``) count when the command has none."""
    parent = ctx.obj if isinstance(ctx.obj, dict) else {}
    return url or parent.get("url"), key or parent.get("key")


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(code: str, detail: str) -> NoReturn:
    _stderr().print(f"error: {code}: {detail}", style="red", markup=False, soft_wrap=True)
    raise typer.Exit(1)


@contextlib.contextmanager
def _reporting() -> Iterator[None]:
    """Print a client or configuration failure as one line (and exit 1)."""
    try:
        yield
    except ClientError as exc:
        _fail(exc.code, exc.detail)
    except ClientConfigError as exc:
        _fail("config", str(exc))


@contextlib.contextmanager
def _gateway(url: str | None, key: str | None) -> Iterator[GatewayClient]:
    """Resolve the configuration, open a client, and print any failure as one line."""
    try:
        with _reporting():
            config = resolve_client_config(url, key)
            with GatewayClient(config.url, config.require_key()) as api:
                yield api
    except BrokenPipeError:
        # The reader of our stdout went away (`| head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(141) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail("local_io", f"{where}{exc.strerror or exc}")


def _progress(quiet: bool) -> Progress:
    console = _stderr()
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
    )


def _size(n: Any) -> str:
    return decimal(n) if isinstance(n, int) else "-"


def _when(value: Any) -> str:
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)


# ---------------------------------------------------------------- objects


def get(
    obj: ObjectArg,
    dest: Annotated[
        str | None,
        typer.Argument(
            metavar="DEST",
            help="File or directory to write, or - for stdout. Default: the key's last part.",
            show_default=False,
        ),
    ] = None,
    byte_range: Annotated[
        str | None,
        typer.Option(
            "--range",
            metavar="A-B",
            parser=parse_range,
            help="Only bytes A..B (inclusive); also A- or -N.",
        ),
    ] = None,
    version_id: VersionOpt = None,
    quiet: QuietOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Download an object (streamed, with a progress bar). Files appear only when complete."""
    target: Path | None = None
    if dest != "-":
        name = obj.key.rsplit("/", 1)[-1]
        target = Path(dest) if dest else Path(name)
        if target.is_dir():
            if name in ("", ".", ".."):
                raise typer.BadParameter(f"no file name in key {obj.key!r}: give DEST")
            target = target / name
    with _gateway(url, key) as api, api.open_object(obj.bucket, obj.key, byte_range, version_id) as dl:
        with _progress(quiet) as progress:
            task = progress.add_task(f"get {obj}", total=dl.info.size)
            if target is None:
                written = _copy(dl.chunks(), sys.stdout.buffer, progress, task)
                sys.stdout.buffer.flush()
            else:
                written = _download_file(dl.chunks(), target, dl.info.size, progress, task)
        if dl.info.size is not None and written != dl.info.size:  # stdout: can't take it back
            _fail("incomplete", f"{obj}: got {written} of {dl.info.size} bytes")
    if target is not None and not quiet:
        typer.echo(f"{target}\t{decimal(written)}")


def _copy(chunks: Iterator[bytes], out: IO[bytes], progress: Progress, task: TaskID) -> int:
    written = 0
    for chunk in chunks:
        out.write(chunk)
        written += len(chunk)
        progress.advance(task, len(chunk))
    return written


def _download_file(
    chunks: Iterator[bytes], target: Path, size: int | None, progress: Progress, task: TaskID
) -> int:
    """Write to ``TARGET.part`` and rename it into place only if the body is complete."""
    part = target.with_name(target.name + ".part")
    try:
        with part.open("wb") as out:
            written = _copy(chunks, out, progress, task)
        if size is not None and written != size:
            raise ClientError("incomplete", f"got {written} of {size} bytes; {target} not written")
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return written


def stat_(obj: ObjectArg, version_id: VersionOpt = None, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Show an object's size, ETag, content type, modification time and version."""
    with _gateway(url, key) as api:
        info = api.head_object(obj.bucket, obj.key, version_id)
    size = f"{info.size} ({decimal(info.size)})" if info.size is not None else "-"
    typer.echo(f"object:        {obj}")
    typer.echo(f"size:          {size}")
    typer.echo(f"etag:          {info.etag or '-'}")
    typer.echo(f"content-type:  {info.content_type or '-'}")
    typer.echo(f"last-modified: {info.last_modified or '-'}")
    typer.echo(f"version-id:    {info.version_id or '-'}")


def rm(obj: ObjectArg, version_id: VersionOpt = None, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Delete an object (a delete marker hides it when its bucket keeps versions), or one version."""
    with _gateway(url, key) as api:
        done = api.delete_object(obj.bucket, obj.key, version_id)
    if version_id:
        typer.echo(f"removed version {version_id} of {obj}")
    elif done.get("delete_marker"):
        typer.echo(f"removed {obj} (delete marker {done.get('version_id')}; older versions kept)")
    else:
        typer.echo(f"removed {obj}")


def ls(
    where: Annotated[
        ObjectRef | None,
        typer.Argument(
            metavar="BUCKET[/PREFIX]",
            parser=parse_listing_ref,
            help="Bucket (and key prefix) to list. Without it, list the buckets.",
            show_default=False,
        ),
    ] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="List every key, not one level.")
    ] = False,
    plain: PlainOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """List buckets, or the objects and "directories" under BUCKET/PREFIX (all pages)."""
    with _gateway(url, key) as api:
        if where is None:
            _show_buckets(api.list_buckets(), plain)
            return
        pages = api.list_objects(where.bucket, where.key, None if recursive else "/")
        show_listing(
            _ENTRY_COLUMNS, _entries(pages), plain, _entry_fields, _entry_cells, f"nothing under {where}"
        )


T = TypeVar("T")


def show_listing(
    columns: Sequence[Col],
    items: Iterable[T],
    plain: bool,
    fields: Callable[[T], Sequence[object]],
    cells: Callable[[T], Sequence[str]],
    empty: str,
) -> None:
    """Rows under BUCKET/PREFIX, flush left; ``empty`` goes to stderr, so a script reads nothing."""
    show_rows(
        columns,
        items,
        plain=plain,
        fields=fields,
        cells=cells,
        empty=empty,
        empty_to_stderr=True,
        pad_edge=False,
    )


#: The columns every listing under BUCKET/PREFIX starts with.
CREATED_SIZE_COLUMNS = (Col("created", no_wrap=True), Col("size", justify="right", no_wrap=True))
_ENTRY_COLUMNS = (*CREATED_SIZE_COLUMNS, Col("key", overflow="fold"))
#: A listing entry: a "directory" (common prefix) as (prefix, None), an object as (key, object).
_Entry = tuple[str, dict[str, Any] | None]


def _entries(pages: Iterable[dict[str, Any]]) -> Iterator[_Entry]:
    for page in pages:
        for prefix in page.get("common_prefixes") or []:
            yield prefix, None
        for o in page.get("objects") or []:
            yield o["key"], o


def _entry_fields(entry: _Entry) -> tuple[object, ...]:
    key, o = entry
    return (key, None, None) if o is None else (key, o.get("size"), o.get("created_at") or None)


def _entry_cells(entry: _Entry) -> tuple[str, ...]:
    key, o = entry
    if o is None:
        return ("", "dir", f"[bold blue]{_esc(key)}[/]")
    return (_when(o.get("created_at")), _size(o.get("size")), _esc(key))


_BUCKET_COLUMNS = (Col("bucket", overflow="fold"), Col("layout"), Col("created", no_wrap=True))


def _show_buckets(buckets: list[dict[str, Any]], plain: bool) -> None:
    show_rows(
        _BUCKET_COLUMNS,
        buckets,
        plain=plain,
        fields=lambda b: (b["name"], b.get("layout") or None, b.get("created_at") or None),
        cells=lambda b: (_esc(b["name"]), _esc(b.get("layout") or "-"), _when(b.get("created_at"))),
    )


def mb(
    bucket: BucketArg,
    layout: Annotated[
        str | None,
        typer.Option("--layout", help="ec:K+M, mirror:R or stripe:K (default: the gateway's)."),
    ] = None,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Make a bucket."""
    with _gateway(url, key) as api:
        made = api.create_bucket(bucket, layout)
    typer.echo(f"created bucket {made.get('name', bucket)} ({made.get('layout') or 'default layout'})")


def rb(bucket: BucketArg, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Remove a bucket (the gateway refuses while it holds objects)."""
    with _gateway(url, key) as api:
        api.delete_bucket(bucket)
    typer.echo(f"removed bucket {bucket}")


def register(app: typer.Typer) -> None:
    """Attach the client commands to the main app."""
    from cargohold.cli.put import put  # put.py builds on the helpers above
    from cargohold.cli.versions import mv, restore, versioning, versions

    for name, command in (
        ("put", put), ("get", get), ("ls", ls), ("stat", stat_),
        ("rm", rm), ("mb", mb), ("rb", rb), ("mv", mv),
        ("versions", versions), ("restore", restore), ("versioning", versioning),
    ):  # fmt: skip
        app.command(name)(command)
