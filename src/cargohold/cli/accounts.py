"""Account commands: login, logout, whoami, passwd, and the `users` group (`keys` is in keys.py).

`cargohold login` signs in with a password only to make an API key for this
machine (named ``cli@<hostname>``); the session itself is ended at once, so
what stays on disk is a key the user can list and revoke like any other.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sys
from typing import Annotated, Any
from urllib.parse import quote

import typer

from cargohold.cli import keys
from cargohold.cli.api_client import ApiError, ClientError, GatewayClient
from cargohold.cli.client import (
    KeyOpt,
    PlainOpt,
    UrlOpt,
    _esc,
    _fail,
    _gateway,
    _reporting,
    _size,
    _when,
    group_main,
    group_options,
)
from cargohold.cli.clientconfig import (
    ENV_KEY,
    login_config_path,
    read_client_file,
    resolve_client_config,
    shadowing_file,
    write_client_config,
)
from cargohold.cli.keys import KEYS, _show_fields
from cargohold.cli.output import Col, show_rows

USERS = "/api/v1/users"
LOGIN_KEY_PREFIX = "cli@"

users_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)

UserArg = Annotated[str, typer.Argument(metavar="NAME", help="User name.")]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from standard input (one line) instead of a prompt."
    ),
]

# ---------------------------------------------------------------- parsing

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_quota(value: str) -> int | None:
    """Bytes, with an optional unit (``500MB``, ``10GiB``), or ``none`` for no quota."""
    text = value.strip().lower()
    if text in ("none", "unlimited"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
    if not m or m[2] not in _SIZE_UNITS:
        raise typer.BadParameter(f"{value!r}: expected bytes such as 1000000, 500MB, 10GiB, or none")
    return int(float(m[1]) * _SIZE_UNITS[m[2]])


def _read_stdin_lines(count: int) -> list[str]:
    lines = sys.stdin.read().splitlines()
    if len(lines) < count or not all(lines[:count]):
        what = "a password" if count == 1 else f"{count} lines (current password, then the new one)"
        raise typer.BadParameter(f"standard input must hold {what}", param_hint="--password-stdin")
    return lines[:count]


def _new_password(from_stdin: bool, lines: list[str] | None = None) -> str:
    if lines:
        return lines[-1]
    if from_stdin:
        return _read_stdin_lines(1)[0]
    return str(typer.prompt("new password", hide_input=True, confirmation_prompt=True))


# ---------------------------------------------------------------- plumbing


def _user_path(name: str) -> str:
    return f"{USERS}/{quote(name, safe='')}"


def _quota(value: Any) -> str:
    return "none" if value is None else f"{value} ({_size(value)})"


# ---------------------------------------------------------------- sign-in


def login(
    url: UrlOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="User name (prompted if not given).")
    ] = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Sign in with a password and save an API key for this machine in the client config."""
    with _reporting():
        # With --url nothing is read: the config login writes may not exist yet.
        gateway_url = url or resolve_client_config(None, None).url
        name = user or str(typer.prompt("user"))
        password = (
            _read_stdin_lines(1)[0] if password_stdin else str(typer.prompt("password", hide_input=True))
        )
        with GatewayClient(gateway_url, None) as anonymous:
            session = anonymous.request_json(
                "POST", "/api/v1/auth/login", json={"name": name, "password": password}
            )
        with GatewayClient(gateway_url, session["access_token"]) as api:
            try:
                key = api.request_json(
                    "POST", KEYS, json={"name": f"{LOGIN_KEY_PREFIX}{socket.gethostname()}"}
                )
            finally:
                with contextlib.suppress(ClientError):  # the key is what we keep: end the session
                    api.call("POST", "/api/v1/auth/logout", json={})
        path = write_client_config(login_config_path(), gateway_url, key["token"])
    typer.echo(f"signed in to {gateway_url} as {name}; key {key['key_id']} saved to {path}")
    shadow = shadowing_file()
    if shadow is not None:
        typer.echo(f"note: {shadow} is read first in this directory; run commands elsewhere or remove it")
    if resolve_client_config(None, None).key_source == ENV_KEY:
        typer.echo(f"note: ${ENV_KEY} is set and takes precedence over the saved key")


def logout(
    force: Annotated[
        bool, typer.Option("--force", help="Revoke the saved key even if `login` did not make it.")
    ] = False,
) -> None:
    """Revoke the key `login` saved and remove it from the client config."""
    path = login_config_path()
    with _reporting():
        saved = read_client_file(path) if path.is_file() else {}
        if not saved.get("key") or not saved.get("url"):
            _fail("not_signed_in", f"no saved key in {path}")
        url, key = saved["url"], saved["key"]
        key_id = key.partition(".")[0]
        with GatewayClient(url, key) as api:
            try:
                listed = api.request_json("GET", KEYS)["keys"]
                mine: dict[str, Any] = next((k for k in listed if k.get("key_id") == key_id), {})
                if not str(mine.get("name", "")).startswith(LOGIN_KEY_PREFIX) and not force:
                    _fail(
                        "not_a_login_key",
                        f"the key in {path} is named {mine.get('name')!r}, not made by `cargohold login`; "
                        "pass --force to revoke it anyway",
                    )
                api.call("DELETE", f"{KEYS}/{quote(key_id, safe='')}")
                outcome = f"revoked key {key_id}"
            except ApiError as exc:
                if exc.status != 401:
                    raise
                outcome = f"key {key_id} was no longer valid"
        write_client_config(path, url, None)
    typer.echo(f"{outcome}; removed it from {path}")


def whoami(url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Show who the configured credentials belong to."""
    with _gateway(url, key) as api:
        me = api.request_json("GET", "/api/v1/me")
        where = api.url
    _show_fields(
        [
            ("user", me.get("name")),
            ("role", me.get("role")),
            ("key", me.get("key_id")),
            ("quota", _quota(me.get("quota_bytes"))),
            ("gateway", where),
        ]
    )


def passwd(
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Set another user's password (admins).")
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read from standard input: the current password, then the new one (only the new "
            "one with --user).",
        ),
    ] = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Change your password (asks for the current one), or as an admin reset another user's."""
    if user is not None:
        new = _new_password(password_stdin)
        with _gateway(url, key) as api:
            api.request_json("PATCH", _user_path(user), json={"password": new})
        typer.echo(f"password of {user} changed; their sessions were ended")
        return
    if password_stdin:
        current, new = _read_stdin_lines(2)
    else:
        current = str(typer.prompt("current password", hide_input=True))
        new = _new_password(False)
    with _gateway(url, key) as api:
        me = api.request_json(
            "POST", "/api/v1/auth/password", json={"current_password": current, "new_password": new}
        )
    typer.echo(f"password of {me.get('name')} changed; your other sessions were ended")


# ---------------------------------------------------------------- users


_USER_COLUMNS = (
    Col("name", overflow="fold"),
    Col("role", no_wrap=True),
    Col("state", no_wrap=True),
    Col("quota", justify="right", no_wrap=True),
    Col("password", no_wrap=True),
    Col("created", no_wrap=True),
)


def _user_fields(u: dict[str, Any]) -> tuple[object, ...]:
    state = "disabled" if u.get("disabled") else "enabled"
    return (u.get("name"), u.get("role"), state, u.get("quota_bytes"), u.get("created_at"))


def _user_cells(u: dict[str, Any]) -> tuple[str, ...]:
    return (
        _esc(str(u.get("name", "-"))),
        _esc(str(u.get("role", "-"))),
        "[red]disabled[/]" if u.get("disabled") else "[green]enabled[/]",
        _size(u.get("quota_bytes")) if u.get("quota_bytes") is not None else "none",
        "yes" if u.get("has_password") else "no",
        _when(u.get("created_at")),
    )


def _show_users(users: list[dict[str, Any]], plain: bool) -> None:
    show_rows(_USER_COLUMNS, users, plain=plain, fields=_user_fields, cells=_user_cells)


@users_app.callback()
def users_main(ctx: typer.Context, plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Manage users (admins). Without a sub-command: the same as `users ls`."""
    group_main(ctx, url, key, lambda: users_ls(ctx, plain, url, key))


@users_app.command("ls")
def users_ls(ctx: typer.Context, plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """List users: role, enabled or disabled, quota."""
    with _gateway(*group_options(ctx, url, key)) as api:
        _show_users(api.request_json("GET", USERS)["users"], plain)


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    name: UserArg,
    role: Annotated[str, typer.Option("--role", help="user or admin.")] = "user",
    quota: Annotated[
        str | None, typer.Option("--quota", metavar="SIZE", help="Storage quota, e.g. 10GB (default: none).")
    ] = None,
    password_stdin: PasswordStdinOpt = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="No password sign-in: the user works with API keys only.")
    ] = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Create a user (asks for the new user's password unless --no-password)."""
    body: dict[str, Any] = {"name": name, "role": role, "quota_bytes": parse_quota(quota) if quota else None}
    body["password"] = None if no_password else _new_password(password_stdin)
    with _gateway(*group_options(ctx, url, key)) as api:
        user = api.request_json("POST", USERS, json=body)
    _show_users([user], plain=False)


@users_app.command("rm")
def users_rm(ctx: typer.Context, name: UserArg, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Delete a user with their keys and sessions (refused while they own buckets)."""
    with _gateway(*group_options(ctx, url, key)) as api:
        api.call("DELETE", _user_path(name))
    typer.echo(f"deleted user {name}")


def _patch_user(ctx: typer.Context, name: str, url: str | None, key: str | None, **changes: Any) -> None:
    with _gateway(*group_options(ctx, url, key)) as api:
        user = api.request_json("PATCH", _user_path(name), json=changes)
    _show_users([user], plain=False)


@users_app.command("disable")
def users_disable(ctx: typer.Context, name: UserArg, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Disable a user: their keys and sessions stop working at once."""
    _patch_user(ctx, name, url, key, disabled=True)


@users_app.command("enable")
def users_enable(ctx: typer.Context, name: UserArg, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Enable a disabled user again (their API keys work again; they must sign in anew)."""
    _patch_user(ctx, name, url, key, disabled=False)


@users_app.command("set")
def users_set(
    ctx: typer.Context,
    name: UserArg,
    role: Annotated[str | None, typer.Option("--role", help="user or admin.")] = None,
    quota: Annotated[
        str | None, typer.Option("--quota", metavar="SIZE", help="Storage quota, e.g. 10GB, or none.")
    ] = None,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Change a user's role or quota."""
    changes: dict[str, Any] = {}
    if role is not None:
        changes["role"] = role
    if quota is not None:
        changes["quota_bytes"] = parse_quota(quota)
    if not changes:
        raise typer.BadParameter("give --role and/or --quota")
    _patch_user(ctx, name, url, key, **changes)


def register(app: typer.Typer) -> None:
    """Attach the account commands to the main app."""
    app.command(help="Sign in with a password and save an API key for this machine.")(login)
    app.command(help="Revoke the key `login` saved and forget it.")(logout)
    app.command(help="Show who the configured credentials belong to.")(whoami)
    app.command(help="Change your password (admins: --user to reset someone else's).")(passwd)
    app.add_typer(users_app, name="users", help="List, add, remove, disable and change users (admins).")
    keys.register(app)
