"""Placeholder route table; filled in by its feature."""

from __future__ import annotations

from cargohold.api.native import Route

ROUTES: tuple[Route, ...] = ()
