"""Commands that run server roles: ``up``, ``gateway``, ``node``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the role commands to the main app."""
