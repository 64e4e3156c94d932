"""Shared pytest fixtures. Each section has one owner; keep them separate."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cargohold.metadata.db import Database
from cargohold.testing.postgres import PostgresCluster, PostgresUnavailable

T = TypeVar("T")


# ---------------------------------------------------------------------------
# PostgreSQL cluster and metadata database fixtures (metadata store)
#
# postgres_cluster: one throwaway server per session (installed with apt when
#   missing and we are root). Skips only when PostgreSQL cannot be had at all;
#   with CARGOHOLD_REQUIRE_POSTGRES=1 that is a failure instead.
# db_url: a fresh, empty metadata database URL, once for SQLite and once for
#   PostgreSQL (the latter marked ``postgres``).
# run_db: run ``async fn(db)`` against a migrated Database on db_url inside
#   asyncio.run (no pytest-asyncio here), closing it afterwards.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.start()
    except PostgresUnavailable as exc:
        if os.environ.get("CARGOHOLD_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (CARGOHOLD_REQUIRE_POSTGRES=1) but: {exc}")
        pytest.skip(f"PostgreSQL cannot be installed here: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'meta' / 'meta.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database()
    yield url
    with contextlib.suppress(Exception):
        cluster.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def run_db(db_url: str) -> Callable[[Callable[[Database], Awaitable[Any]]], Any]:
    def run(fn: Callable[[Database], Awaitable[T]]) -> T:
        async def main() -> T:
            db = await Database.open(db_url)
            try:
                return await fn(db)
            finally:
                await db.close()

        return asyncio.run(main())

    return run


# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Real clusters on either metadata store (gateway and node processes)

BOTH_STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def store_url(request: pytest.FixtureRequest, kind: str) -> Iterator[str | None]:
    """None for the default SQLite file, or a fresh PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield None
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database()
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            cluster.drop_database(url.rsplit("/", 1)[1])
