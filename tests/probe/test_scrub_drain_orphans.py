"""Probe tests for scrub, drain and the orphan sweep: real nodes, real share files, real damage."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cargohold.domain.layout import Layout
from cargohold.testing.cluster import Cluster, NodeProc
from cargohold.testing.data import sample

BLOCK = Layout.parse("ec:5+2").block_size
SIZE = 2 * BLOCK + 777
HOUR_AGO = time.time() - 3600


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    env = {"CARGOHOLD_ORPHAN_GRACE": "600"}
    with Cluster(tmp_path / "c", env=env) as running:
        yield running


def _write(api: httpx.Client, count: int, seed: int) -> dict[str, bytes]:
    api.put("/api/v1/buckets/probe")
    written = {}
    for i in range(count):
        data = sample(SIZE + 100 * i, seed=seed + i)
        assert api.put(f"/api/v1/buckets/probe/objects/k{seed}-{i}", content=data).status_code == 201
        written[f"k{seed}-{i}"] = data
    return written


def _read_all(api: httpx.Client, written: dict[str, bytes]) -> None:
    for key, data in written.items():
        reply = api.get(f"/api/v1/buckets/probe/objects/{key}")
        assert reply.status_code == 200 and reply.content == data, key


def _share_files(cluster: Cluster) -> dict[str, tuple[NodeProc, Path]]:
    return {path.name: (node, path) for node in cluster.nodes for path in node.share_files()}


def _referenced(cluster: Cluster) -> set[str]:
    rows = cluster.query("SELECT part_id, share_index FROM part_shares WHERE node_id IS NOT NULL")
    return {f"{part_id}.{index}" for part_id, index in rows}


def test_scrub_finds_exactly_the_flipped_shares_and_repair_rebuilds_them(cluster: Cluster) -> None:
    with cluster.client() as api:
        written = _write(api, 10, seed=1)
        files = _share_files(cluster)
        by_part: dict[str, list[str]] = {}
        for share_id in sorted(files):
            by_part.setdefault(share_id.rsplit(".", 1)[0], []).append(share_id)
        assert len(by_part) == 10
        # Two damaged shares in each of ten parts: within what parity covers.
        flipped = {share_id for shares in by_part.values() for share_id in shares[1:3]}
        assert len(flipped) == 20
        for share_id in flipped:
            path = files[share_id][1]
            raw = bytearray(path.read_bytes())
            raw[len(raw) // 2] ^= 0x5A  # inside a frame's payload: only its checksum can tell
            path.write_bytes(bytes(raw))

        cluster.run_worker_once("scrub")
        jobs = api.get("/api/v1/jobs", params={"kind": "scrub_node"}).json()["jobs"]
        assert len(jobs) == 8 and {j["state"] for j in jobs} == {"done"}
        found = {share_id for job in jobs for share_id in job["payload"]["corrupt"]}
        assert found == flipped
        assert sum(j["errors"] for j in jobs) == 20
        quarantined = [p for node in cluster.nodes for p in (node.data / "quarantine").iterdir()]
        assert sorted(p.name.rsplit(".", 1)[0] for p in quarantined) == sorted(flipped)
        assert not flipped & set(_share_files(cluster))
        health = api.get("/api/v1/health").json()
        assert health["parts"]["degraded"] == {"2": 10}

        cluster.run_worker_once("repair")
        assert api.get("/api/v1/health").json()["parts"]["degraded"] == {}
        assert _referenced(cluster) == set(_share_files(cluster))
        assert cluster.query("SELECT count(*) FROM part_shares WHERE state = 'missing'") == [(0,)]
        _read_all(api, written)
        # A second pass finds nothing: the rebuilt shares verify.
        cluster.run_worker_once("scrub")
        again = api.get("/api/v1/jobs", params={"kind": "scrub_node", "limit": 8}).json()["jobs"]
        assert [j["payload"]["corrupt"] for j in again] == [[]] * 8


def test_drained_node_ends_empty_and_retired_and_can_be_removed(cluster: Cluster) -> None:
    with cluster.client() as api:
        written = _write(api, 6, seed=20)
        victim = max(cluster.nodes, key=lambda n: len(n.share_files()))
        before = len(victim.share_files())
        assert before > 0
        reply = api.patch(f"/api/v1/nodes/{victim.node_id}", json={"state": "draining"})
        assert reply.status_code == 200 and reply.json()["state"] == "draining"
        # A draining node takes no new writes, but still serves reads.
        more = _write(api, 2, seed=40)
        assert len(victim.share_files()) == before
        cluster.run_worker_once("drain")
        assert cluster.query(f"SELECT state FROM nodes WHERE id = {victim.node_id}") == [("retired",)]

        def shown_retired() -> bool:  # the gateway sees the store's node states at its next probe
            listed = {n["id"]: n for n in api.get("/api/v1/nodes").json()["nodes"]}
            return listed[victim.node_id]["state"] == "retired"

        cluster.wait_for(shown_retired, timeout=10)
        assert victim.share_files() == []
        assert cluster.query(f"SELECT count(*) FROM part_shares WHERE node_id = {victim.node_id}") == [(0,)]
        _read_all(api, {**written, **more})
        rows = cluster.query(
            "SELECT part_id, count(DISTINCT node_id), count(*) FROM part_shares GROUP BY part_id"
        )
        assert all(distinct == total == 7 for _, distinct, total in rows)
        assert api.delete(f"/api/v1/nodes/{victim.node_id}").status_code == 204
        assert victim.node_id not in {n["id"] for n in api.get("/api/v1/nodes").json()["nodes"]}


def _slow_body(data: bytes, started: threading.Event, chunk: int = 64 * 1024) -> Iterator[bytes]:
    for offset in range(0, len(data), chunk):
        if offset >= len(data) // 2:
            started.set()
            time.sleep(0.05)
        yield data[offset : offset + chunk]


def test_orphans_of_killed_writes_are_swept_after_the_grace(cluster: Cluster) -> None:
    with cluster.client() as api:
        written = _write(api, 3, seed=60)
        # An open multipart upload with one complete part: referenced, never an orphan.
        upload = api.post("/api/v1/uploads", json={"bucket": "probe", "key": "multi"}).json()["id"]
        first = sample(3 * BLOCK, seed=61)
        assert api.put(f"/api/v1/uploads/{upload}/parts/1", content=first).status_code == 200
        open_part = {
            f"{part_id}.{index}"
            for part_id, index in cluster.query(
                "SELECT s.part_id, s.share_index FROM part_shares s JOIN parts p ON p.id = s.part_id "
                f"WHERE p.upload_id = '{upload}'"
            )
        }
        assert len(open_part) == 7

        # The gateway dies mid-PUT and mid-part: whatever those writes left behind must go.
        started = threading.Event()
        errors: list[BaseException] = []

        def doomed(path: str, data: bytes) -> None:
            try:
                with cluster.client(timeout=30) as client:
                    client.put(path, content=_slow_body(data, started))
            except httpx.HTTPError as exc:
                errors.append(exc)

        threads = [
            threading.Thread(
                target=doomed, args=("/api/v1/buckets/probe/objects/doomed", sample(8 * BLOCK, 62))
            ),
            threading.Thread(
                target=doomed, args=(f"/api/v1/uploads/{upload}/parts/2", sample(8 * BLOCK, 63))
            ),
        ]
        for thread in threads:
            thread.start()
        assert started.wait(30)
        cluster.gateway.kill()  # type: ignore[union-attr]
        cluster.gateway.wait(10)  # type: ignore[union-attr]
        for thread in threads:
            thread.join(30)
        assert len(errors) == 2
        cluster.start_gateway()

        # A crash after the shares were durable but before the commit leaves whole share
        # files no part knows; make a set of them, some older than the grace, some not.
        node = cluster.nodes[0]
        template = next(iter(node.share_files()))
        old = [node.data / "shares" / "ab" / f"ab{i:030d}.{i}" for i in range(3)]
        young = node.data / "shares" / "cd" / "cd000000000000000000000000000000.4"
        for path in [*old, young]:
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(template.read_bytes())
        for path in old:
            os.utime(path, (HOUR_AGO, HOUR_AGO))

        cluster.run_worker_once("gc")
        remaining = set(_share_files(cluster))
        assert not {p.name for p in old} & remaining
        assert young.name in remaining  # younger than the grace: may be a write in flight
        assert remaining - {young.name} == _referenced(cluster)
        assert open_part <= remaining
        assert all(not any((n.data / "tmp").iterdir()) for n in cluster.nodes)
        _read_all(api, written)
        # The open upload is intact: send part 2 again and complete it.
        second = sample(BLOCK, seed=64)
        assert api.put(f"/api/v1/uploads/{upload}/parts/2", content=second).status_code == 200
        done = api.post(f"/api/v1/uploads/{upload}/complete", json={})
        assert done.status_code == 200, done.text
        assert api.get("/api/v1/buckets/probe/objects/multi").content == first + second
