"""Probe test: fill eight nodes, add four empty ones, and rebalance under live reads and writes."""

from __future__ import annotations

import hashlib
import random
import threading
from pathlib import Path

from cargohold.testing.cluster import Cluster
from cargohold.testing.data import sample

CAPACITY = 24 * 1024 * 1024
OBJECT = 1_600_000


def _spread(nodes: list[dict[str, object]]) -> float:
    fills = [float(n["fill"]) * 100 for n in nodes]  # type: ignore[arg-type]
    return max(fills) - min(fills)


def test_rebalance_evens_fill_while_reads_and_writes_go_on(tmp_path: Path) -> None:
    with Cluster(tmp_path / "c", node_count=0) as cluster, cluster.client() as api:
        for _ in range(8):
            cluster.add_node(capacity=CAPACITY)
        api.put("/api/v1/buckets/fill")
        written: dict[str, str] = {}
        for i in range(40):
            data = sample(OBJECT, seed=i)
            assert api.put(f"/api/v1/buckets/fill/objects/o{i}", content=data).status_code == 201
            written[f"o{i}"] = hashlib.sha256(data).hexdigest()
        for _ in range(4):
            cluster.add_node(capacity=CAPACITY)
        cluster.wait_for(lambda: len(api.get("/api/v1/nodes").json()["nodes"]) == 12)
        before = _spread(api.get("/api/v1/nodes").json()["nodes"])
        assert before > 30

        stop = threading.Event()
        read_errors: list[str] = []
        reads = [0]
        new: dict[str, str] = {}

        def reader() -> None:
            rng = random.Random(1)
            with cluster.client() as client:
                while not stop.is_set():
                    key = rng.choice(sorted(written))
                    reply = client.get(f"/api/v1/buckets/fill/objects/{key}")
                    reads[0] += 1
                    if reply.status_code != 200 or hashlib.sha256(reply.content).hexdigest() != written[key]:
                        read_errors.append(f"{key}: {reply.status_code}")

        def writer() -> None:
            with cluster.client() as client:
                for i in range(12):
                    data = sample(300_000, seed=1000 + i)
                    reply = client.put(f"/api/v1/buckets/fill/objects/new{i}", content=data)
                    if reply.status_code == 201:
                        new[f"new{i}"] = hashlib.sha256(data).hexdigest()

        threads = [
            threading.Thread(target=reader),
            threading.Thread(target=reader),
            threading.Thread(target=writer),
        ]
        for thread in threads:
            thread.start()
        try:
            cluster.run_worker_once("rebalance", timeout=300)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        assert read_errors == [] and reads[0] > 0
        assert len(new) == 12  # every write during the rebalance was acknowledged...
        for key, digest in {**written, **new}.items():  # ...and every byte reads back
            reply = api.get(f"/api/v1/buckets/fill/objects/{key}")
            assert hashlib.sha256(reply.content).hexdigest() == digest, key
        cluster.wait_for(lambda: _spread(api.get("/api/v1/nodes").json()["nodes"]) <= 5.0, timeout=10)
        assert api.get("/api/v1/health").json()["fill_spread"] <= 5.0
        [job] = api.get("/api/v1/jobs", params={"kind": "rebalance"}).json()["jobs"][:1]
        assert job["state"] == "done" and job["payload"]["moved"] > 0 and job["progress_bytes"] > 0
        rows = cluster.query(
            "SELECT part_id, count(DISTINCT node_id), count(*) FROM part_shares GROUP BY part_id"
        )
        bad = [r[0] for r in rows if not r[1] == r[2] == 7]
        ids = ",".join(f"'{b}'" for b in bad) or "''"
        got = cluster.query(
            f"SELECT part_id, share_index, node_id, state FROM part_shares WHERE part_id IN ({ids})"
        )
        assert " ".join(f"{p[:4]}:{i}:{n}:{st}" for p, i, n, st in got) == ""
