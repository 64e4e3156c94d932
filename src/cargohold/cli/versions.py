"""Client commands for renames and versions: mv, versions, restore, versioning.

Presentation only, like ``client.py`` whose argument types and helpers these
commands share; the HTTP calls are in ``api_client.py``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape as _esc

from cargohold.cli.client import (
    CREATED_SIZE_COLUMNS,
    BucketArg,
    KeyOpt,
    ObjectArg,
    ObjectRef,
    PlainOpt,
    UrlOpt,
    _gateway,
    _size,
    _when,
    parse_listing_ref,
    parse_put_target,
    show_listing,
)
from cargohold.cli.output import Col

#: What ``versioning`` accepts; the gateway maps on/off to enabled/suspended.
VERSIONING_WORDS = ("on", "off", "enabled", "suspended")


def mv(
    src: ObjectArg,
    dst: Annotated[
        ObjectRef,
        typer.Argument(
            metavar="DEST",
            parser=parse_put_target,
            help="BUCKET/KEY, or BUCKET/ (or BUCKET/dir/) to keep the source's name.",
        ),
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace DEST if it exists (else the move is refused).")
    ] = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Rename (move) an object: instant, whatever its size, as no byte is copied.

    Works within a bucket or between buckets of the same layout.
    """
    if not dst.key or dst.key.endswith("/"):
        dst = ObjectRef(dst.bucket, dst.key + src.key.rsplit("/", 1)[-1])
    with _gateway(url, key) as api:
        moved = api.rename_object(src.bucket, src.key, dst.bucket, dst.key, overwrite=overwrite)
    typer.echo(f"renamed {src} -> {dst} (version {moved.get('version_id') or '-'})")


def versions(
    where: Annotated[
        ObjectRef,
        typer.Argument(
            metavar="BUCKET[/KEY-or-prefix]",
            parser=parse_listing_ref,
            help="Bucket, and the key (or key prefix) whose versions to list.",
        ),
    ],
    exact: Annotated[
        bool, typer.Option("--exact", help="Only the key given, not every key starting with it.")
    ] = False,
    plain: PlainOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """List versions (delete markers included): by key, the latest first, then newest first.

    --plain prints KEY, VERSION_ID, SIZE, CREATED and FLAGS (latest,
    delete-marker, or -) separated by tabs.
    """
    if exact and not where.key:
        raise typer.BadParameter("--exact needs BUCKET/KEY")
    rows: list[dict[str, Any]] = []
    with _gateway(url, key) as api:
        pages = api.list_versions(where.bucket, where.key, key=where.key if exact else None)
        for page in pages:
            rows.extend(page.get("versions") or [])
    show_listing(_VERSION_COLUMNS, rows, plain, _version_fields, _version_cells, f"no versions under {where}")


_VERSION_COLUMNS = (
    *CREATED_SIZE_COLUMNS,
    Col("version", no_wrap=True),
    Col("", no_wrap=True),
    Col("key", overflow="fold"),
)


def _version_fields(v: dict[str, Any]) -> tuple[object, ...]:
    return (v["key"], v["version_id"], v["size"], v["created_at"], _flags(v))


def _version_cells(v: dict[str, Any]) -> tuple[str, ...]:
    size = "marker" if v.get("delete_marker") else _size(v.get("size"))
    return (_when(v.get("created_at")), size, v["version_id"], _flags(v), _esc(v["key"]))


def _flags(version: dict[str, Any]) -> str:
    flags = [
        name
        for name, field in (("latest", "is_latest"), ("delete-marker", "delete_marker"))
        if version.get(field)
    ]
    return ",".join(flags) or "-"


def restore(
    obj: ObjectArg,
    version_id: Annotated[str, typer.Argument(metavar="VERSION_ID", help="The version to make the latest.")],
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Make an earlier version the latest again (the current one stays as a version)."""
    with _gateway(url, key) as api:
        restored = api.restore_version(obj.bucket, obj.key, version_id)
    typer.echo(f"restored {obj} to version {restored.get('version_id', version_id)}")


def versioning(
    bucket: BucketArg,
    state: Annotated[
        str,
        typer.Argument(metavar="on|off|status", help="Turn versioning on or off, or show it."),
    ] = "status",
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Show or switch a bucket's versioning (off keeps existing versions: "suspended")."""
    word = state.lower()
    if word != "status" and word not in VERSIONING_WORDS:
        raise typer.BadParameter(f"{state!r}: expected on, off or status")
    with _gateway(url, key) as api:
        status = api.get_versioning(bucket) if word == "status" else api.set_versioning(bucket, word)
    typer.echo(f"{bucket}: versioning {status}")
