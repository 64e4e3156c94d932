"""`cargohold keys`: list, create and revoke API keys (yours; admins: anyone's with --user)."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

import typer

from cargohold.cli.client import (
    KeyOpt,
    PlainOpt,
    UrlOpt,
    _esc,
    _gateway,
    _when,
    group_main,
    group_options,
)
from cargohold.cli.clientconfig import aws_profile_snippet
from cargohold.cli.output import Col, show_rows

KEYS = "/api/v1/keys"

keys_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


def parse_expiry(value: str) -> str:
    """A duration (``90d``, ``12h``, ``30m``) from now, or an ISO 8601 time; returned as ISO 8601."""
    text = value.strip()
    m = re.fullmatch(r"(\d+)\s*([dhm])", text.lower())
    if m:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[m[2]]
        return (datetime.now(UTC) + timedelta(**{unit: int(m[1])})).isoformat()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: expected a duration (90d, 12h, 30m) or an ISO 8601 time"
        ) from None
    return (when if when.tzinfo else when.astimezone()).isoformat()


def _key_state(k: dict[str, Any]) -> str:
    if k.get("revoked_at"):
        return "revoked"
    expires = k.get("expires_at")
    if expires:
        with contextlib.suppress(ValueError):
            if datetime.fromisoformat(str(expires)) <= datetime.now(UTC):
                return "expired"
    return "active"


_KEY_COLUMNS = (
    Col("key id", no_wrap=True),
    Col("name", overflow="fold"),
    Col("state", no_wrap=True),
    Col("created", no_wrap=True),
    Col("expires", no_wrap=True),
)
_KEY_STYLES = {"active": "green", "expired": "yellow", "revoked": "red"}


def _key_fields(k: dict[str, Any]) -> tuple[object, ...]:
    return (k.get("key_id"), k.get("name"), _key_state(k), k.get("created_at"), k.get("expires_at"))


def _key_cells(k: dict[str, Any]) -> tuple[str, ...]:
    state = _key_state(k)
    return (
        _esc(str(k.get("key_id", "-"))),
        _esc(str(k.get("name", "-"))),
        f"[{_KEY_STYLES[state]}]{state}[/]",
        _when(k.get("created_at")),
        _when(k.get("expires_at")),
    )


def _show_keys(keys: list[dict[str, Any]], plain: bool) -> None:
    show_rows(_KEY_COLUMNS, keys, plain=plain, fields=_key_fields, cells=_key_cells, empty="no API keys")


ForUserOpt = Annotated[str | None, typer.Option("--user", "-u", help="Another user's keys (admins).")]


@keys_app.callback()
def keys_main(ctx: typer.Context, plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Your API keys. Without a sub-command: the same as `keys ls`."""
    group_main(ctx, url, key, lambda: keys_ls(ctx, None, plain, url, key))


@keys_app.command("ls")
def keys_ls(
    ctx: typer.Context,
    user: ForUserOpt = None,
    plain: PlainOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
    s3: Annotated[bool, typer.Option("--s3", help="S3 access keys instead of API keys.")] = False,
) -> None:
    """List API keys, or with --s3 S3 access keys (never their secrets): id, name, state, expiry."""
    params = {"user": user} if user else {}
    if s3:
        params["kind"] = "s3"
    with _gateway(*group_options(ctx, url, key)) as api:
        _show_keys(api.request_json("GET", KEYS, params=params)["keys"], plain)


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="What the key is for.")] = "api key",
    expires: Annotated[
        str | None,
        typer.Option("--expires", metavar="WHEN", help="Expiry: a duration (90d, 12h) or an ISO 8601 time."),
    ] = None,
    user: ForUserOpt = None,
    s3: Annotated[
        bool, typer.Option("--s3", help="An S3 access key (id and secret for aws cli, boto3, rclone).")
    ] = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Create an API key, or with --s3 an S3 access key; the secret is printed once, never again."""
    body: dict[str, Any] = {"name": name}
    if expires:
        body["expires_at"] = parse_expiry(expires)
    if user:
        body["user"] = user
    if s3:
        body["kind"] = "s3"
        if name == "api key":
            body["name"] = "s3 key"
    with _gateway(*group_options(ctx, url, key)) as api:
        made = api.request_json("POST", KEYS, json=body)
        gateway_url = api.url
    if s3:
        _show_fields([("name", made.get("name")), ("expires", made.get("expires_at"))])
        typer.echo(f"{'access key:':<12}{made['access_key_id']}")
        typer.echo(f"{'secret:':<12}{made['secret_access_key']}")
        typer.echo("")
        typer.echo(
            aws_profile_snippet(gateway_url, made["access_key_id"], made["secret_access_key"]), nl=False
        )
        typer.echo("(the secret is shown only now: store it safely)", err=True)
        return
    _show_fields(
        [("key id", made.get("key_id")), ("name", made.get("name")), ("expires", made.get("expires_at"))]
    )
    typer.echo(f"token:      {made['token']}")
    typer.echo("(the token is shown only now: store it safely)", err=True)


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="Key id, as shown by `keys ls`.")],
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Revoke an API key or an S3 access key: it stops working at once."""
    with _gateway(*group_options(ctx, url, key)) as api:
        api.call("DELETE", f"{KEYS}/{quote(key_id, safe='')}")
    typer.echo(f"revoked key {key_id}")


def _show_fields(lines: list[tuple[str, Any]]) -> None:
    for label, value in lines:
        typer.echo(f"{label + ':':<12}{'-' if value is None or value == '' else value}")


def register(app: typer.Typer) -> None:
    """Attach the `keys` command group to the main app."""
    app.add_typer(keys_app, name="keys", help="List, create and revoke API keys.")
