"""Import figures for bench/run.py --imports, beside the native PUT of the same run.

A 1 GiB file (``--size-mib``) is served by a local HTTP server (aiohttp's
``FileResponse`` in this process, page-cached) and fetched by the cluster's
worker into erasure-coded shares (8 nodes, ec:5+2, 64 MiB parts, SQLite).
The import's rate is the file's size over the time from ``POST
/api/v1/imports`` to the moment ``GET`` shows it ``UPLOADED`` (polled every
50 ms, so the figure includes the queueing and the completion); the native
PUT is ``curl -T`` of the same file to the same cluster. Both are medians of
``--repeat`` runs, alternating, so a noisy neighbour hits both alike. A third
figure imports with an expected sha256, which the worker computes on the way.

Beside the rates, the CPU time the worker spent per GiB imported and the
gateway per GiB put (``/proc/<pid>/stat``): on a machine whose cores are
shared with other work, the rates say how much of the machine each process
was given as much as how fast it is, the CPU time says what the work costs.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from cargohold.testing.cluster import ADMIN_KEY, Cluster
from cargohold.testing.sources import SourceServer

MB = 1_000_000
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _put(url: str, source: Path, key: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["curl", "-sS", "-f", "-o", "/dev/null", "-H", f"Authorization: Bearer {ADMIN_KEY}",
         "-T", str(source), f"{url}/api/v1/buckets/bench/objects/{key}"],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def _import(api: httpx.Client, source_url: str, key: str, sha256: str | None = None) -> float:
    body: dict[str, Any] = {"source": source_url, "bucket": "bench", "key": key}
    if sha256 is not None:
        body["expected_sha256"] = sha256
    started = time.perf_counter()
    made = api.post("/api/v1/imports", json=body)
    assert made.status_code == 202, made.text
    while True:
        state = api.get(f"/api/v1/imports/{made.json()['id']}").json()
        if state["status"] in ("UPLOADED", "FAILED", "DELETED"):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    assert state["status"] == "UPLOADED", state
    return elapsed


def bench(workdir: Path, args: Any) -> list[tuple[str, str, str]]:
    source = workdir / "source.bin"
    digest = hashlib.sha256()
    with source.open("wb") as f:
        for _ in range(args.size_mib):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            f.write(block)
    size = source.stat().st_size
    runs: dict[str, list[float]] = {"put": [], "import": [], "import+sha256": []}
    cpu = {"put": 0.0, "import": 0.0}
    with Cluster(workdir / "cluster") as cluster, SourceServer(path=source) as server:
        cluster.start_worker()
        assert cluster.gateway is not None and cluster.worker is not None
        gateway, worker = cluster.gateway.pid, cluster.worker.pid
        with httpx.Client(base_url=cluster.url, headers=AUTH, timeout=600) as api:
            assert api.put("/api/v1/buckets/bench").status_code == 201
            allowed = api.patch("/api/v1/events/settings", json={"webhook_allow_private": True})
            assert allowed.status_code == 200, allowed.text
            for attempt in range(args.repeat):
                before = cpu_seconds(gateway)
                runs["put"].append(size / _put(cluster.url, source, f"put{attempt}") / MB)
                cpu["put"] += cpu_seconds(gateway) - before
                before = cpu_seconds(worker)
                runs["import"].append(size / _import(api, server.file_url(), f"imp{attempt}") / MB)
                cpu["import"] += cpu_seconds(worker) - before
                runs["import+sha256"].append(
                    size / _import(api, server.file_url(), f"sha{attempt}", digest.hexdigest()) / MB
                )
            served = len(server.seen)
    put = statistics.median(runs["put"])
    mib = args.size_mib
    rows = [(f"native PUT {mib} MiB (curl)", f"{put:8.0f} MB/s", "1.00 x native PUT")]
    for name, label in (("import", "import"), ("import+sha256", "import, sha256 verified")):
        rate = statistics.median(runs[name])
        rows.append((f"{label} {mib} MiB from HTTP", f"{rate:8.0f} MB/s", f"{rate / put:.2f} x native PUT"))
    gib = size / 2**30 * args.repeat
    put_cpu, import_cpu = cpu["put"] / gib, cpu["import"] / gib
    rows += [
        ("gateway CPU per GiB put", f"{put_cpu:8.1f} s", "1.00 x"),
        (
            "worker CPU per GiB imported",
            f"{import_cpu:8.1f} s",
            f"{import_cpu / put_cpu:.2f} x the gateway's",
        ),
        ("runs (MB/s)", "", "; ".join(f"{n} {[round(r) for r in rates]}" for n, rates in runs.items())),
    ]
    rows.append(("source requests served", f"{served:8d}", "one per import: no reconnection"))
    return rows
