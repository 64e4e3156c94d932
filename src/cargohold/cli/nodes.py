"""`cargohold nodes`: list storage nodes, add one, switch it on/off or active/inactive."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cargohold.cli.client import (
    KeyOpt,
    PlainOpt,
    UrlOpt,
    _esc,
    _gateway,
    _size,
    group_main,
    group_options,
    parse_node_url,
)
from cargohold.cli.output import Col, show_rows

nodes_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)

_STATE_STYLES = {"down": "red", "off": "yellow", "inactive": "yellow", "up": "green"}


def _node_state(n: dict[str, Any]) -> tuple[str, str, str]:
    return (
        "up" if n.get("healthy") else "down",
        "on" if n.get("enabled") else "off",
        "active" if n.get("active") else "inactive",
    )


def _fill(n: dict[str, Any]) -> str:
    fill = n.get("fill")
    if not isinstance(fill, int | float):
        return "-"
    style = "red" if fill >= 0.9 else "yellow" if fill >= 0.75 else "green"
    return f"[{style}]{fill * 100:.1f}%[/]"


_NODE_COLUMNS = (
    Col("id", overflow="fold"),
    Col("url", no_wrap=True),
    Col("zone", overflow="fold"),
    Col("state", no_wrap=True),
    *(Col(h, justify="right", no_wrap=True) for h in ("capacity", "used", "fill", "shares")),
)


def _node_fields(n: dict[str, Any]) -> tuple[object, ...]:
    return (n.get("id"), n.get("url"), n.get("zone"), " ".join(_node_state(n)), n.get("capacity"),
            n.get("used"), n.get("fill"), n.get("shares"))  # fmt: skip


def _node_cells(n: dict[str, Any]) -> tuple[str, ...]:
    return (
        _esc(str(n.get("id", "-"))),
        _esc(str(n.get("url", "-"))),
        _esc(str(n.get("zone") or "-")),
        " ".join(f"[{_STATE_STYLES[w]}]{w}[/]" if w in _STATE_STYLES else w for w in _node_state(n)),
        _size(n.get("capacity")),
        _size(n.get("used")),
        _fill(n),
        str(n.get("shares", "-")),
    )


def _show_nodes(nodes: list[dict[str, Any]], plain: bool) -> None:
    show_rows(_NODE_COLUMNS, nodes, plain=plain, fields=_node_fields, cells=_node_cells)


@nodes_app.callback()
def nodes_main(ctx: typer.Context, plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Show and manage storage nodes. Without a sub-command: the same as `nodes ls`."""
    group_main(ctx, url, key, lambda: nodes_ls(ctx, plain, url, key))


@nodes_app.command("ls")
def nodes_ls(ctx: typer.Context, plain: PlainOpt = False, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """List nodes: state (up/down, on/off, active/inactive), capacity, fill, shares."""
    with _gateway(*group_options(ctx, url, key)) as api:
        _show_nodes(api.list_nodes(), plain)


@nodes_app.command("add")
def nodes_add(
    ctx: typer.Context,
    node_url: Annotated[
        str, typer.Argument(metavar="URL", parser=parse_node_url, help="The node's base URL.")
    ],
    zone: Annotated[
        str | None, typer.Option("--zone", help="Zone of the node (default: the gateway's).")
    ] = None,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Register a storage node with the gateway."""
    with _gateway(*group_options(ctx, url, key)) as api:
        node = api.add_node(node_url, zone)
    _show_nodes([node], plain=False)


@nodes_app.command("set")
def nodes_set(
    ctx: typer.Context,
    node_id: Annotated[str, typer.Argument(metavar="ID", help="Node id, as shown by `nodes ls`.")],
    enabled: Annotated[
        bool | None,
        typer.Option(
            "--on/--off",
            help="Enable the node, or disable it (no reads or writes).",
            show_default=False,
        ),
    ] = None,
    active: Annotated[
        bool | None,
        typer.Option(
            "--active/--inactive",
            help="Take new shares, or drain: serve but take none.",
            show_default=False,
        ),
    ] = None,
    zone: Annotated[str | None, typer.Option("--zone", help="Move the node to zone Z.", metavar="Z")] = None,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Change a node: enable/disable it, mark it active/inactive, or change its zone."""
    if enabled is None and active is None and zone is None:
        raise typer.BadParameter("give at least one of --on/--off, --active/--inactive, --zone")
    with _gateway(*group_options(ctx, url, key)) as api:
        node = api.update_node(node_id, enabled=enabled, active=active, zone=zone)
    _show_nodes([node], plain=False)


def register(app: typer.Typer) -> None:
    """Attach the `nodes` command group to the main app."""
    app.add_typer(nodes_app, name="nodes", help="Show and manage storage nodes.")
