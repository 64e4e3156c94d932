"""The action history: append many events at once, and search them newest first.

The table is append-only (database triggers refuse UPDATE and DELETE), so
this module has exactly two verbs.

Appending is batched by the caller (``service/history.py``): one call here
stores a whole queue of events with one INSERT executed for many rows,
``ROWS_PER_INSERT`` at a time. Because one unstorable row would lose the whole
batch, every value is fitted to its column first: text is cut to the
column's length, NUL characters (PostgreSQL refuses them in text and JSON)
and lone surrogates (no UTF-8 encoding) are replaced.

Events name buckets and users as the gateway saw them. Ids are looked up
here, once per batch, when the caller did not know them: a sign-in has a
user name but no signed-in principal, an object call has a bucket name from
its path. That way a user sees their own sign-ins, an owner sees every call
on their bucket, and the indexed id columns serve the searches. A bucket
deleted before its events were stored keeps its name but gets no id.

Searches use the indexes ``(user_id, id)`` and ``(bucket_id, id)``: a user
who is not an admin sees events they made or events on buckets they own,
found by two index-ordered queries whose newest rows are merged, rather
than one ``OR`` that would need a scan. Bucket, key-prefix and action
filters are checked on the rows walked newest first; they stop at the page
size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, String, func, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.history import HistoryEvent, HistoryQuery
from cargohold.metadata.repositories._sql import IN_CHUNK, chunks
from cargohold.metadata.tables import buckets, history, users

#: 15 values a row: well under both engines' bound-parameter limits.
ROWS_PER_INSERT = 500

_LENGTHS: dict[str, int] = {
    column.name: column.type.length
    for column in history.columns
    if isinstance(column.type, String) and column.type.length
}


def _text(value: object, limit: int | None = None) -> str | None:
    """``value`` as text both engines will store (see the module docstring)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:limit] if limit else text


def _json_safe(value: Any) -> Any:
    """A detail document made of JSON types with storable text, whatever a handler put in it."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {_text(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    return _text(value)


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _row(event: HistoryEvent) -> dict[str, Any]:
    texts = {
        name: _text(getattr(event, name), _LENGTHS[name])
        for name in ("user_name", "action", "bucket", "key", "version_id", "client", "user_agent", "result")
    }
    return {
        "at": event.at,
        "user_id": _integer(event.user_id),
        "bucket_id": _integer(event.bucket_id),
        "size": _integer(event.size),
        "status": event.status,
        "detail": _json_safe(event.detail) if event.detail else None,
        **texts,
    }


async def _ids_by_name(conn: AsyncConnection, table: Any, names: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in chunks(sorted(names), IN_CHUNK):
        stmt = select(table.c.name, table.c.id).where(table.c.name.in_(part))
        found.update({row.name: row.id for row in await conn.execute(stmt)})
    return found


async def _fill_ids(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Bucket and user ids for rows that only carry names (one query per table per batch)."""
    for id_column, name_column, table in (("bucket_id", "bucket", buckets), ("user_id", "user_name", users)):
        names = {r[name_column] for r in rows if r[id_column] is None and r[name_column]}
        if not names:
            continue
        ids = await _ids_by_name(conn, table, names)
        for r in rows:
            if r[id_column] is None and r[name_column] in ids:
                r[id_column] = ids[r[name_column]]


async def append_history(conn: AsyncConnection, events: Sequence[HistoryEvent]) -> int:
    """Store ``events`` in order (ids ascend with it); returns how many."""
    rows = [_row(e) for e in events]
    if not rows:
        return 0
    await _fill_ids(conn, rows)
    for part in chunks(rows, ROWS_PER_INSERT):
        # executemany: one statement compiled once and cached, where a multi-row VALUES
        # was compiled anew for every batch size (5% of a gateway's CPU at 4 KiB PUTs).
        await conn.execute(insert(history), list(part))
    return len(rows)


def _event(row: Row) -> HistoryEvent:
    detail = row.detail
    if isinstance(detail, str):  # JSON text from an engine that did not decode it
        detail = json.loads(detail)
    return HistoryEvent(
        id=row.id,
        at=row.at,
        user_id=row.user_id,
        user_name=row.user_name,
        action=row.action,
        bucket_id=row.bucket_id,
        bucket=row.bucket,
        key=row.key,
        version_id=row.version_id,
        size=row.size,
        client=row.client,
        user_agent=row.user_agent,
        result=row.result,
        status=row.status,
        detail=detail,
    )


def _starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    """Case-sensitive on both engines (SQLite's LIKE ignores ASCII case), no escaping needed."""
    return func.substr(column, 1, len(prefix)) == prefix


async def _conditions(conn: AsyncConnection, query: HistoryQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.user is not None:
        user_id = await conn.scalar(select(users.c.id).where(users.c.name == query.user))
        # A user who no longer exists is still found by the name their events carry.
        where.append(history.c.user_id == user_id if user_id else history.c.user_name == query.user)
    if query.bucket is not None:
        where.append(history.c.bucket == query.bucket)
    if query.prefix:
        where.append(_starts_with(history.c.key, query.prefix))
    if query.action is not None:
        if query.action_is_prefix:
            where.append(_starts_with(history.c.action, query.action + "."))
        else:
            where.append(history.c.action == query.action)
    if query.since is not None:
        where.append(history.c.at >= query.since)
    if query.until is not None:
        where.append(history.c.at < query.until)
    if query.before_id is not None:
        where.append(history.c.id < query.before_id)
    return where


async def _newest(conn: AsyncConnection, stmt: Select[Any], count: int) -> list[HistoryEvent]:
    return [_event(r) for r in await conn.execute(stmt.order_by(history.c.id.desc()).limit(count))]


async def search_history(
    conn: AsyncConnection, query: HistoryQuery, visible_to: int | None = None, count: int | None = None
) -> list[HistoryEvent]:
    """Up to ``count`` (default ``query.limit``) matching events, newest first.

    ``visible_to``: only events this user made or that touched a bucket they
    own (None: every event, for admins).
    """
    count = query.limit if count is None else count
    base = select(history).where(*await _conditions(conn, query))
    if visible_to is None:
        return await _newest(conn, base, count)
    owned = select(buckets.c.id).where(buckets.c.owner_id == visible_to)
    mine = await _newest(conn, base.where(history.c.user_id == visible_to), count)
    on_owned = await _newest(conn, base.where(history.c.bucket_id.in_(owned)), count)
    merged = {e.id: e for e in (*mine, *on_owned)}
    return sorted(merged.values(), key=lambda e: e.id or 0, reverse=True)[:count]
