"""Small SQL helpers the repositories share, each hiding one SQLite/PostgreSQL difference."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

T = TypeVar("T")

# Well under SQLite's bound-parameter limit, and keeps PostgreSQL plans sane.
IN_CHUNK = 500


def insert_or_nothing(conn: AsyncConnection, table: Table, values: Mapping[str, Any]) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``: a duplicate yields no row instead of an error.

    Unlike catching ``IntegrityError``, this leaves a PostgreSQL transaction
    usable, so the repositories can turn a duplicate into a domain error in
    the middle of a caller's larger transaction.
    """
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).values(**values).on_conflict_do_nothing()
    return sqlite.insert(table).values(**values).on_conflict_do_nothing()


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """Split a long ``IN (...)`` list into statements of bounded size."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
