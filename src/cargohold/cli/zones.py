"""`cargohold zones`: list zones, define one (coordinates, client networks), remove one; `whereami`."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from cargohold.cli.client import KeyOpt, PlainOpt, UrlOpt, _esc, _gateway, group_main, group_options
from cargohold.cli.output import Col, plain_line, show_rows

zones_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)

_COLUMNS = (
    Col("zone", overflow="fold"),
    Col("latitude", justify="right", no_wrap=True),
    Col("longitude", justify="right", no_wrap=True),
    Col("networks", overflow="fold"),
    Col("nodes", justify="right", no_wrap=True),
)


def _fields(z: dict[str, Any]) -> tuple[object, ...]:
    """Plain: name latitude longitude networks(comma-separated) nodes defined."""
    networks = ",".join(z.get("networks") or []) or "-"
    return (z.get("name"), z.get("latitude"), z.get("longitude"), networks, z.get("nodes"), z.get("defined"))


def _number(value: object) -> str:
    return "-" if value is None else str(value)


def _cells(z: dict[str, Any]) -> tuple[str, ...]:
    name = _esc(str(z.get("name", "-"))) + ("" if z.get("defined") else " [dim](undefined)[/]")
    return (
        name,
        _number(z.get("latitude")),
        _number(z.get("longitude")),
        _esc(", ".join(z.get("networks") or []) or "-"),
        _number(z.get("nodes")),
    )


def _show(zones: list[dict[str, Any]], plain: bool) -> None:
    show_rows(_COLUMNS, zones, plain=plain, fields=_fields, cells=_cells, empty="no zones")


def _path(name: str) -> str:
    return f"/api/v1/zones/{quote(name, safe='')}"


@zones_app.callback()
def zones_main(ctx: typer.Context, plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Show and define zones. Without a sub-command: the same as `zones ls`."""
    group_main(ctx, url, key, lambda: zones_ls(ctx, plain, url, key))


@zones_app.command("ls")
def zones_ls(ctx: typer.Context, plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Zones defined, and those nodes name without a definition: place, client networks, nodes."""
    with _gateway(*group_options(ctx, url, key)) as api:
        _show(list(api.request_json("GET", "/api/v1/zones")["zones"]), plain)


@zones_app.command("set")
def zones_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="ZONE", help="Zone name (1-64 of letters, digits, . _ -).")],
    latitude: Annotated[float | None, typer.Option("--lat", help="Latitude, -90 to 90.")] = None,
    longitude: Annotated[float | None, typer.Option("--lon", help="Longitude, -180 to 180.")] = None,
    network: Annotated[
        list[str] | None,
        typer.Option("--network", help="A client network in CIDR form (repeatable).", metavar="CIDR"),
    ] = None,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Create or replace a zone whole: what is not given is cleared (admin)."""
    body: dict[str, Any] = {"networks": list(network or [])}
    if latitude is not None:
        body["latitude"] = latitude
    if longitude is not None:
        body["longitude"] = longitude
    with _gateway(*group_options(ctx, url, key)) as api:
        zone = api.request_json("PUT", _path(name), json=body)
    _show([zone], plain=False)


@zones_app.command("rm")
def zones_rm(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="ZONE")],
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Forget a zone's definition (refused while nodes are in it) (admin)."""
    with _gateway(*group_options(ctx, url, key)) as api:
        api.call("DELETE", _path(name), what=f"zone {name}")
    typer.echo(f"removed zone {name}")


def whereami(plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Where the gateway places you: your address, your zone, and the rule that decided it."""
    with _gateway(url, key) as api:
        answer = api.request_json("GET", "/api/v1/whereami")
    if plain:
        for name in ("address", "zone", "decided_by", "forwarded", "network", "distance_km", "gateway_zone"):
            typer.echo(plain_line((name, answer.get(name))))
        return
    why = {"network": f"network {answer.get('network')}", "geoip": "GeoIP, nearest zone"}.get(
        str(answer.get("decided_by")), "the gateway's own zone (nothing else matched)"
    )
    typer.echo(f"{answer.get('address')} is in zone {answer.get('zone')}, by {why}")


def register(app: typer.Typer) -> None:
    """Attach `zones` and `whereami` to the main app."""
    app.add_typer(zones_app, name="zones", help="Show and define zones (place, client networks).")
    app.command("whereami")(whereami)
