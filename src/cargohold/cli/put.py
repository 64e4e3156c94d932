"""`cargohold put`: one streamed PUT for small files and pipes, an upload session in parts for big files.

A regular file of at least ``--multipart-threshold`` bytes goes through
``multipart.py`` (parallel parts, retries, resume after an interruption); all
else is one streamed PUT whose SHA-256 the gateway's answer must confirm.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import stat as stat_mode
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.filesize import decimal
from rich.progress import Progress, TaskID

from cargohold.cli import transfer
from cargohold.cli.api_client import CHUNK, ClientError, GatewayClient
from cargohold.cli.client import (
    KeyOpt,
    ObjectRef,
    QuietOpt,
    UrlOpt,
    _fail,
    _gateway,
    _progress,
    parse_put_target,
)
from cargohold.cli.multipart import MultipartPut, PartOptions


def parse_size_option(value: str | int) -> int:
    try:
        size = transfer.parse_size(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if size < 0:
        raise typer.BadParameter(f"{value!r}: a size cannot be negative")
    return size


def parse_part_size(value: str | int) -> int:
    size = parse_size_option(value)
    if not 0 < size <= transfer.MAX_PART_SIZE:
        raise typer.BadParameter(f"{value!r}: a part holds 1 byte to 5 GiB")
    return size


def _chunks(
    fh: IO[bytes], size: int | None, progress: Progress, task: TaskID, digest: Any
) -> Iterator[bytes]:
    """Read ``fh`` in 1 MiB chunks, hashing and counting as they go out."""
    remaining = size
    while remaining is None or remaining > 0:
        chunk = fh.read(CHUNK if remaining is None else min(CHUNK, remaining))
        if not chunk:
            break
        if remaining is not None:
            remaining -= len(chunk)
        digest.update(chunk)
        progress.advance(task, len(chunk))
        yield chunk
    if remaining:
        raise ClientError("source_changed", f"the source shrank by {remaining} bytes while read")


def put(
    src: Annotated[str, typer.Argument(metavar="SRC", help="Local file, or - for stdin.")],
    dest: Annotated[
        ObjectRef,
        typer.Argument(
            metavar="BUCKET/KEY",
            parser=parse_put_target,
            help="Where to store it. A key ending in '/' (or BUCKET/) appends SRC's file name.",
        ),
    ],
    content_type: Annotated[
        str | None,
        typer.Option("--content-type", help="Content-Type to store (default: guessed from the name)."),
    ] = None,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel",
            min=1,
            max=transfer.MAX_PARALLEL,
            metavar="N",
            help="Parts sent at once, for files sent in parts.",
        ),
    ] = transfer.DEFAULT_PARALLEL,
    part_size: Annotated[
        int,
        typer.Option(
            "--part-size",
            parser=parse_part_size,
            metavar="SIZE",
            help="Size of each part (e.g. 8MiB, 64MB); grown if a file would need over 10,000 parts.",
        ),
    ] = "16MiB",  # type: ignore[assignment]  # parsed by click
    threshold: Annotated[
        int,
        typer.Option(
            "--multipart-threshold",
            parser=parse_size_option,
            metavar="SIZE",
            help="Regular files of this size or more are sent in parts, in an upload session "
            "that a later run resumes after an interruption; smaller ones in one PUT.",
        ),
    ] = "64MiB",  # type: ignore[assignment]
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Have the gateway check the whole file's MD5 and SHA-256 when the parts are joined "
            "(it reads the object back once). Parts are always checked one by one.",
        ),
    ] = False,
    quiet: QuietOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Upload a file with a progress bar; big files in parallel parts, resumable after an interruption."""
    if dest.key == "" or dest.key.endswith("/"):
        if src == "-":
            raise typer.BadParameter("reading stdin: give the full BUCKET/KEY", param_hint="'BUCKET/KEY'")
        dest = ObjectRef(dest.bucket, dest.key + Path(src).name)
    ctype = content_type or mimetypes.guess_type(dest.key if src == "-" else src)[0]
    with _gateway(url, key) as api:
        info = None if src == "-" else os.stat(src)
        if info is not None and stat_mode.S_ISREG(info.st_mode) and 0 < threshold <= info.st_size:
            options = PartOptions(parallel=parallel, part_size=part_size, verify=verify)
            result, sent, ours = _put_in_parts(api, Path(src), dest, ctype, options, quiet)
        else:
            result, sent, ours = _put_stream(api, src, dest, ctype, quiet)
    stored = result.get("sha256")
    if stored and ours and stored != ours:
        _fail("checksum_mismatch", f"{dest}: the gateway stored SHA-256 {stored}, we sent {ours}")
    if isinstance(result.get("size"), int) and result["size"] != sent:
        _fail("size_mismatch", f"{dest}: the gateway stored {result['size']} bytes, we sent {sent}")
    if not quiet:
        typer.echo(f"{dest}\t{decimal(sent)}\tetag {result.get('etag') or '-'}")


def _put_stream(
    api: GatewayClient, src: str, dest: ObjectRef, ctype: str | None, quiet: bool
) -> tuple[dict[str, Any], int, str]:
    """One PUT, streamed; a pipe's length is unknown (sent chunked), a file's is not."""
    digest = hashlib.sha256()
    with contextlib.ExitStack() as stack:
        fh = sys.stdin.buffer if src == "-" else stack.enter_context(open(src, "rb"))
        regular = stat_mode.S_ISREG(os.fstat(fh.fileno()).st_mode)
        size = os.fstat(fh.fileno()).st_size - fh.tell() if regular else None
        progress = stack.enter_context(_progress(quiet))
        task = progress.add_task(f"put {dest}", total=size)
        body = _chunks(fh, size, progress, task, digest)
        result = api.put_object(dest.bucket, dest.key, body, size=size, content_type=ctype)
    return result, int(progress.tasks[0].completed), digest.hexdigest()


def _put_in_parts(
    api: GatewayClient, src: Path, dest: ObjectRef, ctype: str | None, options: PartOptions, quiet: bool
) -> tuple[dict[str, Any], int, str | None]:
    """An upload session in parts (see ``multipart.py``); Ctrl-C keeps it for a later run."""
    with _progress(quiet) as progress:

        def say(line: str) -> None:
            if not quiet:
                progress.console.print(line, markup=False, highlight=False, soft_wrap=True)

        run = MultipartPut(
            api, src, dest.bucket, dest.key, content_type=ctype, options=options, progress=progress, say=say
        )
        try:
            result = run.run()
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        sent = int(progress.tasks[0].total or 0) if progress.tasks else 0
    return result, sent, run.sha256
