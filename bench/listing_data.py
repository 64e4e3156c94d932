"""Rows for the listing benchmark, written straight into a migrated metadata store.

A million PUTs through the gateway would take the better part of an hour;
a listing reads only ``objects`` rows, so the benchmark writes those rows
itself, in the real schema and shaped the way the gateway writes them:

* small objects stored inline (``inline_data`` holds the bytes, ``size``,
  ``etag`` and ``md5`` agree with them), so every listed object can be read;
* a versioning bucket: one key in ten has an older, non-current version,
  one key in fifty is deleted (its latest version is a delete marker over
  an older version). Listings must step over both kinds of hidden rows;
* keys ``folder-NNNNN/object-NNNNNNN.bin``, spread evenly over the folders,
  inserted in key order (as a bulk import would; the indexes are the ones
  the migrations create, so nothing about the layout is left to chance).

SQLite gets ``executemany`` in batches of 20,000 rows; PostgreSQL gets
``COPY`` through asyncpg, then ``VACUUM ANALYZE`` (what autovacuum does to a
table that has grown; SQLite gets no statistics, as the gateway never makes
any).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from cargohold.metadata.db import Database
from cargohold.metadata.repositories import create_bucket, create_user, get_bucket, set_versioning

BATCH = 20_000
COLUMNS = (
    "bucket_id",
    "key",
    "size",
    "etag",
    "content_type",
    "md5",
    "inline_data",
    "created_at",
    "version_id",
    "is_latest",
    "delete_marker",
    "versioned",
)


@dataclass(frozen=True, slots=True)
class Filled:
    bucket_id: int
    keys: int  # keys written (each with a latest version)
    live: int  # keys whose latest version is not a delete marker
    rows: int  # object rows written (versions and markers included)
    seconds: float


def key_of(index: int, count: int, folders: int) -> str:
    per_folder = -(-count // folders)
    return f"folder-{index // per_folder:05d}/object-{index:07d}.bin"


def _rows(bucket_id: int, count: int, folders: int) -> Iterator[tuple[Any, ...]]:
    """Every version row, key by key; within a key the older version first (it was written first).

    Version ids are random 32-hex strings as the gateway makes them (from a
    seeded generator: ``uuid4`` per row would take most of the fill's time).
    """
    ids = random.Random(f"listing-{bucket_id}-{count}")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    day = timedelta(days=1)
    for index in range(count):
        key = key_of(index, count, folders)
        body = f"{key} {index}\n".encode() * 3
        md5 = hashlib.md5(body).hexdigest()
        when = start + timedelta(seconds=index)
        deleted = index % 50 == 7
        if deleted or index % 10 == 3:
            old = body + b"(an earlier version)\n"
            old_md5 = hashlib.md5(old).hexdigest()
            yield (bucket_id, key, len(old), old_md5, "text/plain", old_md5, old,
                   when - day, f"{ids.getrandbits(128):032x}", False, False, True)  # fmt: skip
        if deleted:
            yield (
                bucket_id,
                key,
                0,
                "",
                "",
                None,
                None,
                when,
                f"{ids.getrandbits(128):032x}",
                True,
                True,
                True,
            )
            continue
        yield (bucket_id, key, len(body), md5, "text/plain", md5, body,
               when, f"{ids.getrandbits(128):032x}", True, False, True)  # fmt: skip


def _batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def make_bucket(url: str, name: str) -> int:
    """The bucket ``name`` (made with an owner when missing), versioning enabled; its id."""
    db = await Database.open(url)
    try:

        async def make(conn):  # type: ignore[no-untyped-def]
            bucket = await get_bucket(conn, name)
            if bucket is None:
                owner = await create_user(conn, f"{name}-owner", "user", None)
                bucket = await create_bucket(conn, name, "ec:5+2", owner.id)
            await set_versioning(conn, bucket.id, "enabled")
            return bucket.id

        bucket_id: int = await db.write(make)
        return bucket_id
    finally:
        await db.close()


def _fill_sqlite(path: str, rows: Iterator[tuple[Any, ...]]) -> int:
    """``executemany`` per batch, committed per batch so the WAL stays small.

    ``synchronous=OFF`` on this connection only: a bench that loses power
    writes its rows again. No ``ANALYZE``: the gateway never runs it, so the
    plans timed are the ones a store without statistics gets.
    """
    written = 0
    marks = ", ".join("?" for _ in COLUMNS)
    sql = f"INSERT INTO objects ({', '.join(COLUMNS)}) VALUES ({marks})"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        for batch in _batches(rows):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                sql, [(*row[:7], row[7].strftime("%Y-%m-%d %H:%M:%S.%f"), *row[8:]) for row in batch]
            )
            conn.execute("COMMIT")
            written += len(batch)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return written


async def _fill_postgres(url: str, rows: Iterator[tuple[Any, ...]]) -> int:
    """``COPY`` in one transaction, then ``VACUUM ANALYZE`` as autovacuum would soon do."""
    parsed = make_url(url).set(drivername="postgresql")
    conn = await asyncpg.connect(parsed.render_as_string(hide_password=False))
    written = 0
    try:
        async with conn.transaction():
            for batch in _batches(rows):
                await conn.copy_records_to_table("objects", records=batch, columns=list(COLUMNS))
                written += len(batch)
        await conn.execute("VACUUM ANALYZE objects")
    finally:
        await conn.close()
    return written


async def fill(url: str, bucket: str, count: int, folders: int) -> Filled:
    """Write ``count`` keys in ``folders`` folders into ``bucket`` (made if missing)."""
    bucket_id = await make_bucket(url, bucket)
    started = time.perf_counter()
    rows = _rows(bucket_id, count, folders)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        written = _fill_sqlite(str(parsed.database), rows)
    else:
        written = await _fill_postgres(url, rows)
    deleted = sum(1 for index in range(count) if index % 50 == 7)
    return Filled(bucket_id, count, count - deleted, written, time.perf_counter() - started)
