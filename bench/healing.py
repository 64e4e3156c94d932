"""Healing figures for bench/run.py (``python bench/run.py --healing``), beside the same run's dd.

Two real clusters (SQLite, fsync on, nodes on the baseline's disk), each
worker run as ``cargohold worker --once --kind K`` exactly as an operator
would start it, timed from start to exit, with its CPU time and peak RSS:

* **rebuild**: 8 nodes, ec:5+2, ``--heal-gib`` of 128 MiB objects plus one
  ``--size-mib`` object, so each node holds about 7/5 x 1/8 of the data in
  shares (12 GiB: ~2.1 GiB a node; the default layout, not the cheapest
  one to rebuild — a mirror would reach 2 GiB with less writing but rebuild
  by plain copying). The fullest node is killed and marked lost, and the
  repair runs unthrottled; the figure is the bytes of rebuilt share files
  over the worker's wall time, against dd write.
* **GET under repair**: a fresh node is added, a node holding a parity share
  of the big object is killed and marked lost (so the GET decodes nothing
  either way), the big object is read idle, then again while that node's
  repair runs at the default throttle and concurrency.
* **scrub**: the same cluster scrubbed unthrottled one node at a time (each
  node has the disk to itself, as it would have its own): progress bytes
  over running time of every ``scrub_node`` job, against dd read.
* **rebalance**: 8 nodes with ``--capacity``, ec:5+2 filled with
  ``--rebalance-gib``, 4 empty nodes of the same capacity added, rebalance
  unthrottled; final fill spread, bytes moved and their rate.

GETs are medians of --repeat; the rest run once per bench (each costs GiBs
of writing first) and say so.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from run import MB, curl

from cargohold.config import Settings
from cargohold.testing.cluster import ADMIN_KEY, Cluster, NodeProc

GIB = 2**30
CHUNK_MIB = 128
AUTH = ["-H", f"Authorization: Bearer {ADMIN_KEY}"]
#: Jobs at once for the unthrottled runs (the default is 4).
UNTHROTTLED_CONCURRENCY = 8
DEFAULTS = {
    "repair_bandwidth": Settings.model_fields["repair_bandwidth"].default,
    "rebalance_bandwidth": Settings.model_fields["rebalance_bandwidth"].default,
    "scrub_bandwidth": Settings.model_fields["scrub_bandwidth"].default,
    "concurrency": Settings.model_fields["worker_concurrency"].default,
}


@dataclass
class WorkerRun:
    """One ``worker --once`` process: wall time, CPU time and peak RSS (from wait4)."""

    seconds: float = 0.0
    cpu: float = 0.0
    peak_rss: int = 0

    def row(self, what: str) -> tuple[str, str, str]:
        return (f"  worker, {what}", f"{self.cpu:8.1f} s CPU", f"{self.peak_rss / 2**20:.0f} MiB peak RSS")


@dataclass
class Healing:
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    runs: dict[str, list[float]] = field(default_factory=dict)


class Admin:
    """The admin API calls the bench makes (httpx, as the tests do)."""

    def __init__(self, cluster: Cluster) -> None:
        self.http = cluster.client(timeout=120.0)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.http.request(method, f"/api/v1{path}", **kwargs)
        reply.raise_for_status()
        return reply.json() if reply.content else None

    def settings(self, **changes: int) -> None:
        self.call("PATCH", "/worker/settings", json=changes)

    def lose(self, cluster: Cluster, node: NodeProc) -> None:
        """Kill a node for good and declare it lost, as an admin would."""
        cluster.stop_node(node, kill=True)
        self.call("PATCH", f"/nodes/{node.node_id}", json={"state": "lost"})

    def jobs(self, kind: str, state: str | None = None) -> list[dict[str, Any]]:
        query = {"kind": kind, "limit": "1000", **({"state": state} if state else {})}
        return self.call("GET", "/jobs", params=query)["jobs"]

    def health(self) -> dict[str, Any]:
        return self.call("GET", "/health")


def worker_once(cluster: Cluster, log: Path, *kinds: str) -> tuple[subprocess.Popen[bytes], float]:
    with log.open("ab") as out:
        return cluster.spawn_worker_once(*kinds, output=out), time.perf_counter()


def finish(process: subprocess.Popen[bytes], started: float, log: Path) -> WorkerRun:
    """Reap the worker with wait4, which hands over its CPU time and peak RSS."""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"worker failed ({process.returncode}): {log.read_text()[-3000:]}")
    return WorkerRun(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024)


def run_worker(cluster: Cluster, log: Path, *kinds: str) -> WorkerRun:
    return finish(*worker_once(cluster, log, *kinds), log)


def fill(cluster: Cluster, bucket: str, source: Path, count: int, parallel: int = 2) -> None:
    """``count`` objects from ``source``, a few PUTs at a time (curl, as run.py does)."""
    base = f"{cluster.url}/api/v1/buckets/{bucket}/objects"

    def put(i: int) -> float:
        return curl([*AUTH, "-T", str(source), f"{base}/o{i:05d}"])

    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        list(pool.map(put, range(count)))


def make_bucket(cluster: Cluster, name: str) -> None:
    Admin(cluster).call("PUT", f"/buckets/{name}")


def random_file(path: Path, mib: int) -> Path:
    with path.open("wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    return path


def share_bytes(node: NodeProc) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in node.share_files()}


def big_part(cluster: Cluster) -> str:
    rows = cluster.query(
        "SELECT p.id FROM parts p JOIN objects o ON o.id = p.object_id WHERE o.key = 'big' AND o.is_latest"
    )
    return str(rows[0][0])


def rebuilt_bytes(cluster: Cluster, lost: dict[str, int]) -> tuple[int, int]:
    """Bytes of the lost node's shares now found on live nodes, and how many were not found."""
    found = 0
    left = set(lost)
    for node in cluster.nodes:
        if node.process is None:
            continue
        for share_id in list(left):
            path = node.data / "shares" / share_id[:2] / share_id
            if path.is_file():
                found += path.stat().st_size
                left.discard(share_id)
    return found, len(left)


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(interval)


def repaired(admin: Admin) -> int:
    """Bytes every repair job says it has rebuilt so far (stored about once a second per job)."""
    return sum(job["progress_bytes"] for job in admin.jobs("repair_part"))


def healthy(admin: Admin) -> bool:
    parts = admin.health()["parts"]
    return parts["healthy"] == parts["total"]


def forget(admin: Admin, node: NodeProc) -> None:
    """Remove a lost node once repair left nothing on it, so scrub and placement skip it."""
    admin.call("DELETE", f"/nodes/{node.node_id}")


# -- the figures ---------------------------------------------------------------------


def rebuild_and_read(workdir: Path, args: Any, dd_write: float, dd_read: float, out: Healing) -> None:
    """Cluster one: rebuild a lost node unthrottled, GET under repair, scrub."""
    log = args.dir / "healing-worker.log"  # kept after the run, for a figure that looks wrong
    log.unlink(missing_ok=True)
    chunk = random_file(workdir / "chunk.bin", CHUNK_MIB)
    big = random_file(workdir / "big.bin", args.size_mib)
    count = max(1, round((args.heal_gib * 1024 - args.size_mib) / CHUNK_MIB))
    with Cluster(workdir / "heal") as cluster:
        admin = Admin(cluster)
        make_bucket(cluster, "heal")
        started = time.perf_counter()
        curl([*AUTH, "-T", str(big), f"{cluster.url}/api/v1/buckets/heal/objects/big"])
        fill(cluster, "heal", chunk, count)
        written = (count * CHUNK_MIB + args.size_mib) * 2**20
        fill_rate = written / (time.perf_counter() - started) / MB

        # 1. Rebuild the fullest node, unthrottled.
        held = {node.number: share_bytes(node) for node in cluster.nodes}
        victim = max(cluster.nodes, key=lambda n: sum(held[n.number].values()))
        lost = held[victim.number]
        admin.settings(repair_bandwidth=0, concurrency=UNTHROTTLED_CONCURRENCY)
        admin.lose(cluster, victim)
        rebuild = run_worker(cluster, log, "repair")
        rebuilt, missing = rebuilt_bytes(cluster, lost)
        if missing or not healthy(admin):
            raise RuntimeError(f"repair left {missing} of {len(lost)} shares unbuilt: {admin.health()}")
        forget(admin, victim)
        rate = rebuilt / rebuild.seconds / MB
        out.rows += [
            (f"fill: {written / GIB:.1f} GiB in {count + 1} objects", f"{fill_rate:8.0f} MB/s",
             f"{fill_rate / dd_write:.2f} x dd write"),
            (f"rebuild lost node ({sum(lost.values()) / GIB:.2f} GiB, {len(lost)} shares)",
             f"{rate:8.0f} MB/s",
             f"{rate / dd_write:.2f} x dd write (target 0.3); {rebuild.seconds:.1f} s, 1 run"),
            rebuild.row(f"rebuild unthrottled, concurrency {UNTHROTTLED_CONCURRENCY}"),
        ]  # fmt: skip

        # 2. A 1 GiB GET idle, then while a lost node is rebuilt at the default throttle.
        cluster.add_node()  # every live node holds a share of every part: the rebuild needs a target
        part = big_part(cluster)
        live = [n for n in cluster.nodes if n.process is not None]
        victim = next(n for n in live if any(f"{part}.{i}" in share_bytes(n) for i in (5, 6)))
        lost = share_bytes(victim)
        admin.settings(repair_bandwidth=DEFAULTS["repair_bandwidth"], concurrency=DEFAULTS["concurrency"])
        admin.lose(cluster, victim)
        size = args.size_mib * 2**20
        url = f"{cluster.url}/api/v1/buckets/heal/objects/big"
        idle = [size / curl([*AUTH, url]) / MB for _ in range(args.repeat)]
        before = repaired(admin)
        process, started = worker_once(cluster, log, "repair")
        wait_until(lambda: repaired(admin) > before, 60, "no repair made progress")
        progress, gets_started = repaired(admin), time.perf_counter()
        busy = [size / curl([*AUTH, url]) / MB for _ in range(args.repeat)]
        during = (repaired(admin) - progress) / (time.perf_counter() - gets_started) / MB
        overlapped = process.poll() is None
        throttled = finish(process, started, log)
        rebuilt, missing = rebuilt_bytes(cluster, lost)
        if missing or not healthy(admin):
            raise RuntimeError(f"repair left {missing} of {len(lost)} shares unbuilt: {admin.health()}")
        forget(admin, victim)
        idle_get, busy_get = statistics.median(idle), statistics.median(busy)
        out.runs["idle GET"], out.runs["GET under repair"] = idle, busy
        note = "" if overlapped else " (repair ended before the GETs did!)"
        throttle = DEFAULTS["repair_bandwidth"] / MB
        out.rows += [
            (f"GET {args.size_mib} MiB, idle (1 node lost)", f"{idle_get:8.0f} MB/s",
             f"{idle_get / dd_read:.2f} x dd read"),
            (f"GET {args.size_mib} MiB while repair runs", f"{busy_get:8.0f} MB/s",
             f"{busy_get / idle_get:.2f} x idle GET (target 0.7){note}"),
            (f"  repair meanwhile (throttle {throttle:.0f} MB/s)", f"{during:8.0f} MB/s", ""),
            (f"rebuild at default throttle ({rebuilt / GIB:.2f} GiB)",
             f"{rebuilt / throttled.seconds / MB:8.0f} MB/s", f"{throttled.seconds:.1f} s"),
            throttled.row(f"rebuild throttled, concurrency {DEFAULTS['concurrency']}"),
        ]  # fmt: skip

        # 4. Scrub every live node, unthrottled, one node at a time.
        admin.settings(scrub_bandwidth=0, concurrency=1)
        scrub = run_worker(cluster, log, "scrub")
        jobs = [j for j in admin.jobs("scrub_node") if j["state"] == "done"]
        rates = [j["rate"] / MB for j in jobs if j["rate"]]
        verified = sum(j["progress_bytes"] for j in jobs)
        per_node = statistics.median(rates)
        out.runs["scrub per node"] = rates
        out.rows += [
            (f"scrub per node ({len(jobs)} nodes, {verified / GIB:.1f} GiB)", f"{per_node:8.0f} MB/s",
             f"{per_node / dd_read:.2f} x dd read; all nodes {verified / scrub.seconds / MB:.0f} MB/s"),
            scrub.row("scrub unthrottled, one node at a time"),
        ]  # fmt: skip


def rebalance(workdir: Path, args: Any, out: Healing) -> None:
    """Cluster two: 8 filled nodes with a capacity, 4 empty ones added, rebalance unthrottled."""
    log = args.dir / "healing-worker.log"
    chunk = workdir / "chunk.bin"
    shares = args.rebalance_gib * GIB * 7 / 5
    # About 70% full before, 47% after: fill % means something and the move is a third of it all.
    capacity = int(shares / 8 / 0.7)
    with Cluster(workdir / "rebalance", node_count=0) as cluster:
        admin = Admin(cluster)
        for _ in range(8):
            cluster.add_node(capacity=capacity)
        make_bucket(cluster, "fill")
        fill(cluster, "fill", chunk, args.rebalance_gib * 1024 // CHUNK_MIB)
        added = [cluster.add_node(capacity=capacity) for _ in range(4)]
        admin.settings(rebalance_bandwidth=0, concurrency=UNTHROTTLED_CONCURRENCY)
        before = admin.health()["fill_spread"]
        run = run_worker(cluster, log, "rebalance")
        moved = sum(j["progress_bytes"] for j in admin.jobs("rebalance"))
        on_new = sum(sum(share_bytes(n).values()) for n in added)

        def settled() -> bool:
            used = {n["id"]: n["used"] for n in admin.call("GET", "/nodes")["nodes"]}
            return all(used[n.node_id] == sum(share_bytes(n).values()) for n in cluster.nodes)

        wait_until(settled, 30, "the gateway never saw the nodes' new fill")
        spread = admin.health()["fill_spread"]
    out.rows += [
        (f"rebalance 8 -> 12 nodes ({shares / GIB:.1f} GiB of shares)",
         f"{moved / run.seconds / MB:8.0f} MB/s",
         f"moved {moved / GIB:.2f} GiB ({on_new / GIB:.2f} GiB to new nodes), {run.seconds:.1f} s, 1 run"),
        ("  fill spread before -> after", f"{before:5.1f} -> {spread:.1f}", "points (target <= 5)"),
        run.row(f"rebalance unthrottled, concurrency {UNTHROTTLED_CONCURRENCY}"),
    ]  # fmt: skip


def bench(workdir: Path, args: Any, dd_write: float, dd_read: float) -> Healing:
    out = Healing()
    rebuild_and_read(workdir, args, dd_write, dd_read, out)
    shutil.rmtree(workdir / "heal", ignore_errors=True)  # the disk space for the next cluster
    rebalance(workdir, args, out)
    return out
