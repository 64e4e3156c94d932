"""SQLite through aiosqlite with one thread hop per statement instead of four or five.

aiosqlite runs every call on its connection's own thread, and SQLAlchemy's
adapter makes one call each to create a cursor, execute, fetch the rows and
close the cursor, then one more to roll back when a connection that read
outside any transaction goes back to the pool. Each hop is a queue put, a
thread wake-up and a future set back on the event loop: profiled at 4 KiB
GETs, a one-statement read took 1.4-1.9 ms of CPU, most of it in those hops.
Here a statement is one function run on the connection's thread (cursor,
execute, fetch everything, close), and a rollback with no transaction open is
skipped. Results are fetched whole, as the adapter already did.

Only the engines ``db.py`` makes use it: the ``connect`` event gives each new
connection this class (same slots, so the swap is allowed).
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection, AsyncAdapt_aiosqlite_cursor


def _run(
    conn: sqlite3.Connection, operation: str, parameters: Any, many: bool
) -> tuple[Any, list[Any] | None, int, int | None]:
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        super().__init__(adapt_connection)

    def _make_new_cursor(self, connection: Any) -> Any:
        return None  # made on the connection's thread, per statement

    def _aenter_cursor(self, cursor: Any) -> Any:
        return cursor

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._one_hop(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._one_hop(operation, seq_of_parameters, many=True)

    async def _one_hop(self, operation: Any, parameters: Any, *, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            aio = self._connection
            outcome = await aio._execute(_run, aio._conn, operation, parameters, many)  # type: ignore[attr-defined]
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows or ())

    def setinputsizes(self, *inputsizes: Any) -> None:
        pass


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor

    def rollback(self) -> None:
        # Reads run outside transactions (no BEGIN): nothing to roll back, no hop to pay.
        raw = self._connection._connection  # type: ignore[attr-defined]
        if raw is not None and raw.in_transaction:
            super().rollback()


def adopt(dbapi_connection: Any) -> None:
    """Give a new aiosqlite connection of SQLAlchemy's the one-hop cursor (``connect`` event)."""
    if type(dbapi_connection) is AsyncAdapt_aiosqlite_connection:
        dbapi_connection.__class__ = OneHopConnection
