"""Probe tests: stop node processes and damage share files, then read and write.

ec:5+2 on 8 nodes: reads must survive any two lost shares; writes need 6
acknowledgements; below that the client gets a 503 and nothing is visible.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cargohold.domain.layout import Layout
from cargohold.testing.cluster import Cluster, NodeProc
from cargohold.testing.data import sample

BLOCK = Layout.parse("ec:5+2").block_size
SIZE = 4 * BLOCK + 4321


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path / "c") as running:
        yield running


def _nodes_holding(cluster: Cluster, part_prefix: str | None = None) -> list[tuple[NodeProc, Path]]:
    found = []
    for node in cluster.nodes:
        for path in node.share_files():
            if part_prefix is None or path.name.startswith(part_prefix):
                found.append((node, path))
    return found


def _put(api: httpx.Client, key: str, data: bytes) -> httpx.Response:
    return api.put(f"/api/v1/buckets/probe/objects/{key}", content=data)


def _get(api: httpx.Client, key: str, **kw) -> httpx.Response:  # type: ignore[no-untyped-def]
    return api.get(f"/api/v1/buckets/probe/objects/{key}", **kw)


def _share_index(path: Path) -> int:
    return int(path.name.rsplit(".", 1)[1])


def test_reads_survive_two_stopped_nodes(cluster: Cluster) -> None:
    data = sample(SIZE, seed=7)
    with cluster.client() as api:
        api.put("/api/v1/buckets/probe")
        assert _put(api, "f", data).status_code == 201
        holders = sorted(_nodes_holding(cluster), key=lambda h: _share_index(h[1]))
        # Stop the nodes holding data shares 0 and 3: the read must decode from parity.
        for node, path in holders:
            if _share_index(path) in (0, 3):
                cluster.stop_node(node)
        got = _get(api, "f")
        assert got.status_code == 200 and got.content == data
        ranged = _get(api, "f", headers={"Range": f"bytes={BLOCK - 5}-{2 * BLOCK + 5}"})
        assert ranged.content == data[BLOCK - 5 : 2 * BLOCK + 6]
        # A third lost share is one too many.
        third = next(n for n, p in holders if _share_index(p) == 1)
        cluster.stop_node(third)
        lost = _get(api, "f")
        assert lost.status_code == 503 and lost.json()["code"] == "read_unavailable"


def test_reads_survive_corrupt_and_deleted_shares(cluster: Cluster) -> None:
    data = sample(SIZE, seed=8)
    with cluster.client() as api:
        api.put("/api/v1/buckets/probe")
        assert _put(api, "g", data).status_code == 201
        holders = {(_share_index(p)): p for _, p in _nodes_holding(cluster)}
        # Flip a byte in the middle of data share 1's third block, delete data share 4.
        victim = holders[1]
        raw = bytearray(victim.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        victim.write_bytes(bytes(raw))
        holders[4].unlink()
        got = _get(api, "g")
        assert got.status_code == 200
        assert got.content == data


def test_write_survives_one_stopped_node_and_fails_below_quorum(cluster: Cluster) -> None:
    with cluster.client() as api:
        api.put("/api/v1/buckets/probe")
        cluster.stop_node(cluster.nodes[0])
        data = sample(SIZE, seed=9)
        assert _put(api, "one-down", data).status_code == 201
        assert _get(api, "one-down").content == data
        # Two more down: five nodes left for a seven-wide layout.
        cluster.stop_node(cluster.nodes[1])
        cluster.stop_node(cluster.nodes[2])
        cluster.wait_for(lambda: sum(n["healthy"] for n in api.get("/api/v1/nodes").json()["nodes"]) == 5)
        reply = _put(api, "too-few", data)
        assert reply.status_code == 503
        assert reply.json()["code"] in ("insufficient_nodes", "write_quorum_failed")
        assert _get(api, "too-few").status_code == 404


def test_write_quorum_with_nodes_dying_unnoticed(tmp_path: Path) -> None:
    """Nodes killed before the health probe notices: the write itself finds out."""
    slow_probe = {"CARGOHOLD_HEALTH_INTERVAL": "3600"}
    with Cluster(tmp_path / "q", node_count=7, env=slow_probe) as cluster, cluster.client() as api:
        api.put("/api/v1/buckets/probe")
        cluster.stop_node(cluster.nodes[0], kill=True)
        data = sample(SIZE, seed=10)
        ok = _put(api, "six-of-seven", data)
        assert ok.status_code == 201, ok.text
        assert _get(api, "six-of-seven").content == data
        # The share the dead node never stored is recorded, and repair is queued.
        with sqlite3.connect(cluster.root / "meta.db") as db:
            missing = db.execute("SELECT count(*) FROM part_shares WHERE state = 'missing'").fetchone()
            repairs = db.execute("SELECT count(*) FROM jobs WHERE kind = 'repair_part'").fetchone()
        assert missing == (1,) and repairs == (1,)


def test_write_below_quorum_when_nodes_die_unnoticed(tmp_path: Path) -> None:
    slow_probe = {"CARGOHOLD_HEALTH_INTERVAL": "3600"}
    with Cluster(tmp_path / "q", node_count=7, env=slow_probe) as cluster, cluster.client() as api:
        api.put("/api/v1/buckets/probe")
        cluster.stop_node(cluster.nodes[1], kill=True)
        cluster.stop_node(cluster.nodes[2], kill=True)
        reply = _put(api, "five-of-seven", sample(SIZE, seed=11))
        assert reply.status_code == 503
        assert reply.json()["code"] == "write_quorum_failed"
        assert _get(api, "five-of-seven").status_code == 404
        listing = api.get("/api/v1/buckets/probe/objects").json()
        assert listing["objects"] == []
