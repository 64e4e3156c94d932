"""Listing figures for bench/run.py --listing: ms per 1,000-entry page at 10^5 and 10^6 objects.

For each metadata store (SQLite, and PostgreSQL on a throwaway server from
``cargohold.testing.postgres``) and each size, the rows are written straight
into the store (bench/listing_data.py: 10,000 folders, so 10 keys in each
at 10^5 and 100 at 10^6), then the same pages are timed three ways:

* store: ``repositories.list_objects`` on an open ``Database``, the call the
  object service makes (no HTTP, no JSON);
* native: ``GET /api/v1/buckets/B/objects`` on a gateway over that store;
* S3: ``ListObjectsV2`` signed with SigV4 (the XML read to its end).

Pages: without a delimiter; with ``/`` at the top (1,000 common prefixes,
each a folder skipped in one seek); with a delimiter no key holds (1,000
objects, each found by the delimiter walk). Each from the first page
(the same page again) and from the middle (consecutive pages after the
middle key or folder). Figures are medians; the target is 50 ms a page.
Beside each wall time is the CPU the page cost, summed over the processes
that served it (schedstat, so threads count and 10 ms ticks do not blur
it): on a shared machine the wall time also counts waiting for a core.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import listing_data
import s3 as s3_bench  # bench/s3.py: the SigV4 signer

from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.testing.cluster import ADMIN_KEY, Cluster
from cargohold.testing.postgres import PostgresCluster

TARGET_MS = 50.0
PAGE = 1000
BUCKET = "listing"
FOLDERS = 10_000


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    delimiter: str
    start: str | None  # the cursor of the first page timed (None: the bucket's first page)
    walk: bool  # consecutive pages from ``start`` (else the same page again)


def cases(count: int) -> list[Case]:
    middle_key = listing_data.key_of(count // 2, count, FOLDERS)
    # 40% of the way: enough folders after it for consecutive full pages of common prefixes.
    middle_folder = listing_data.key_of(count * 2 // 5, count, FOLDERS).split("/")[0] + "/"
    return [
        Case("no delimiter, first page", "", None, False),
        Case("no delimiter, from the middle", "", middle_key, True),
        Case("'/': 1000 folders, first page", "/", None, False),
        Case("'/': 1000 folders, from the middle", "/", middle_folder, True),
        Case("'|' (in no key): 1000 objects, first", "|", None, False),
        Case("'|' (in no key), from the middle", "|", middle_key, True),
    ]


def encode_token(cursor: str) -> str:
    """A continuation token as the gateway writes one: the cursor in unpadded base64url."""
    return base64.urlsafe_b64encode(cursor.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of every thread of ``pids`` so far (``schedstat``: nanoseconds, not 10 ms ticks)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):  # a process or thread that ended meanwhile
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(FileNotFoundError):
                    total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def server_pids(postgres: PostgresCluster | None) -> list[int]:
    """The PostgreSQL server's processes (postmaster and its children): their CPU is the page's too."""
    if postgres is None:
        return []
    postmaster = int((postgres.data_dir / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


@dataclass(frozen=True, slots=True)
class Timed:
    """Medians of one figure: wall time, and the CPU the process that served it used."""

    wall_ms: float
    cpu_ms: float


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _pages(case: Case, pages: int, fetch: Callable[[str | None], str | None], pids: list[int]) -> Timed:
    """Time ``pages`` pages of ``case``; ``fetch(cursor)`` returns the next cursor; ``pids`` serve."""
    fetch(case.start)  # warm: the first read of a page pulls index pages into memory
    wall: list[float] = []
    cpu: list[float] = []
    cursor = case.start
    for _ in range(pages):
        started, used = time.perf_counter(), cpu_seconds(pids)
        following = fetch(cursor)
        wall.append(time.perf_counter() - started)
        cpu.append(cpu_seconds(pids) - used)
        if case.walk:
            assert following is not None, "the bench ran off the end of the bucket"
            cursor = following
    return Timed(_median_ms(wall), _median_ms(cpu))


async def store_times(url: str, count: int, pages: int, postgres: PostgresCluster | None) -> dict[str, Timed]:
    """Per page through ``repositories.list_objects`` (what ``ObjectService.list_in`` calls).

    The CPU is this process's (SQLite runs in it) and the PostgreSQL server's.
    """
    db = await Database.open(url)
    try:
        async with db.read() as conn:
            bucket = await repo.get_bucket(conn, BUCKET)
        assert bucket is not None
        figures: dict[str, Timed] = {}
        for case in cases(count):

            async def page(cursor: str | None, case: Case = case) -> str | None:
                async with db.read() as conn:
                    found, prefixes, following = await repo.list_objects(
                        conn, bucket.id, "", case.delimiter, PAGE, cursor
                    )
                assert len(found) + len(prefixes) == PAGE, case
                return following

            await page(case.start)  # warm: the first read of a page pulls index pages into memory
            pids = [os.getpid(), *server_pids(postgres)]
            wall: list[float] = []
            cpu: list[float] = []
            cursor = case.start
            for _ in range(pages):
                started, used = time.perf_counter(), cpu_seconds(pids)
                following = await page(cursor)
                wall.append(time.perf_counter() - started)
                cpu.append(cpu_seconds(pids) - used)
                if case.walk:
                    assert following is not None, "the bench ran off the end of the bucket"
                    cursor = following
            figures[case.name] = Timed(_median_ms(wall), _median_ms(cpu))
        return figures
    finally:
        await db.close()


def http_times(
    cluster: Cluster, count: int, pages: int, postgres: PostgresCluster | None
) -> tuple[dict[str, Timed], dict[str, Timed]]:
    """Per page through the gateway, native JSON and S3 ListObjectsV2; the CPU is the gateway's
    and the PostgreSQL server's."""
    access_key, secret = s3_bench._s3_key(cluster.url)
    signer = s3_bench._Signer(access_key, secret)
    native: dict[str, Timed] = {}
    s3: dict[str, Timed] = {}
    assert cluster.gateway is not None
    gateway = cluster.gateway.pid
    with httpx.Client(base_url=cluster.url, timeout=60) as client:
        for case in cases(count):

            def native_page(cursor: str | None, case: Case = case) -> str | None:
                query: dict[str, str | int] = {"limit": PAGE, "delimiter": case.delimiter}
                if cursor:
                    query["cursor"] = cursor
                reply = client.get(
                    f"/api/v1/buckets/{BUCKET}/objects",
                    params=query,
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                )
                reply.raise_for_status()
                body = reply.json()
                assert len(body["objects"]) + len(body["common_prefixes"]) == PAGE, case
                return str(body["next_cursor"])

            def s3_page(cursor: str | None, case: Case = case) -> str | None:
                query: dict[str, Any] = {"list-type": "2", "max-keys": PAGE}
                if case.delimiter:
                    query["delimiter"] = case.delimiter
                if cursor:
                    query["continuation-token"] = encode_token(cursor)
                target = f"{cluster.url}/{BUCKET}?{urlencode(query)}"
                reply = client.get(target, headers=signer.headers("GET", target))
                reply.raise_for_status()
                text = reply.text
                assert "<IsTruncated>true</IsTruncated>" in text, text[:500]
                # The cursor of the next page, as a client reads it back from the token.
                token = text.split("<NextContinuationToken>", 1)[1].split("<", 1)[0]
                return decode_token(token)

            native_page(case.start)  # the gateway's connections to the store exist from here on
            pids = [gateway, *server_pids(postgres)]
            native[case.name] = _pages(case, pages, native_page, pids)
            s3[case.name] = _pages(case, pages, s3_page, pids)
    return native, s3


@contextmanager
def store(kind: str, workdir: Path, count: int, postgres: PostgresCluster | None) -> Iterator[str]:
    """A fresh, empty metadata store of ``kind``; its URL."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / f'sqlite-{count}' / 'meta.db'}"
        return
    assert postgres is not None
    url = postgres.create_database(f"listing_{count}")
    try:
        yield url
    finally:
        postgres.drop_database(f"listing_{count}")


def bench(workdir: Path, args: Any) -> tuple[str, list[tuple[str, ...]]]:
    """Every (store, size, page) figure; the title says how long the rows took to write."""
    rows: list[tuple[str, ...]] = []
    fills: list[str] = []
    postgres = PostgresCluster().start() if "postgres" in args.listing_stores else None
    try:
        for kind in args.listing_stores:
            for count in args.listing_sizes:
                root = workdir / f"cluster-{kind}-{count}"
                with (
                    store(kind, workdir, count, postgres) as url,
                    # First: the gateway makes its admin in an empty store. No nodes: a listing reads none.
                    Cluster(root, node_count=0, db_url=url, capture_logs=True) as cluster,
                ):
                    filled = asyncio.run(listing_data.fill(url, BUCKET, count, FOLDERS))
                    fills.append(f"{kind} {count:,} keys: {filled.rows:,} rows in {filled.seconds:.0f} s")
                    in_store = asyncio.run(store_times(url, count, args.listing_pages, postgres))
                    native, s3 = http_times(cluster, count, args.listing_pages, postgres)
                size = f"10^{len(str(count)) - 1}"
                for case in cases(count):
                    figures = (in_store[case.name], native[case.name], s3[case.name])
                    worst = max(figure.wall_ms for figure in figures)
                    verdict = "ok" if worst <= TARGET_MS else f"over {TARGET_MS:.0f} ms"
                    cells = [f"{f.wall_ms:.1f} ({f.cpu_ms:.1f})" for f in figures]
                    rows.append((f"{kind} {size}, {case.name}", *cells, verdict))
    finally:
        if postgres is not None:
            postgres.stop()
    title = (
        f"cargohold listing bench (ms per {PAGE}-entry page, median of {args.listing_pages}; "
        f"rows written: {'; '.join(fills)})"
    )
    return title, rows


def print_rows(title: str, rows: list[tuple[str, ...]]) -> None:
    header = ("page: ms wall (ms CPU)", "store", "native", "S3 v2", f"target {TARGET_MS:.0f} ms")
    width = max(len(r[0]) for r in [header, *rows])
    cell = max(14, *(len(c) for r in rows for c in r[1:4]))
    print(f"\n{title}")
    print("  CPU: of the bench process (store) or the gateway (native, S3), SQLite in it,")
    print("  plus the PostgreSQL server's processes. Wall time counts waiting for a core too.")
    for name, *values, verdict in [header, *rows]:
        print(f"  {name:<{width}}  " + "  ".join(f"{v:>{cell}}" for v in values) + f"  {verdict}")
