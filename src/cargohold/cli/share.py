"""`cargohold share`: make a link anyone can download from, list your links, revoke one.

``cargohold share BUCKET/KEY`` is short for ``cargohold share create BUCKET/KEY``:
the first word names a sub-command only when it is one (object references
always contain a '/', so they cannot be mistaken for one). The link's URL is
the only thing printed on standard output, so ``url=$(cargohold share …)``
works; what else there is to know goes to standard error.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cargohold.cli.client import (
    KeyOpt,
    ObjectRef,
    PlainOpt,
    UrlOpt,
    _esc,
    _gateway,
    _stderr,
    _when,
    parse_listing_ref,
    parse_object_ref,
)
from cargohold.cli.output import Col, show_rows

DEFAULT_COMMAND = "create"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)([smhdw])")


class _ShareGroup(TyperGroup):
    """A command group whose first argument, if no sub-command's name, goes to ``create``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Any: click's Context
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


share_app = typer.Typer(cls=_ShareGroup, no_args_is_help=True)


def parse_expiry(value: str) -> dict[str, Any]:
    """``30m``, ``1h``, ``2d``, ``1w``, ``1d12h`` (from now), or an ISO 8601 time (local if no zone).

    Returns the request field to send: ``expires_in`` (seconds) or ``expires_at``.
    """
    text = value.strip().lower()
    if text and _DURATION.sub("", text) == "":
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _DURATION.findall(text))
        if seconds <= 0:
            raise typer.BadParameter(f"{value!r}: the link would expire at once")
        return {"expires_in": seconds}
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: expected a duration such as 30m, 1h, 2d, 1w or an ISO 8601 time"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # the user's local time
    if when <= datetime.now(UTC):
        raise typer.BadParameter(f"{value!r} is in the past")
    return {"expires_at": when.isoformat()}


def _read_password(prompt: bool, from_stdin: bool) -> str | None:
    if prompt and from_stdin:
        raise typer.BadParameter("give --password-prompt or --password-stdin, not both")
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise typer.BadParameter("no password on standard input")
        return password
    if prompt:
        return str(typer.prompt("Password for the link", hide_input=True, confirmation_prompt=True))
    return None


def _target(link: dict[str, Any]) -> str:
    if link.get("key") is not None:
        return f"{link.get('bucket')}/{link['key']}"
    return f"{link.get('bucket')}/{link.get('prefix') or ''}*"


def _downloads(link: dict[str, Any]) -> str:
    limit = link.get("max_downloads")
    return f"{link.get('downloads', 0)}/{limit}" if limit else str(link.get("downloads", 0))


_LINK_COLUMNS = (
    Col("id", no_wrap=True),
    Col("shares", overflow="fold"),
    Col("status", no_wrap=True),
    Col("downloads", justify="right", no_wrap=True),
    Col("expires", no_wrap=True),
    Col("password", no_wrap=True),
    Col("owner", overflow="fold"),
)


def _link_fields(s: dict[str, Any]) -> tuple[object, ...]:
    return (s.get("id"), _target(s), s.get("status"), _downloads(s), s.get("expires_at"),
            "password" if s.get("has_password") else "-", s.get("owner"))  # fmt: skip


def _link_cells(s: dict[str, Any]) -> tuple[str, ...]:
    return (
        _esc(str(s.get("id"))),
        _esc(_target(s)),
        _esc(str(s.get("status"))),
        _downloads(s),
        _when(s.get("expires_at")),
        "yes" if s.get("has_password") else "no",
        _esc(str(s.get("owner") or "-")),
    )


@share_app.command(DEFAULT_COMMAND)
def share_create(
    target: Annotated[
        str,
        typer.Argument(
            metavar="BUCKET/KEY",
            help="The object to share; with --prefix, BUCKET/PREFIX (every object under it).",
            show_default=False,
        ),
    ],
    prefix: Annotated[
        bool, typer.Option("--prefix", help="Share every object under BUCKET/PREFIX (a folder).")
    ] = False,
    password_prompt: Annotated[
        bool, typer.Option("--password-prompt", help="Ask for a password the link will need.")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the link's password from standard input.")
    ] = False,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            metavar="WHEN",
            help="When the link stops working: 30m, 1h, 2d, 1w, or an ISO 8601 time.",
            show_default=False,
        ),
    ] = None,
    max_downloads: Annotated[
        int | None,
        typer.Option(
            "--max-downloads", min=1, metavar="N", help="Full downloads allowed.", show_default=False
        ),
    ] = None,
    version_id: Annotated[
        str | None,
        typer.Option("--version-id", help="Share this version, not the latest.", show_default=False),
    ] = None,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Create a share link and print its URL (anyone with it can download, no account needed)."""
    ref: ObjectRef = parse_listing_ref(target) if prefix else parse_object_ref(target)
    body: dict[str, Any] = {"bucket": ref.bucket}
    body["prefix" if prefix else "key"] = ref.key
    if expires is not None:
        body.update(parse_expiry(expires))
    if max_downloads is not None:
        body["max_downloads"] = max_downloads
    if version_id is not None:
        body["version_id"] = version_id
    password = _read_password(password_prompt, password_stdin)
    if password is not None:
        body["password"] = password
    with _gateway(url, key) as api:
        link = api.request_json("POST", "/api/v1/shares", json=body)
        link_url = api.url + str(link["url"])
    typer.echo(link_url)
    details = [f"link {link.get('id')} for {_target(link)}"]
    if link.get("expires_at"):
        details.append(f"expires {_when(link['expires_at'])}")
    if link.get("max_downloads"):
        details.append(f"{link['max_downloads']} downloads")
    if link.get("has_password"):
        details.append("password required")
    _stderr().print(", ".join(details), style="dim", markup=False)


@share_app.command("ls")
def share_ls(
    everything: Annotated[bool, typer.Option("--all", help="Every user's links (admins).")] = False,
    bucket: Annotated[
        str | None,
        typer.Option("--bucket", help="Every link on this bucket (needs admin on it).", show_default=False),
    ] = None,
    plain: PlainOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """List your share links: id, what they share, status, downloads, expiry. Tokens are never shown."""
    params: dict[str, str] = {}
    if everything:
        params["all"] = "true"
    if bucket:
        params["bucket"] = bucket
    with _gateway(url, key) as api:
        links = list(api.request_json("GET", "/api/v1/shares", params=params)["shares"])
    show_rows(
        _LINK_COLUMNS, links, plain=plain, fields=_link_fields, cells=_link_cells, empty="no share links"
    )


@share_app.command("revoke")
def share_revoke(
    link_id: Annotated[str, typer.Argument(metavar="ID", help="Link id, as shown by `share ls`.")],
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Revoke a share link: it answers 410 from now on."""
    path = "/api/v1/shares/" + link_id
    if not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", link_id):
        raise typer.BadParameter(f"{link_id!r} is not a link id")
    with _gateway(url, key) as api:
        link = api.request_json("DELETE", path)
    typer.echo(f"revoked share link {link.get('id')} ({_target(link)})")


def register(app: typer.Typer) -> None:
    """Attach the `share` command group to the main app."""
    app.add_typer(
        share_app,
        name="share",
        help="Share an object or a folder by link (share BUCKET/KEY), list links (ls), revoke one.",
    )
