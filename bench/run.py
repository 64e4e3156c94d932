"""cargohold benchmark: throughput and memory next to a disk baseline from the same run.

Starts a real cluster (8 node processes + gateway, SQLite, ec:5+2, fsync on)
in a directory on the same disk as the baseline, then measures:

* ``dd`` writing 1 GiB with fdatasync, and reading it cold with O_DIRECT;
* PUT and GET of a 1 GiB file with curl (median of --repeat runs); nodes
  write and read shares with O_DIRECT, so every GET comes from the device;
* the peak RSS of each gateway worker during the PUT (VmHWM, reset before
  each run, and sampled), and with --rss-gib N during an N GiB streamed PUT,
  to show memory does not grow with the size of the file;
* CPU-seconds per GiB of the PUTs and GETs, for the gateway, the nodes and
  the whole machine (bench/meters.py), and CPU-milliseconds per 4 KiB request;
* 4 KiB PUT and GET ops/s at concurrency 16 with p50/p99 latency, the same
  GETs by a user who reads through a grant (the cost of the access check),
  and sign-ins per second (argon2id is slow on purpose).

The gateway runs --workers processes (default one per core, as `up` runs it).

Every figure is also printed as a ratio to the baseline it compares with.
Usage: python bench/run.py [--size-mib 1024] [--repeat 3] [--ops 4000] [--dir PATH]
       python bench/run.py --healing [--heal-gib 12] [--rebalance-gib 4]  (bench/healing.py:
       rebuild, GET under repair, scrub and rebalance instead of the figures above; ~10 min)
       python bench/run.py --zones  (bench/zones.py: cross-zone bytes and GET p50 with nearest
       reads on vs off, PUT MB/s through 1 vs 2 gateways; 3 zones in network namespaces, root)
       python bench/run.py --s3  (bench/s3.py: the same PUT, GET and 4 KiB figures through S3
       with the aws cli and boto3, and boto3 multipart, each beside the native figure)
       python bench/run.py --listing [--listing-sizes 100000 1000000] [--listing-stores sqlite postgres]
       (bench/listing.py: ms per 1,000-entry listing page with and without a delimiter, in the
       store, through the native API and through S3 ListObjectsV2, on SQLite and PostgreSQL)
       python bench/run.py --ui [--ui-mib 256]  (bench/ui.py: an upload through the web page in
       headless Chromium beside `cargohold put`, and the first render of a 10,000-object folder)
       python bench/run.py --events [--subscriptions 8] [--event-count 1000] [--latency-count 300]
       (bench/events.py: webhook deliveries/s with a fast receiver, event-to-delivery p50/p99)
       python bench/run.py --imports  (bench/imports.py: a background import of the file from a
       local HTTP server, as a ratio to the same run's native PUT)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import uploads  # bench/uploads.py: the script's folder is first on sys.path
from meters import Cpu, CpuMeter, PeakRss, median_cpu

from cargohold.testing.cluster import ADMIN_KEY, Cluster

MB = 1_000_000
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def dd_baseline(workdir: Path, size_mib: int) -> tuple[float, float]:
    target = workdir / "dd.bin"
    started = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=4M", f"count={size_mib // 4}", "conv=fdatasync"],
        check=True,
        capture_output=True,
    )
    write = size_mib * 1024 * 1024 / (time.perf_counter() - started) / MB
    started = time.perf_counter()
    # O_DIRECT: a read from the device itself, whatever the page cache holds.
    subprocess.run(
        ["dd", f"if={target}", "of=/dev/null", "bs=4M", "iflag=direct"], check=True, capture_output=True
    )
    read = size_mib * 1024 * 1024 / (time.perf_counter() - started) / MB
    target.unlink()
    return write, read


def curl(args: list[str], stdin: Any = None) -> float:
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", *args], check=True, stdin=stdin)
    return time.perf_counter() - started


def _native_path(i: int) -> str:
    return f"/api/v1/buckets/small/objects/o{i}"


async def timed_ops(
    session: aiohttp.ClientSession,
    method: str,
    count: int,
    concurrency: int,
    payload: bytes,
    path: Callable[[int], str] = _native_path,
    sign: Callable[[str, str, bytes], dict[str, str]] | None = None,
    created: int = 201,
) -> tuple[float, float, float]:
    """ops/s, p50 ms, p99 ms of ``count`` requests spread over ``concurrency`` workers.

    ``sign(method, path, body)`` gives per-request headers (S3's SigV4), computed
    inside the timed span as a client computes them.
    """
    latencies: list[float] = []
    counter = iter(range(count))

    async def worker() -> None:
        for i in counter:
            target = path(i)
            started = time.perf_counter()
            body = payload if method == "PUT" else b""
            headers = sign(method, target, body) if sign else None
            if method == "PUT":
                async with session.put(target, data=payload, headers=headers) as reply:
                    assert reply.status == created, await reply.text()
            else:
                async with session.get(target, headers=headers) as reply:
                    assert len(await reply.read()) == len(payload)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return (
        count / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
    )


async def small_ops(
    url: str, count: int, concurrency: int, meter: CpuMeter | None = None, cpu: dict[str, Cpu] | None = None
) -> dict[str, tuple[float, float, float]]:
    """4 KiB PUTs then GETs; with ``meter``, ``cpu`` gets each method's CPU per request."""
    payload = os.urandom(4096)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector, headers=AUTH) as session:
        await session.put("/api/v1/buckets/small")
        ops = {}
        for method in ("PUT", "GET"):
            spans: list[Cpu] = []
            with meter.span(spans) if meter else contextlib.nullcontext():
                ops[method] = await timed_ops(session, method, count, concurrency, payload)
            if cpu is not None and spans:
                cpu[method] = spans[0].scaled(1 / count)
        return ops


#: ops/s the 4 KiB figures aim at (concurrency 16).
SMALL_TARGETS = {"PUT": 1000, "GET": 2500}

READER = {"name": "bench-reader", "password": "bench-reader-password"}


async def granted_reads(url: str, count: int, concurrency: int) -> tuple[float, float, float]:
    """4 KiB GETs of the objects ``small_ops`` wrote, by a user holding a read grant."""
    async with aiohttp.ClientSession(url, headers=AUTH) as admin:
        async with admin.post("/api/v1/users", json=READER) as made:
            assert made.status == 201, await made.text()
        async with admin.post("/api/v1/keys", json={"user": READER["name"]}) as made:
            token = (await made.json())["token"]
        grant = {"user": READER["name"], "level": "read"}
        async with admin.post("/api/v1/buckets/small/grants", json=grant) as made:
            assert made.status == 201, await made.text()
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(url, connector=connector, headers=headers) as session:
        return await timed_ops(session, "GET", count, concurrency, bytes(4096))


async def sign_ins(url: str, count: int, concurrency: int) -> float:
    """Password sign-ins per second (each one hashes with argon2id on the gateway)."""
    counter = iter(range(count))
    async with aiohttp.ClientSession(url) as anonymous:

        async def worker() -> None:
            for _ in counter:
                async with anonymous.post("/api/v1/auth/login", json=READER) as reply:
                    assert reply.status == 200, await reply.text()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ops", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rss-gib", type=int, default=0, help="also PUT N GiB and report peak RSS")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gateway processes")
    parser.add_argument("--dir", type=Path, default=Path.cwd() / ".bench", help="work dir (same disk)")
    healing = parser.add_argument_group("healing (bench/healing.py)")
    healing.add_argument("--healing", action="store_true", help="run only the healing figures")
    healing.add_argument("--heal-gib", type=int, default=12, help="data written before a node is lost")
    healing.add_argument("--rebalance-gib", type=int, default=4, help="data on 8 nodes before 4 are added")
    parser.add_argument("--s3", action="store_true", help="run only the S3 figures (bench/s3.py)")
    listing = parser.add_argument_group("listing (bench/listing.py)")
    listing.add_argument("--listing", action="store_true", help="run only the listing figures")
    listing.add_argument("--listing-sizes", type=int, nargs="+", default=[10**5, 10**6], metavar="N")
    listing.add_argument(
        "--listing-stores", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"]
    )
    listing.add_argument("--listing-pages", type=int, default=5, help="pages timed per figure (median)")
    parser.add_argument("--ui", action="store_true", help="run only the web page figures (bench/ui.py)")
    parser.add_argument("--ui-mib", type=int, default=256, help="size of the upload through the page")
    parser.add_argument(
        "--uploads",
        action="store_true",
        help="only PUT, GET, 4 parallel session parts and tus, interleaved in each of --repeat rounds",
    )
    events = parser.add_argument_group("events (bench/events.py)")
    events.add_argument("--events", action="store_true", help="run only the event and webhook figures")
    events.add_argument("--subscriptions", type=int, default=8, help="webhooks delivering the backlog")
    events.add_argument("--event-count", type=int, default=1000, help="events in the backlog")
    events.add_argument("--latency-count", type=int, default=300, help="events timed one by one")
    parser.add_argument(
        "--imports", action="store_true", help="run only the import figures (bench/imports.py)"
    )
    zones = parser.add_argument_group("zones (bench/zones.py; needs root for network namespaces)")
    zones.add_argument("--zones", action="store_true", help="run only the zone figures")
    zones.add_argument("--cross-zone-ms", type=float, default=40.0, help="one-way latency between zones")
    zones.add_argument("--zone-objects", type=int, default=64, help="1 MiB objects read per mode")
    zones.add_argument("--latency-gets", type=int, default=20, help="GETs per zone and mode for the p50")
    zones.add_argument("--put-objects", type=int, default=32, help="4 MiB PUTs per gateway count")
    args = parser.parse_args()

    args.dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(dir=args.dir))
    size = args.size_mib * 1024 * 1024
    if args.healing:
        try:
            dd_write, dd_read = dd_baseline(workdir, args.size_mib)
            import healing as healing_bench  # imports this module: only when asked for

            started = time.perf_counter()
            figures = healing_bench.bench(workdir, args, dd_write, dd_read)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        runs = ", ".join(f"{name} {[round(r) for r in rates]}" for name, rates in figures.runs.items())
        print_table(
            f"cargohold healing bench ({time.perf_counter() - started:.0f} s; "
            f"GETs median of {args.repeat}; runs: {runs})",
            [*baseline_rows(dd_write, dd_read), *figures.rows],
        )
        return
    if args.listing:
        try:
            import listing as listing_bench  # only when asked for

            title, listing_rows = listing_bench.bench(workdir, args)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        listing_bench.print_rows(title, listing_rows)
        return
    if args.ui:
        try:
            import ui as ui_bench  # only when asked for

            rows = ui_bench.bench(workdir, args)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print_table(f"cargohold web page bench (median of {args.repeat})", rows)
        return
    if args.events:
        try:
            import events as events_bench  # only when asked for

            rows = events_bench.bench(workdir, args)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print_table("cargohold events bench (one gateway, one worker, SQLite)", rows)
        return
    if args.imports:
        try:
            dd_write, dd_read = dd_baseline(workdir, args.size_mib)
            import imports as imports_bench  # only when asked for

            rows = imports_bench.bench(workdir, args)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print_table(
            f"cargohold imports bench (median of {args.repeat})", [*baseline_rows(dd_write, dd_read), *rows]
        )
        return
    if args.zones:
        import zones as zones_bench  # only when asked for

        try:
            rows = zones_bench.bench(workdir, args)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print_table(f"cargohold zones bench ({args.cross_zone_ms:g} ms one way between zones)", rows)
        return
    if args.s3:
        try:
            dd_write, dd_read = dd_baseline(workdir, args.size_mib)
            import s3 as s3_bench  # only when asked for

            rows = s3_bench.bench(workdir, args)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        title = f"cargohold S3 bench (median of {args.repeat})"
        print_table(title, [*baseline_rows(dd_write, dd_read), *rows])
        return
    if args.uploads:
        try:
            upload_rows(workdir, args)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    try:
        dd_write, dd_read = dd_baseline(workdir, args.size_mib)
        source = workdir / "source.bin"
        with source.open("wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1024 * 1024))
        with Cluster(workdir / "cluster", gateway_workers=args.workers) as cluster:
            assert cluster.gateway is not None
            url = cluster.url
            gateway = cluster.gateway

            def node_pids() -> list[int]:
                return [n.process.pid for n in cluster.nodes if n.process is not None]

            meter = CpuMeter(lambda: [gateway.pid, *cluster.gateway_pids()], node_pids)
            workers = sorted(set(cluster.gateway_pids()))
            background = meter.calibrate()
            auth = ["-H", f"Authorization: Bearer {ADMIN_KEY}"]
            subprocess.run(
                ["curl", "-sS", "-f", "-X", "PUT", *auth, f"{url}/api/v1/buckets/bench"],
                check=True,
                capture_output=True,
            )
            puts, gets, peaks = [], [], []
            put_cpu: list[Cpu] = []
            get_cpu: list[Cpu] = []
            worker_peaks: list[list[int]] = []
            for run in range(args.repeat):
                obj = f"{url}/api/v1/buckets/bench/objects/big{run}"
                with PeakRss(workers) as rss, meter.span(put_cpu):
                    puts.append(size / curl([*auth, "-T", str(source), obj]) / MB)
                peaks.append(rss.peak)
                worker_peaks.append(rss.peaks)
                with meter.span(get_cpu):
                    gets.append(size / curl([*auth, obj]) / MB)
            big_peak = 0
            if args.rss_gib:
                with PeakRss(workers) as rss:
                    feed = subprocess.Popen(
                        ["head", "-c", str(args.rss_gib * 2**30), "/dev/urandom"], stdout=subprocess.PIPE
                    )
                    curl([*auth, "-T", "-", f"{url}/api/v1/buckets/bench/objects/huge"], stdin=feed.stdout)
                    feed.wait()
                big_peak = rss.peak
            small_cpu: dict[str, Cpu] = {}
            ops = asyncio.run(small_ops(url, args.ops, args.concurrency, meter, small_cpu))
            ops["GET, read grant"] = asyncio.run(granted_reads(url, args.ops, args.concurrency))
            logins = asyncio.run(sign_ins(url, 100, 4))
            sessions: dict[int, float] = {}
            session_peak = 0
            for parallel in (1, 4, 8):
                with PeakRss(workers) as rss:
                    sessions[parallel] = asyncio.run(uploads.session_upload(url, source, parallel))
                if parallel == 8:
                    session_peak = rss.peak
            tus_rate = uploads.tus_upload(url, source)
            parts_rate, complete_seconds = asyncio.run(uploads.small_parts(url))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    put, get = statistics.median(puts), statistics.median(gets)
    rows = [
        *baseline_rows(dd_write, dd_read),
        (
            f"PUT {args.size_mib} MiB (ec:5+2, 8 nodes)",
            f"{put:8.0f} MB/s",
            f"{put / dd_write:.2f} x dd write",
        ),
        (
            f"GET {args.size_mib} MiB (nodes read O_DIRECT)",
            f"{get:8.0f} MB/s",
            f"{get / dd_read:.2f} x dd read",
        ),
        (
            "gateway peak RSS per worker during PUT",
            f"{max(peaks) / 2**20:8.0f} MiB",
            f"{max(peaks) / 2**20 / 150:.2f} x target 150 MiB; last run"
            f" {[round(p / 2**20) for p in worker_peaks[-1]]} MiB",
        ),
    ]
    gib = size / 2**30
    #: Half the cores busy with the cluster idle: the machine's figures cannot be told apart.
    busy = background > (os.cpu_count() or 1) / 2
    for name, spans in (("PUT", put_cpu), ("GET", get_cpu)):
        cpu = median_cpu(spans).scaled(1 / gib)
        machine = cpu.machine - cpu.background
        parts = f"gateway {cpu.gateway:.2f}, nodes {cpu.nodes:.2f}"
        if busy:  # others kept the cores busy: what is left of them says nothing about ours
            machine_text, ratio = "n/a", f"machine busy before the run; {parts}"
        else:
            machine_text = f"{machine:8.2f} CPU-s"
            ratio = f"{machine / 3:.2f} x target 3; {parts}, rest {machine - cpu.gateway - cpu.nodes:.2f}"
        rows.append((f"CPU per GiB {name}, whole machine", machine_text, ratio))
    if big_peak:
        rows.append(
            (
                f"gateway peak RSS, {args.rss_gib} GiB PUT",
                f"{big_peak / 2**20:8.0f} MiB",
                f"{big_peak / max(peaks):.2f} x the 1 GiB peak",
            )
        )
    for parallel, rate in sessions.items():
        rows.append((f"{args.size_mib} MiB via session, {parallel} parallel parts", f"{rate:8.0f} MB/s",
                     f"{rate / put:.2f} x single PUT"))  # fmt: skip
    rows += [
        (
            f"{args.size_mib} MiB via tus (tuspy, 8 MiB chunks)",
            f"{tus_rate:8.0f} MB/s",
            f"{tus_rate / put:.2f} x single PUT",
        ),
        ("64 KiB parts, 8 parallel", f"{parts_rate:8.0f} parts/s", ""),
        ("complete an upload of 1000 parts", f"{complete_seconds * 1000:8.0f} ms", ""),
        ("gateway peak RSS, 8 parallel parts", f"{session_peak / 2**20:8.0f} MiB", ""),
    ]
    for method in ("PUT", "GET", "GET, read grant"):
        rate, p50, p99 = ops[method]
        versus = f", {rate / ops['GET'][0]:.2f} x owner GET" if method != "GET" and "GET" in method else ""
        if method in SMALL_TARGETS:
            versus += f", {rate / SMALL_TARGETS[method]:.2f} x target {SMALL_TARGETS[method]}"
        rows.append(
            (
                f"4 KiB {method} x{args.concurrency}",
                f"{rate:8.0f} ops/s",
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms{versus}",
            )
        )
    for method, cpu in small_cpu.items():
        rows.append(
            (
                f"CPU per 4 KiB {method}, gateway",
                f"{cpu.gateway * 1000:8.2f} ms",
                "whole machine n/a (busy before the run)"
                if busy
                else f"whole machine {(cpu.machine - cpu.background) * 1000:.2f} ms (client included)",
            )
        )
    rows.append(("sign-ins (argon2id), 4 at a time", f"{logins:8.1f} /s", ""))
    print_table(
        f"cargohold bench (median of {args.repeat}; runs: PUT {[round(p) for p in puts]}, "
        f"GET {[round(g) for g in gets]}; {args.workers} gateway workers; machine background"
        f" {background:.2f} CPU-s/s taken off)",
        rows,
    )


def upload_rows(workdir: Path, args: argparse.Namespace) -> None:
    """The big-transfer figures only, each round measuring all of them one after the other
    (dd included), so a busy neighbour slows every figure of a round alike; medians printed."""
    size = args.size_mib * 1024 * 1024
    source = workdir / "source.bin"
    with source.open("wb") as f:
        for _ in range(args.size_mib):
            f.write(os.urandom(1024 * 1024))
    runs: dict[str, list[float]] = {
        name: [] for name in ("dd write", "dd read", "PUT", "GET", "session4", "tus")
    }
    with Cluster(workdir / "cluster") as cluster:
        url = cluster.url
        auth = ["-H", f"Authorization: Bearer {ADMIN_KEY}"]
        subprocess.run(
            ["curl", "-sS", "-f", "-X", "PUT", *auth, f"{url}/api/v1/buckets/bench"],
            check=True,
            capture_output=True,
        )
        for run in range(args.repeat):
            dd_write, dd_read = dd_baseline(workdir, args.size_mib)
            runs["dd write"].append(dd_write)
            runs["dd read"].append(dd_read)
            obj = f"{url}/api/v1/buckets/bench/objects/big{run}"
            runs["PUT"].append(size / curl([*auth, "-T", str(source), obj]) / MB)
            runs["GET"].append(size / curl([*auth, obj]) / MB)
            runs["session4"].append(asyncio.run(uploads.session_upload(url, source, 4)))
            runs["tus"].append(uploads.tus_upload(url, source))
    med = {name: statistics.median(rates) for name, rates in runs.items()}
    rows = [
        *baseline_rows(med["dd write"], med["dd read"]),
        (
            f"PUT {args.size_mib} MiB",
            f"{med['PUT']:8.0f} MB/s",
            f"{med['PUT'] / med['dd write']:.2f} x dd write",
        ),
        (
            f"GET {args.size_mib} MiB",
            f"{med['GET']:8.0f} MB/s",
            f"{med['GET'] / med['dd read']:.2f} x dd read",
        ),
        (
            "session, 4 parallel parts",
            f"{med['session4']:8.0f} MB/s",
            f"{med['session4'] / med['PUT']:.2f} x PUT",
        ),
        ("tus (tuspy, 8 MiB chunks)", f"{med['tus']:8.0f} MB/s", f"{med['tus'] / med['PUT']:.2f} x PUT"),
    ]
    detail = "; ".join(f"{name} {[round(r) for r in rates]}" for name, rates in runs.items())
    print_table(f"cargohold upload bench (median of {args.repeat}; runs: {detail})", rows)


def baseline_rows(dd_write: float, dd_read: float) -> list[tuple[str, str, str]]:
    return [
        ("dd write (fdatasync)", f"{dd_write:8.0f} MB/s", "1.00 x dd write"),
        ("dd read (O_DIRECT)", f"{dd_read:8.0f} MB/s", "1.00 x dd read"),
    ]


def print_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    print(f"\n{title}")
    width = max(len(r[0]) for r in rows)
    for name, value, ratio in rows:
        print(f"  {name:<{width}}  {value:>15}  {ratio}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
