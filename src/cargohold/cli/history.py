"""`cargohold history`: who did what, when and from where, newest first.

The gateway answers a page at a time (at most 1000 events); this command
follows the cursor until it has ``--limit`` events, so a user asks for how
many they want to see, not how the API pages.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from cargohold.cli.api_client import GatewayClient
from cargohold.cli.client import KeyOpt, UrlOpt, _esc, _gateway, _size, _when
from cargohold.cli.output import Col, print_table

#: What one request to the gateway may return (its maximum page size).
PAGE_MAX = 1000

_AGO = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str) -> str:
    """An ISO 8601 time, passed on as given, or an age such as 30m, 12h, 7d (that long ago)."""
    text = value.strip()
    ago = _AGO.match(text.lower())
    if ago:
        moment = datetime.now(UTC) - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
        return moment.isoformat(timespec="seconds")
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            "expected an ISO 8601 time (2026-01-31T12:00Z) or an age (30m, 12h, 7d)"
        ) from None
    return text


def fetch(api: GatewayClient, filters: dict[str, str], limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` events matching ``filters``, following the cursor across pages."""
    return api.collect("/api/v1/history", "events", filters, limit, cursor="cursor", page_max=PAGE_MAX)


def _target(event: dict[str, Any]) -> str:
    bucket, key = event.get("bucket"), event.get("key")
    if bucket and key:
        return f"{bucket}/{key}"
    return str(bucket or key or "-")


def _result(event: dict[str, Any]) -> str:
    result, status = event.get("result"), event.get("status")
    if result == "ok":
        return f"[green]{status} ok[/]"
    return f"[red]{status} {_esc(str(result))}[/]"


_EVENT_COLUMNS = (
    Col("time (UTC)", no_wrap=True),
    Col("user", overflow="fold"),
    Col("action", no_wrap=True),
    Col("bucket/key", overflow="fold"),
    Col("result", no_wrap=True),
    Col("size", justify="right", no_wrap=True),
    Col("client", no_wrap=True),
)


def _event_cells(e: dict[str, Any]) -> tuple[str, ...]:
    return (
        _when(e.get("at")),
        _esc(str(e.get("user") or "-")),
        _esc(str(e.get("action", "-"))),
        _esc(_target(e)),
        _result(e),
        _size(e.get("size")),
        _esc(str(e.get("client") or "-")),
    )


def history(
    user: Annotated[str | None, typer.Option("--user", help="Only calls made by this user.")] = None,
    bucket: Annotated[str | None, typer.Option("--bucket", help="Only calls on this bucket.")] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Only keys starting with this.")] = None,
    action: Annotated[
        str | None,
        typer.Option("--action", help="An action (object.read) or all of a resource's (object)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", parser=parse_when, help="From this time (ISO 8601) or age (30m, 12h, 7d)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", parser=parse_when, help="Before this time (ISO 8601) or age."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many events.")] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", help="The events as a JSON array (for scripts).")
    ] = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Show the action history, newest first: admins see every call, users their own and their buckets'."""
    given = {
        "user": user,
        "bucket": bucket,
        "prefix": prefix,
        "action": action,
        "since": since,
        "until": until,
    }
    filters = {name: value for name, value in given.items() if value}
    with _gateway(url, key) as api:
        events = fetch(api, filters, limit)
    if as_json:
        typer.echo(json.dumps(events, indent=2))
    else:
        print_table(_EVENT_COLUMNS, map(_event_cells, events), empty="no matching events")


def register(app: typer.Typer) -> None:
    """Attach the `history` command to the main app."""
    app.command("history")(history)
