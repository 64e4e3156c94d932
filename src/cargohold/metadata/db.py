"""The metadata store's connection to SQLite or PostgreSQL.

:class:`Database` is the unit of work every service uses. It offers three
ways in, each for a reason:

``read()``
    a connection in a read transaction (a consistent snapshot on both
    engines). Never write through it.
``write(fn)``
    the normal way to change data. ``fn(conn)`` runs inside a transaction and
    its result (or exception) comes back to the caller. On SQLite a single
    writer task runs up to ``batch_size`` queued functions in *one*
    transaction, each inside its own SAVEPOINT, and commits once: the WAL
    fsync is paid per batch, not per write, and there is never more than one
    writer, so "database is locked" cannot happen inside one process. A
    function that raises rolls back only its own savepoint; the others still
    commit. On PostgreSQL, which group-commits by itself and has row locks,
    ``fn`` simply runs in its own transaction.
``transaction()``
    a write transaction held open across arbitrary awaits, for the rare
    caller that cannot express its work as one ``fn``. On SQLite it excludes
    the writer for its whole duration, so keep it short.

``touch(conn, topic)`` inside a write marks the transaction; once it has
committed, the listeners added with ``on_commit(topic, fn)`` are called (the
event outbox wakes this process's event poller that way, without a poll).
Nothing is called for a write that rolled back.

Write functions must only touch the database (no network calls, no waiting on
other writes): on SQLite they run back to back on one connection. Calling
``db.write`` from inside a write function or a ``transaction()`` block would
wait on itself forever, so it raises ``RuntimeError`` instead.

Several processes may write one SQLite store (gateway workers, the worker
process): each writer takes a lock shared between processes
(``writer_lock.py``) around its batch, so the store passes from process to
process without SQLite's polling busy wait.

SQLite transaction handling follows SQLAlchemy's documented recipe: pysqlite's
own BEGIN management is switched off (``isolation_level = None``) and we emit
``BEGIN`` ourselves in the ``begin`` event, which makes SAVEPOINTs and
transactional DDL work. Write transactions use ``BEGIN IMMEDIATE`` so they
take the write lock up front (a deferred transaction that later upgrades can
fail with SQLITE_BUSY without waiting on ``busy_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from cargohold.metadata import migrate, sqlite_driver
from cargohold.metadata.writer_lock import WriterLock

T = TypeVar("T")
WriteFn = Callable[[AsyncConnection], Awaitable[T]]

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: SQLite connections kept open for reads (and the one writer), and opened beyond that at peaks.
SQLITE_POOL_SIZE = 32
SQLITE_POOL_OVERFLOW = 224
DEFAULT_BATCH_SIZE = 64
_BEGIN_OPTION = "cargohold_sqlite_begin"

#: ``conn.info`` entry: the topics touched in the transaction running on this connection.
_TOUCHED = "cargohold_touched"

# True while the current task is inside a write function or a transaction().
_in_write: contextvars.ContextVar[bool] = contextvars.ContextVar("cargohold_in_write", default=False)


def touch(conn: AsyncConnection, topic: str) -> None:
    """Ask for ``topic``'s commit listeners to be called once this transaction commits."""
    conn.info.setdefault(_TOUCHED, set()).add(topic)


def normalise_url(url: str) -> URL:
    """Accept ``sqlite:///`` and ``postgresql://`` and pick the async drivers for them."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.drivername != "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql" and parsed.drivername != "postgresql+asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported metadata database {url!r}: use SQLite or PostgreSQL")
    return parsed


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    sqlite_driver.adopt(dbapi_connection)
    # Take BEGIN away from pysqlite (see the module docstring).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    begin = conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN")
    if begin:  # reads pass "": each statement then reads its own WAL snapshot
        conn.exec_driver_sql(begin)


def _owner_only(database: Path) -> None:
    """Create the SQLite file readable by its owner alone, and tighten one created looser.

    SQLite gives the ``-wal`` and ``-shm`` files the mode of the database
    file, so creating that one 0600 covers all three; the chmod also mends
    stores created before this rule.
    """
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(database, os.O_RDWR | os.O_CREAT, 0o600))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)


def make_engine(url: str, **engine_kwargs: Any) -> AsyncEngine:
    """Create an async engine with the connection settings the store relies on.

    For SQLite the database's parent directory is created, and every new
    connection gets WAL, ``synchronous=FULL`` (an acknowledged write survives
    power loss), ``busy_timeout`` and ``foreign_keys=ON``.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in str(parsed):
            raise ValueError("the metadata store needs a SQLite file, not an in-memory database")
        _owner_only(Path(database).expanduser())
        # SQLAlchemy's default keeps 5 connections and closes any beyond when they come
        # back: at 16 concurrent GETs every read past the fifth opened a connection (a
        # thread, its PRAGMAs and functions) and closed it again. Idle ones cost a thread.
        engine_kwargs.setdefault("pool_size", SQLITE_POOL_SIZE)
        engine_kwargs.setdefault("max_overflow", SQLITE_POOL_OVERFLOW)
        engine = create_async_engine(parsed, **engine_kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    engine_kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(parsed, **engine_kwargs)


@dataclass(slots=True)
class _Pending:
    fn: WriteFn[Any]
    future: asyncio.Future[Any]


class Database:
    """Connections, transactions and (on SQLite) the single group-committing writer."""

    def __init__(self, engine: AsyncEngine, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.is_sqlite = self.dialect == "sqlite"
        self.batch_size = max(1, batch_size)
        if self.is_sqlite:
            self._write_engine = engine.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            # Reads skip BEGIN: one round trip to the aiosqlite thread fewer per read.
            self._read_engine = engine.execution_options(**{_BEGIN_OPTION: ""})
        else:
            self._write_engine = self._read_engine = engine
        self._lock = asyncio.Lock()  # SQLite: one writer (batch or transaction()) at a time
        self._file_lock: WriterLock | None = None  # ... and one process at a time
        if self.is_sqlite and engine.url.database:
            self._file_lock = WriterLock(Path(f"{Path(engine.url.database).expanduser()}-writer"))
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self.batches_committed = 0  # SQLite writer: transactions committed (metrics, tests)
        self.writes_committed = 0  # SQLite writer: write functions committed in them
        self._busy = 0  # reads, transactions and PostgreSQL writes in progress
        self._idle = asyncio.Event()
        self._idle.set()
        self._listeners: dict[str, list[Callable[[], None]]] = {}

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        migrate_schema: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **engine_kwargs: Any,
    ) -> Database:
        """Connect and bring the schema to the newest migration.

        ``engine_kwargs`` go to ``create_async_engine`` (``pool_size`` etc.).
        """
        db = cls(make_engine(url, **engine_kwargs), batch_size=batch_size)
        try:
            if migrate_schema:
                await migrate.upgrade(db._write_engine)
        except BaseException:
            await db.engine.dispose()
            raise
        return db

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; its transaction is rolled back on exit."""
        if not _in_write.get():  # write functions still draining at close may read
            self._check_open()
        async with self._tracked(), self._read_engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: commits when the block succeeds, rolls back if it raises."""
        self._check_usable()
        async with self._tracked(), self._exclusive(), self._begin() as conn:
            token = _in_write.set(True)
            try:
                yield conn
            finally:
                _in_write.reset(token)

    async def write(self, fn: WriteFn[T]) -> T:
        """Run ``fn(conn)`` in a write transaction and return its result (see module doc)."""
        self._check_usable()
        if not self.is_sqlite:
            async with self._tracked(), self._begin() as conn:
                token = _in_write.set(True)
                try:
                    return await fn(conn)
                finally:
                    _in_write.reset(token)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(fn, future))
        if self._writer is None or self._writer.done():
            self._writer = self._start_writer()
        return await future

    async def close(self) -> None:
        """Refuse new work, finish what is queued or running, close every connection."""
        if self._closed:
            return
        self._closed = True
        writer_alive = self._writer is not None and not self._writer.done()
        if writer_alive or not self._queue.empty():
            self._queue.put_nowait(None)
            if self._writer is None or self._writer.done():
                self._writer = self._start_writer()
            await self._writer
        # Connections still checked out would outlive dispose() unclosed.
        await self._idle.wait()
        await self.engine.dispose()
        if self._file_lock is not None:
            self._file_lock.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def on_commit(self, topic: str, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every commit of a transaction that touched ``topic``."""
        self._listeners.setdefault(topic, []).append(listener)

    # -- internals -------------------------------------------------------

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction that calls the commit listeners of the topics it touched.

        A task cancelled mid-statement leaves asyncpg's connection unusable, so
        the rollback on the way out raises ``PendingRollbackError``, which
        would replace the ``CancelledError`` and let a loop that catches
        ``Exception`` carry on as if never cancelled (a worker that ignores
        SIGTERM): the cancellation is raised again instead.
        """
        try:
            async with self._write_engine.begin() as conn:
                try:
                    yield conn
                except BaseException:
                    conn.info.pop(_TOUCHED, None)
                    raise
                touched: set[str] = conn.info.pop(_TOUCHED, set())
        except Exception as exc:
            if isinstance(exc.__context__, asyncio.CancelledError):
                raise exc.__context__ from exc
            raise
        for topic in touched:
            for listener in self._listeners.get(topic, ()):
                listener()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the database is closed")

    def _check_usable(self) -> None:
        self._check_open()
        if _in_write.get():
            raise RuntimeError(
                "db.write()/db.transaction() called inside a write: use the connection you have"
            )

    @asynccontextmanager
    async def _tracked(self) -> AsyncIterator[None]:
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        if not self.is_sqlite:
            yield
            return
        async with self._lock:
            if self._file_lock is None:
                yield
            else:
                async with self._file_lock.held():
                    yield

    def _start_writer(self) -> asyncio.Task[None]:
        # A fresh context: the writer must not inherit whichever caller started it.
        return asyncio.create_task(
            self._write_loop(), name="cargohold-db-writer", context=contextvars.Context()
        )

    async def _write_loop(self) -> None:
        _in_write.set(True)  # this task's own context only
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            # Gathered once the store is ours: writes queued while another process
            # held it join this batch.
            async with self._exclusive():
                while len(batch) < self.batch_size:
                    try:
                        item = self._queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                await self._run_batch(batch)
            if stop:
                return

    async def _run_batch(self, batch: list[_Pending]) -> None:
        batch = [pending for pending in batch if not pending.future.cancelled()]
        if not batch:
            return
        if len(batch) > 1 and await self._run_optimistic(batch):
            return
        outcomes: list[tuple[_Pending, Any, bool]] = []
        try:
            async with self._begin() as conn:  # under _exclusive() (_write_loop)
                if len(batch) == 1:
                    # Alone in its transaction, which serves as its savepoint: a
                    # savepoint costs two more round trips to the aiosqlite thread.
                    outcomes.append((batch[0], await batch[0].fn(conn), True))
                for pending in batch if len(batch) > 1 else ():
                    if pending.future.cancelled():
                        continue
                    try:
                        async with conn.begin_nested():
                            value = await pending.fn(conn)
                    except Exception as exc:
                        outcomes.append((pending, exc, False))
                    else:
                        outcomes.append((pending, value, True))
        except BaseException as exc:
            # BEGIN or COMMIT failed, the connection broke, or the single write
            # raised: nothing was saved, every caller in the batch gets the error.
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._settle(outcomes)

    async def _run_optimistic(self, batch: list[_Pending]) -> bool:
        """Run a whole batch without savepoints; False (nothing saved) if any write raised.

        Most writes succeed, and a savepoint costs two more round trips to the
        aiosqlite thread per write, a third of a small PUT's time. When one
        write fails the batch is rolled back and replayed with savepoints,
        which is safe because write functions only touch the database.
        """
        try:
            async with self._begin() as conn:
                values = [await pending.fn(conn) for pending in batch]
        except Exception:
            return False
        self._settle([(pending, value, True) for pending, value in zip(batch, values, strict=True)])
        return True

    def _settle(self, outcomes: list[tuple[_Pending, Any, bool]]) -> None:
        self.batches_committed += 1
        self.writes_committed += sum(1 for _, _, ok in outcomes if ok)
        for pending, value, ok in outcomes:
            if pending.future.done():
                continue  # the caller gave up waiting; its write is committed anyway
            if ok:
                pending.future.set_result(value)
            else:
                pending.future.set_exception(value)
