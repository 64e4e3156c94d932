"""`cargohold nodes`: list storage nodes, add one, change one, drain, remove or mark one lost.

Draining, removal and loss are the operator's side of self-healing: a
draining node's shares are moved off by the worker until it is ``retired``;
a retired (empty) node can be removed; a node marked ``lost`` has its shares
rebuilt elsewhere at once instead of after ``node_lost_after``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

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

_STYLES = {
    "up": "green",
    "down": "red",
    "normal": "green",
    "draining": "yellow",
    "retired": "dim",
    "lost": "red",
    "off": "yellow",
    "inactive": "yellow",
}
BAR_WIDTH = 10


def _status(n: dict[str, Any]) -> str:
    """up or down, as the gateway's health probes last saw the node."""
    status = n.get("status")
    return str(status) if status else "up" if n.get("healthy") else "down"


def _use(n: dict[str, Any]) -> tuple[str, str]:
    return ("on" if n.get("enabled") else "off", "active" if n.get("active") else "inactive")


def fill_bar(fill: object, width: int = BAR_WIDTH) -> str:
    """``█████░░░░░ 48.2%`` for a fill of 0.482 (a fraction); ``-`` when unknown."""
    if isinstance(fill, bool) or not isinstance(fill, int | float):
        return "-"
    share = min(max(float(fill), 0.0), 1.0)
    full = round(share * width)
    return "█" * full + "░" * (width - full) + f" {fill * 100:.1f}%"


def _fill_cell(n: dict[str, Any]) -> str:
    fill = n.get("fill")
    bar = fill_bar(fill)
    if bar == "-":
        return bar
    assert isinstance(fill, int | float)
    style = "red" if fill >= 0.9 else "yellow" if fill >= 0.75 else "green"
    return f"[{style}]{bar}[/]"


def _styled(word: str) -> str:
    return f"[{_STYLES[word]}]{_esc(word)}[/]" if word in _STYLES else _esc(word)


_NODE_COLUMNS = (
    Col("id", overflow="fold"),
    Col("url", no_wrap=True),
    Col("zone", overflow="fold"),
    Col("status", no_wrap=True),
    Col("state", no_wrap=True),
    *(Col(h, justify="right", no_wrap=True) for h in ("capacity", "used")),
    Col("fill", no_wrap=True),
    Col("shares", justify="right", no_wrap=True),
)


def _node_fields(n: dict[str, Any]) -> tuple[object, ...]:
    """Plain: id url zone status state on|off active|inactive capacity used fill shares."""
    return (n.get("id"), n.get("url"), n.get("zone"), _status(n), n.get("state") or "normal", *_use(n),
            n.get("capacity"), n.get("used"), n.get("fill"), n.get("shares"))  # fmt: skip


def _node_cells(n: dict[str, Any]) -> tuple[str, ...]:
    # The state column names the life state; "off" or "inactive" follow only when they apply.
    state = [str(n.get("state") or "normal"), *(w for w in _use(n) if w in ("off", "inactive"))]
    return (
        _esc(str(n.get("id", "-"))),
        _esc(str(n.get("url", "-"))),
        _esc(str(n.get("zone") or "-")),
        _styled(_status(n)),
        " ".join(_styled(word) for word in state),
        _size(n.get("capacity")),
        _size(n.get("used")),
        _fill_cell(n),
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
    """List nodes: up/down, state (normal, draining, retired, lost; off, inactive), fill, shares."""
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


NodeIdArg = Annotated[str, typer.Argument(metavar="ID", help="Node id, as shown by `nodes ls`.")]


def _node_path(node_id: str) -> str:
    return f"/api/v1/nodes/{quote(node_id, safe='')}"


@nodes_app.command("drain")
def nodes_drain(
    ctx: typer.Context,
    node_id: NodeIdArg,
    cancel: Annotated[
        bool, typer.Option("--cancel", help="Stop draining: the node is normal again and keeps its shares.")
    ] = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Move every share off a node (it keeps serving reads meanwhile); empty, it becomes retired."""
    with _gateway(*group_options(ctx, url, key)) as api:
        node = api.update_node(node_id, state="normal" if cancel else "draining")
    _show_nodes([node], plain=False)
    if not cancel:
        typer.echo(
            f"node {node_id} is draining: watch `cargohold jobs --kind drain`; then `nodes rm {node_id}`"
        )


@nodes_app.command("lost")
def nodes_lost(ctx: typer.Context, node_id: NodeIdArg, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Mark a node lost for good: every part it held is rebuilt on other nodes now."""
    with _gateway(*group_options(ctx, url, key)) as api:
        node = api.update_node(node_id, state="lost")
    _show_nodes([node], plain=False)
    typer.echo(f"node {node_id} is lost: its shares are being rebuilt (`cargohold jobs --kind repair`)")


@nodes_app.command("rm")
def nodes_rm(ctx: typer.Context, node_id: NodeIdArg, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Remove a node that holds no shares any more (drain it first)."""
    with _gateway(*group_options(ctx, url, key)) as api:
        api.call("DELETE", _node_path(node_id), what=f"node {node_id}")
    typer.echo(f"removed node {node_id}")


def register(app: typer.Typer) -> None:
    """Attach the `nodes` command group to the main app."""
    app.add_typer(nodes_app, name="nodes", help="Show and manage storage nodes.")
