"""How listing commands print their rows: a Rich table, or tab-separated lines with --plain.

Every listing shows the same things in two forms. The table is for people: sizes
and times made readable, states in colour, long names folded. The plain lines
are for scripts: the raw values, one row per line, fields separated by tabs and
``-`` for a missing one, so ``cut -f`` and ``while read`` work on them. A command
describes its columns once and says how one item becomes a line and a row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import typer
from rich.console import Console, JustifyMethod, OverflowMethod
from rich.table import Column, Table

T = TypeVar("T")


@dataclass(frozen=True)
class Col:
    """One table column: its header and how its cells are laid out (Rich's defaults otherwise)."""

    header: str
    justify: JustifyMethod = "left"
    no_wrap: bool = False
    overflow: OverflowMethod = "ellipsis"

    def column(self) -> Column:
        return Column(self.header, justify=self.justify, no_wrap=self.no_wrap, overflow=self.overflow)


def plain_line(fields: Iterable[object]) -> str:
    """Fields separated by tabs, ``-`` for None (a missing field still takes its place)."""
    return "\t".join("-" if f is None else str(f) for f in fields)


def print_table(
    columns: Sequence[Col],
    rows: Iterable[Sequence[str]],
    *,
    empty: str | None = None,
    empty_to_stderr: bool = False,
    pad_edge: bool = True,
) -> None:
    """Print ``rows`` (Rich markup) under ``columns``.

    With no rows and an ``empty`` message, print that instead of a bare header;
    ``empty_to_stderr`` sends it to standard error, for commands whose standard
    output a script should find empty when there is nothing.
    """
    table = Table(*(c.column() for c in columns), box=None, pad_edge=pad_edge)
    for row in rows:
        table.add_row(*row)
    if table.row_count or empty is None:
        Console(highlight=False).print(table)
    elif empty_to_stderr:
        Console(stderr=True, highlight=False).print(empty, style="dim", markup=False)
    else:
        typer.echo(empty)


def show_rows(
    columns: Sequence[Col],
    items: Iterable[T],
    *,
    plain: bool,
    fields: Callable[[T], Sequence[object]],
    cells: Callable[[T], Sequence[str]],
    empty: str | None = None,
    empty_to_stderr: bool = False,
    pad_edge: bool = True,
) -> None:
    """Print ``items`` as plain lines of ``fields(item)``, or as a table of ``cells(item)``.

    Plain lines are printed as ``items`` yields them, so a long paged listing
    starts at once; with --plain nothing at all is printed for no items, as a
    script reading the lines wants. ``empty``, ``empty_to_stderr`` and
    ``pad_edge`` are as for :func:`print_table`.
    """
    if plain:
        for item in items:
            typer.echo(plain_line(fields(item)))
        return
    print_table(
        columns,
        (cells(item) for item in items),
        empty=empty,
        empty_to_stderr=empty_to_stderr,
        pad_edge=pad_edge,
    )
