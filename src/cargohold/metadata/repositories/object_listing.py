"""Listing pages of a bucket's live keys: the SQL side of :mod:`cargohold.metadata.listing`.

A page costs one statement and one index seek per entry it returns,
whatever the bucket holds:

* without a delimiter a page is one range read of ``ix_objects_live``
  (``limit + 1`` rows: the extra one says whether more follow);
* with one, a recursive CTE *walks* that index: each step is one seek to the
  next key by :func:`~cargohold.metadata.listing.walk_seek` (after a key that
  opens a common prefix, the seek lands past the whole group), so a
  "directory" of a million keys costs one seek like a single object does.
  Doing the walk inside the database matters as much as the seeks: a round
  trip per common prefix costs more than the seek itself.

The walk cuts and joins strings with the engine's own ``length``, ``substr``
and ``instr``/``strpos``, which count characters of the key as stored, so the
cut lands where Python's does (code points; PostgreSQL's database encoding
is UTF8). Keys compare byte-wise on both engines (see ``tables``), which is
code-point order. A delimiter made of U+10FFFF alone cannot be walked this
way (:func:`~cargohold.metadata.listing.group_bump`); it is read in small
batches with a seek after each group instead.

``ix_objects_live`` is partial; its predicate is the one :func:`_live`
renders on each engine, which is what lets the planner use it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Integer,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    null,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import CompoundSelect, Executable, Select

from cargohold.domain.model import ObjectRecord
from cargohold.metadata.listing import Lister, Step, group_bump
from cargohold.metadata.repositories.objects import _LISTED_COLUMNS
from cargohold.metadata.tables import objects

#: Keys per read when a delimiter cannot be walked: a read ends at the first group.
GROUPED_BATCH = 32


def listed(row: Sequence[Any]) -> ObjectRecord:
    """A listing entry from a row of ``_LISTED_COLUMNS``: no parts, inline data or stored headers.

    Unpacked by position: a page builds a thousand of these, and reading a
    row's columns by name costs more than the rest of the page together.
    """
    (row_id, bucket_id, key, size, etag, content_type, md5, sha256, created_at,
     version_id, is_latest, delete_marker, versioned) = row  # fmt: skip
    return ObjectRecord(
        row_id, bucket_id, key, size, etag, content_type, created_at, md5, sha256,
        None, (), version_id, is_latest, delete_marker, versioned,
    )  # fmt: skip


def _live(table: FromClause) -> ColumnElement[bool]:
    """The rows ``ix_objects_live`` holds: a key's latest version, unless it is a delete marker."""
    return and_(table.c.bucket_id == bindparam("bucket_id"), table.c.is_latest, ~table.c.delete_marker)


def _after(column: ColumnElement[str], inclusive: bool, bounded: bool) -> list[ColumnElement[bool]]:
    """From the lister's position (``:position``) up to its upper bound (``:upper``), if any."""
    lower = column >= bindparam("position") if inclusive else column > bindparam("position")
    return [lower, column < bindparam("upper")] if bounded else [lower]


@functools.cache
def _range(inclusive: bool, bounded: bool) -> Select[Any]:
    """Up to ``:count`` live keys from the lister's position on, in key order."""
    return (
        select(*_LISTED_COLUMNS)
        .where(_live(objects), *_after(objects.c.key, inclusive, bounded))
        .order_by(objects.c.key)
        .limit(bindparam("count", type_=Integer))
    )


@functools.cache
def _walk(dialect: str, inclusive: bool, bounded: bool) -> Select[Any] | CompoundSelect[Any]:
    """The first ``:count`` entries of the page, one seek each, in one statement.

    ``walk(n, key)`` holds the key that opened the n-th entry: an object, or
    the first key of a common prefix. Step n+1 seeks from key n by
    ``walk_seek``: past ``key[:cut] + :bump`` when the remainder after
    ``:prefix`` holds ``:delimiter`` at ``cut``, else past the key itself
    (``>= bound AND != key`` is one range seek, ``bound`` being the key or
    above it). Then the objects' rows are read by key, one probe each; a key
    that opened a common prefix comes back alone (its row is not needed),
    with a NULL id.
    """
    first_row = objects.alias("first_row")
    first = (
        select(first_row.c.key)
        .where(_live(first_row), *_after(first_row.c.key, inclusive, bounded))
        .order_by(first_row.c.key)
        .limit(1)
        .scalar_subquery()
    )
    walk = select(literal(1, Integer).label("n"), first.label("key")).cte("walk", recursive=True)

    prefix_length = func.length(bindparam("prefix", type_=String))
    find = func.strpos if dialect == "postgresql" else func.instr

    def cut(key: ColumnElement[str]) -> ColumnElement[int]:
        """Where the delimiter starts in the remainder after the prefix (1-based; 0: nowhere)."""
        rest = func.substr(key, prefix_length + 1, type_=String)
        return find(rest, bindparam("delimiter", type_=String), type_=Integer)

    group_start = func.substr(walk.c.key, 1, prefix_length + cut(walk.c.key) - 1, type_=String)
    bound = case((cut(walk.c.key) > 0, group_start.concat(bindparam("bump", type_=String))), else_=walk.c.key)
    next_row = objects.alias("next_row")
    step = (
        select(next_row.c.key)
        .where(_live(next_row), next_row.c.key >= bound, next_row.c.key != walk.c.key)
        .where(*_after(next_row.c.key, True, bounded)[1:])
        .order_by(next_row.c.key)
        .limit(1)
        .scalar_subquery()
    )
    walk = walk.union_all(
        select(walk.c.n + 1, step).where(
            walk.c.key.is_not(None), walk.c.n < bindparam("count", type_=Integer)
        )
    )
    if dialect == "postgresql":
        # A lateral read per walked key, fenced by LIMIT so the planner cannot turn it into
        # a join that reads the whole bucket (on a small one it would, and rightly, but a
        # page must not depend on that guess).
        found = (
            select(*_LISTED_COLUMNS)
            .where(_live(objects), objects.c.key == walk.c.key, cut(walk.c.key) == 0)
            .limit(1)
            .lateral("found")
        )
        columns = (walk.c.key if column.name == "key" else found.c[column.name] for column in _LISTED_COLUMNS)
        return (
            select(*columns)
            .select_from(walk.outerjoin(found, true()))
            .where(walk.c.key.is_not(None))
            .order_by(walk.c.n)
        )
    # SQLite has no LATERAL; it reads ``key IN (walked keys)`` as one index probe per key.
    listed_objects = select(*_LISTED_COLUMNS).where(
        _live(objects), objects.c.key.in_(select(walk.c.key).where(cut(walk.c.key) == 0))
    )
    group_starts = select(
        *(walk.c.key if column.name == "key" else null() for column in _LISTED_COLUMNS)
    ).where(cut(walk.c.key) > 0)
    return union_all(listed_objects, group_starts).order_by(listed_objects.selected_columns.key)


async def list_objects(
    conn: AsyncConnection,
    bucket_id: int,
    prefix: str = "",
    delimiter: str | None = None,
    limit: int = 1000,
    cursor: str | None = None,
) -> tuple[list[ObjectRecord], list[str], str | None]:
    """One page of an S3-style listing: ``(objects, common_prefixes, next_cursor)``.

    Grouping and pagination rules are in :mod:`cargohold.metadata.listing`;
    the records carry no parts and no inline data. One statement per page
    (see the module docstring), so the page is one snapshot on both engines.
    """
    lister = Lister(prefix, delimiter, limit, cursor)
    bump = group_bump(lister.delimiter) if lister.delimiter else None
    grouped_by_reads = lister.delimiter is not None and bump is None
    found: list[ObjectRecord] = []
    while not lister.done:
        want = lister.wanted()
        pos = lister.position
        bounded = lister.upper is not None
        params: dict[str, Any] = {"bucket_id": bucket_id, "position": pos.key, "upper": lister.upper}
        stmt: Executable
        if bump is not None:
            stmt = _walk(conn.dialect.name, pos.inclusive, bounded)
            params.update(prefix=lister.prefix, delimiter=lister.delimiter, bump=bump)
        else:
            stmt = _range(pos.inclusive, bounded)
            want = min(want, GROUPED_BATCH) if grouped_by_reads else want
        if not bounded:
            del params["upper"]
        rows = (await conn.execute(stmt, {**params, "count": want})).all()
        for row in rows:
            step = lister.feed(row[2])  # the key (by position: see ``listed``)
            if step is Step.OBJECT:
                found.append(listed(row))
            elif step is Step.STOP or (step is Step.SKIP and grouped_by_reads):
                break  # a range read stepped into the group just listed: seek past it
        else:
            if len(rows) < want:
                lister.exhausted()
    return found, lister.prefixes, lister.next_cursor
