"""Client commands: put, get, ls, stat, rm, nodes."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the client commands to the main app."""
