"""SQLite writers in several processes take turns through the lock file beside the store."""

from __future__ import annotations

import asyncio
import fcntl
import multiprocessing
import os
from pathlib import Path

from sqlalchemy import text

from cargohold.metadata.db import Database


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def _make_table(url: str) -> None:
    async with await Database.open(url, migrate_schema=False) as db, db.transaction() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, pid INTEGER)"))


def test_a_write_waits_while_another_process_holds_the_store(tmp_path: Path) -> None:
    url = _url(tmp_path / "meta.db")

    async def main() -> None:
        await _make_table(url)
        async with await Database.open(url, migrate_schema=False) as db:
            # Another open file description: flock() conflicts as with another process.
            other = os.open(tmp_path / "meta.db-writer", os.O_RDWR)
            fcntl.flock(other, fcntl.LOCK_EX)
            write = asyncio.ensure_future(
                db.write(lambda c: c.execute(text("INSERT INTO t (pid) VALUES (1)")))
            )
            done, _ = await asyncio.wait([write], timeout=0.5)
            assert not done
            fcntl.flock(other, fcntl.LOCK_UN)
            os.close(other)
            await asyncio.wait_for(write, 10)
            async with db.read() as conn:
                assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1

    asyncio.run(main())
    assert (tmp_path / "meta.db-writer").stat().st_mode & 0o777 == 0o600


def _writer(url: str, count: int) -> None:
    async def main() -> None:
        async with await Database.open(url, migrate_schema=False) as db:

            async def one() -> None:
                await db.write(
                    lambda c: c.execute(text("INSERT INTO t (pid) VALUES (:p)"), {"p": os.getpid()})
                )

            await asyncio.gather(*(one() for _ in range(count)))

    asyncio.run(main())


def test_three_processes_writing_at_once_all_commit(tmp_path: Path) -> None:
    url = _url(tmp_path / "meta.db")
    asyncio.run(_make_table(url))
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(url, 200)) for _ in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
        assert writer.exitcode == 0  # a "database is locked" would have raised in it

    async def count() -> list[tuple[int, int]]:
        async with await Database.open(url, migrate_schema=False) as db, db.read() as conn:
            rows = await conn.execute(text("SELECT pid, count(*) FROM t GROUP BY pid"))
            return [tuple(row) for row in rows]

    assert sorted(n for _, n in asyncio.run(count())) == [200, 200, 200]
