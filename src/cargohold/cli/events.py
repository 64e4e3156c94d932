"""`cargohold events` and `cargohold webhooks`: watch what changes, and have it sent somewhere.

``cargohold events`` prints the events the caller may see, oldest first, up
to now; ``--follow`` keeps the stream open and prints each event as it
comes, reconnecting with ``Last-Event-ID`` when the connection drops, so
nothing is missed or printed twice. ``--json`` prints one JSON document a
line (for scripts and ``jq``).

``cargohold webhooks create URL`` subscribes a URL and prints the signing
secret, the only time it is shown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer

from cargohold.cli.api_client import GatewayClient, TransportError
from cargohold.cli.client import (
    KeyOpt,
    PlainOpt,
    UrlOpt,
    _esc,
    _gateway,
    _size,
    _stderr,
    _when,
    group_main,
    group_options,
)
from cargohold.cli.output import Col, show_rows

EVENTS = "/api/v1/events"
WEBHOOKS = "/api/v1/webhooks"
#: Longer than the stream's 15 s heartbeat: a silent minute means the connection is gone.
STREAM_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
RECONNECT_DELAY = 1.0

TypeOpt = Annotated[
    list[str] | None,
    typer.Option("--type", help="Only this type (upload.completed) or family (upload.*); repeatable."),
]
BucketOpt = Annotated[str | None, typer.Option("--bucket", help="Only events of this bucket.")]


def read_stream(lines: Iterator[str]) -> Iterator[tuple[int | None, dict[str, Any] | None]]:
    """Server-sent events as (id, data): ``data`` None for a block that only moves the id."""
    event_id: int | None = None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield event_id, json.loads("\n".join(data))
            elif event_id is not None:
                yield event_id, None
            event_id, data = None, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id" and value.isdigit():
                event_id = int(value)
            elif name == "data":
                data.append(value)


def _target(e: dict[str, Any]) -> str:
    bucket, key = e.get("bucket"), e.get("key")
    return f"{bucket}/{key}" if bucket and key else str(bucket or "-")


def _line(e: dict[str, Any]) -> str:
    detail = e.get("detail") or {}
    extra = " ".join(
        f"{k}={v}" for k, v in detail.items() if v is not None and not isinstance(v, dict | list)
    )
    size = _size(e.get("size"))
    return f"{e.get('id')}\t{_when(e.get('time'))}\t{e.get('type')}\t{_target(e)}\t{size}\t{extra}".rstrip()


def events(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing events as they come.")
    ] = False,
    types: TypeOpt = None,
    bucket: BucketOpt = None,
    after: Annotated[
        int | None,
        typer.Option("--after", min=0, help="Start after this event id (default: the oldest kept)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document a line.")] = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Print the events you may see: your own doings and your buckets'; an admin's, all."""
    params: list[tuple[str, str]] = [("type", t) for t in types or ()]
    if bucket:
        params.append(("bucket", bucket))
    if not follow:
        params.append(("follow", "false"))
    cursor = after if after is not None else (None if follow else 0)
    with _gateway(url, key) as api:
        while True:
            try:
                cursor = _print_stream(api, params, cursor, as_json)
            except TransportError as exc:
                if not follow:
                    raise
                _stderr().print(f"stream lost ({exc.detail}); reconnecting", style="yellow", markup=False)
                time.sleep(RECONNECT_DELAY)
                continue
            if not follow:
                return


def _print_stream(
    api: GatewayClient, params: list[tuple[str, str]], cursor: int | None, as_json: bool
) -> int | None:
    headers = {"Last-Event-ID": str(cursor)} if cursor is not None else {}
    with api.stream(EVENTS, params=params, headers=headers, timeout=STREAM_TIMEOUT) as response:
        for event_id, data in read_stream(response.iter_lines()):
            if event_id is not None:
                cursor = event_id
            if data is not None:
                typer.echo(json.dumps(data) if as_json else _line(data))
    return cursor


# -- webhooks ------------------------------------------------------------------------------

webhooks_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)

_HOOK_COLUMNS = (
    Col("id", no_wrap=True),
    Col("url", overflow="fold"),
    Col("types", overflow="fold"),
    Col("bucket", overflow="fold"),
    Col("status", no_wrap=True),
    Col("delivered", justify="right", no_wrap=True),
    Col("failing", no_wrap=True),
)


def _hook_fields(h: dict[str, Any]) -> tuple[object, ...]:
    """Plain: id url types bucket status delivered failed_attempts."""
    return (h.get("id"), h.get("url"), ",".join(h.get("types") or []), h.get("bucket") or "-",
            h.get("status"), h.get("delivered"), h.get("failed_attempts"))  # fmt: skip


def _hook_cells(h: dict[str, Any]) -> tuple[str, ...]:
    status = str(h.get("status"))
    failing = (
        f"{h.get('failed_attempts')} since {_when(h.get('failing_since'))}" if h.get("failing_since") else "-"
    )
    return (
        _esc(str(h.get("id"))),
        _esc(str(h.get("url"))),
        _esc(",".join(h.get("types") or [])),
        _esc(str(h.get("bucket") or "-")),
        f"[green]{status}[/]" if status == "active" else f"[red]{_esc(status)}[/]",
        _size(h.get("delivered")),
        _esc(failing),
    )


def _hook(webhook_id: str) -> str:
    return f"{WEBHOOKS}/{quote(webhook_id, safe='')}"


@webhooks_app.callback()
def webhooks_main(
    ctx: typer.Context, plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None
) -> None:
    """Webhooks: have events sent to a URL, signed (Standard Webhooks). Without a command: list them."""
    group_main(ctx, url, key, lambda: webhooks_ls(ctx, plain, url, key))


@webhooks_app.command("ls")
@webhooks_app.command("list")
def webhooks_ls(ctx: typer.Context, plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """List your webhooks (an admin's: everyone's)."""
    with _gateway(*group_options(ctx, url, key)) as api:
        hooks = api.request_json("GET", WEBHOOKS)["webhooks"]
    show_rows(_HOOK_COLUMNS, hooks, plain=plain, fields=_hook_fields, cells=_hook_cells, empty="no webhooks")


@webhooks_app.command("create")
def webhooks_create(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="URL", help="Where to POST the events.")],
    types: TypeOpt = None,
    bucket: BucketOpt = None,
    secret: Annotated[
        str | None, typer.Option("--secret", help="whsec_... to sign with (default: a new random one).")
    ] = None,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Subscribe URL to events; prints the webhook id, then the signing secret (shown only now)."""
    body: dict[str, Any] = {"url": target}
    if types:
        body["types"] = list(types)
    if bucket:
        body["bucket"] = bucket
    if secret:
        body["secret"] = secret
    with _gateway(*group_options(ctx, url, key)) as api:
        made = api.request_json("POST", WEBHOOKS, json=body)
    typer.echo(f"{made['id']}\t{made['secret']}")
    _stderr().print(
        f"webhook {made['id']} sends {','.join(made['types'])} to {made['url']}; keep the secret: it is not"
        " shown again",
        markup=False,
    )


@webhooks_app.command("delete")
@webhooks_app.command("rm")
def webhooks_delete(
    ctx: typer.Context,
    webhook_id: Annotated[str, typer.Argument(metavar="ID")],
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Delete a webhook: nothing more is sent to it."""
    with _gateway(*group_options(ctx, url, key)) as api:
        api.call("DELETE", _hook(webhook_id), webhook_id)
    _stderr().print(f"deleted webhook {webhook_id}", markup=False)


_ATTEMPT_COLUMNS = (
    Col("time (UTC)", no_wrap=True),
    Col("event", justify="right", no_wrap=True),
    Col("type", no_wrap=True),
    Col("try", justify="right", no_wrap=True),
    Col("result", no_wrap=True),
    Col("ms", justify="right", no_wrap=True),
    Col("error", overflow="fold"),
)


def _attempt_fields(a: dict[str, Any]) -> tuple[object, ...]:
    """Plain: at event_id type attempt ok status_code latency_ms error."""
    result = "ok" if a.get("ok") else "failed"
    return (a.get("at"), a.get("event_id") or "-", a.get("type"), a.get("attempt"), result,
            a.get("status_code") or "-", a.get("latency_ms"), a.get("error") or "")  # fmt: skip


def _attempt_cells(a: dict[str, Any]) -> tuple[str, ...]:
    status = a.get("status_code") or "-"
    result = f"[green]{status}[/]" if a.get("ok") else f"[red]{status}[/]"
    latency = a.get("latency_ms")
    return (
        _when(a.get("at")),
        str(a.get("event_id") or "-"),
        _esc(str(a.get("type"))),
        str(a.get("attempt")),
        result,
        f"{latency:.1f}" if isinstance(latency, int | float) else "-",
        _esc(str(a.get("error") or "")),
    )


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    ctx: typer.Context,
    webhook_id: Annotated[str, typer.Argument(metavar="ID")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many attempts.")] = 50,
    plain: PlainOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """A webhook's delivery attempts, newest first: status code, latency, error."""
    with _gateway(*group_options(ctx, url, key)) as api:
        attempts = api.collect(
            _hook(webhook_id) + "/deliveries", "deliveries", {}, limit, cursor="cursor", page_max=1000
        )
    show_rows(
        _ATTEMPT_COLUMNS,
        attempts,
        plain=plain,
        fields=_attempt_fields,
        cells=_attempt_cells,
        empty="no attempts",
    )


@webhooks_app.command("ping")
def webhooks_ping(
    ctx: typer.Context,
    webhook_id: Annotated[str, typer.Argument(metavar="ID")],
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Send a signed webhook.ping now and show what the receiver answered (exit 1 if it failed)."""
    with _gateway(*group_options(ctx, url, key)) as api:
        answer = api.request_json("POST", _hook(webhook_id) + "/ping")
    latency = f"{answer['latency_ms']:.1f} ms"
    if answer["ok"]:
        typer.echo(f"ok: {answer['status_code']} in {latency}")
        return
    typer.echo(f"failed: {answer.get('error') or answer.get('status_code')} ({latency})")
    raise typer.Exit(1)


@webhooks_app.command("settings")
def webhooks_settings(
    ctx: typer.Context,
    allow_private: Annotated[
        bool | None,
        typer.Option(
            "--allow-private/--deny-private",
            help="Let webhooks target private, loopback and link-local addresses (admin).",
        ),
    ] = None,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Show or change the cluster's webhook settings (admin)."""
    with _gateway(*group_options(ctx, url, key)) as api:
        if allow_private is None:
            settings = api.request_json("GET", EVENTS + "/settings")
        else:
            settings = api.request_json(
                "PATCH", EVENTS + "/settings", json={"webhook_allow_private": allow_private}
            )
    for name, value in settings.items():
        typer.echo(f"{name}\t{json.dumps(value)}")


def register(app: typer.Typer) -> None:
    """Attach `events` and the `webhooks` group to the main app."""
    app.command("events")(events)
    app.add_typer(
        webhooks_app, name="webhooks", help="Send events to a URL: create, ls, delete, deliveries, ping."
    )
