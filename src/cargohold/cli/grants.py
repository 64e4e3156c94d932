"""`cargohold grants | grant | ungrant`: who may read, write or administer a bucket.

A bucket's owner (and a system admin) holds ``admin`` on it and may hand
``read``, ``write`` or ``admin`` to other users; these commands need ``admin``
on the bucket too.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

import typer

from cargohold.cli.api_client import bucket_path
from cargohold.cli.client import BucketArg, KeyOpt, PlainOpt, UrlOpt, _esc, _gateway, _when
from cargohold.cli.output import Col, show_rows


class GrantLevel(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


def parse_user(value: str) -> str:
    if not value or "/" in value:
        raise typer.BadParameter(f"{value!r}: expected a user name")
    return value


UserArg = Annotated[str, typer.Argument(metavar="USER", parser=parse_user, help="User name.")]
LevelArg = Annotated[
    GrantLevel,
    typer.Argument(
        metavar="LEVEL",
        help="read (get, list), write (also put, delete, uploads) or admin (also grants, remove the bucket).",
        case_sensitive=False,
    ),
]


def _grants_path(bucket: str) -> str:
    return f"{bucket_path(bucket)}/grants"


_GRANT_COLUMNS = (
    Col("user", overflow="fold"),
    Col("level", no_wrap=True),
    Col("granted by", overflow="fold"),
    Col("since", no_wrap=True),
)


def _grant_fields(g: dict[str, Any]) -> tuple[object, ...]:
    return (g.get("user"), g.get("level"), g.get("granted_by"), g.get("created_at"))


def _grant_cells(g: dict[str, Any]) -> tuple[str, ...]:
    if g.get("level") == "owner":  # no grant has this level: the owner's row, granted by no one
        return (_esc(str(g.get("user") or "-")), "owner", "", "")
    return (
        _esc(str(g.get("user", "-"))),
        _esc(str(g.get("level", "-"))),
        _esc(str(g.get("granted_by") or "-")),
        _when(g.get("created_at")),
    )


def _show_grants(answer: dict[str, Any], plain: bool) -> None:
    """The owner first (as a row of level ``owner``), then every grant."""
    owner = {"user": answer.get("owner") or None, "level": "owner"}
    grants = [g for g in answer.get("grants") or [] if isinstance(g, dict)]
    show_rows(_GRANT_COLUMNS, [owner, *grants], plain=plain, fields=_grant_fields, cells=_grant_cells)


def grants(bucket: BucketArg, plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Show who may use BUCKET: its owner and every grant (needs admin on it)."""
    with _gateway(url, key) as api:
        _show_grants(dict(api.request_json("GET", _grants_path(bucket))), plain)


def grant(
    bucket: BucketArg,
    user: UserArg,
    level: LevelArg,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Give USER exactly LEVEL on BUCKET (replacing an earlier grant of theirs)."""
    with _gateway(url, key) as api:
        made = api.request_json("POST", _grants_path(bucket), json={"user": user, "level": level.value})
    typer.echo(f"granted {made.get('level', level.value)} on {bucket} to {made.get('user', user)}")


def ungrant(bucket: BucketArg, user: UserArg, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Take USER's grant on BUCKET away (the owner's access cannot be taken)."""
    with _gateway(url, key) as api:
        api.call("DELETE", f"{_grants_path(bucket)}/{quote(user, safe='')}")
    typer.echo(f"revoked {user}'s grant on {bucket}")


def register(app: typer.Typer) -> None:
    """Attach the grant commands to the main app."""
    for name, command in (("grants", grants), ("grant", grant), ("ungrant", ungrant)):
        app.command(name)(command)
