"""Probe tests for repair: nodes die for good, writes land degraded, and the worker heals it all.

ec:5+2 throughout: every part must end with 7 healthy shares on 7 distinct
live nodes, and then survive two *more* lost nodes byte for byte.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cargohold.domain.layout import Layout
from cargohold.testing.cluster import Cluster, NodeProc
from cargohold.testing.data import sample
from tests.conftest import BOTH_STORES, store_url

BLOCK = Layout.parse("ec:5+2").block_size
SIZE = 2 * BLOCK + 12345
#: A node is lost as soon as it is seen down; the worker looks for work every second.
FAST = {
    "CARGOHOLD_NODE_LOST_AFTER": "0.01",
    "CARGOHOLD_CHECK_INTERVAL": "1",
    "CARGOHOLD_WORKER_POLL_INTERVAL": "0.5",
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path / "c", env=FAST) as running:
        yield running


@pytest.fixture(params=BOTH_STORES)
def any_store_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """The main probe runs on SQLite and on PostgreSQL."""
    with store_url(request, request.param) as url, Cluster(tmp_path / "c", db_url=url, env=FAST) as running:
        yield running


def _shares(cluster: Cluster) -> dict[str, list[tuple[int, int | None, str]]]:
    """Every committed part's shares as (index, node id, state), from the metadata store."""
    rows = cluster.query(
        "SELECT s.part_id, s.share_index, s.node_id, s.state FROM part_shares s "
        "JOIN parts p ON p.id = s.part_id WHERE p.object_id IS NOT NULL ORDER BY 1, 2"
    )
    parts: dict[str, list[tuple[int, int | None, str]]] = {}
    for part_id, index, node_id, state in rows:
        parts.setdefault(part_id, []).append((index, node_id, state))
    return parts


def _assert_whole(cluster: Cluster, dead: set[int]) -> None:
    """Every part has all 7 shares ok, on 7 distinct nodes, none of them dead, each file present."""
    parts = _shares(cluster)
    assert parts
    by_id = {n.node_id: n for n in cluster.nodes}
    for part_id, shares in parts.items():
        assert [index for index, _, _ in shares] == list(range(7)), part_id
        assert all(state == "ok" for _, _, state in shares), (part_id, shares)
        nodes = [node_id for _, node_id, _ in shares]
        assert len(set(nodes)) == 7 and not set(nodes) & dead, (part_id, nodes)
        for index, node_id, _ in shares:
            assert node_id is not None
            path = by_id[node_id].data / "shares" / part_id[:2] / f"{part_id}.{index}"
            assert path.is_file(), path


def _wait_down(cluster: Cluster, api: httpx.Client, node: NodeProc) -> None:
    def down() -> bool:
        listed = {n["id"]: n for n in api.get("/api/v1/nodes").json()["nodes"]}
        return listed[node.node_id]["status"] == "down"

    cluster.wait_for(down, timeout=20)


def _write(api: httpx.Client, count: int, seed: int) -> dict[str, bytes]:
    api.put("/api/v1/buckets/heal")
    written = {}
    for i in range(count):
        data = sample(SIZE + i * 1000, seed=seed + i)
        reply = api.put(f"/api/v1/buckets/heal/objects/o{seed}-{i}", content=data)
        assert reply.status_code == 201, reply.text
        written[f"o{seed}-{i}"] = data
    return written


def _read_all(api: httpx.Client, written: dict[str, bytes]) -> None:
    for key, data in written.items():
        reply = api.get(f"/api/v1/buckets/heal/objects/{key}")
        assert reply.status_code == 200, (key, reply.text[:200])
        assert reply.content == data, key


def test_lost_node_is_rebuilt_by_worker_once_and_survives_two_more(any_store_cluster: Cluster) -> None:
    cluster = any_store_cluster
    with cluster.client() as api:
        written = _write(api, 6, seed=100)
        holders = Counter(node_id for shares in _shares(cluster).values() for _, node_id, _ in shares)
        victim = next(n for n in cluster.nodes if holders[n.node_id])
        cluster.stop_node(victim, kill=True)
        _wait_down(cluster, api, victim)
        health = api.get("/api/v1/health").json()
        assert health["parts"]["degraded"] == {"1": holders[victim.node_id]}
        cluster.run_worker_once("repair")
        _assert_whole(cluster, dead={victim.node_id})
        assert cluster.query(f"SELECT state FROM nodes WHERE id = {victim.node_id}") == [("lost",)]
        # The gateway sees the store's node states at its next probe.
        cluster.wait_for(
            lambda: (
                {n["id"]: n["state"] for n in api.get("/api/v1/nodes").json()["nodes"]}[victim.node_id]
                == "lost"
            )
        )
        health = api.get("/api/v1/health").json()
        assert health["parts"]["degraded"] == {} and health["parts"]["unreadable"] == 0
        assert health["objects"]["healthy"] == health["objects"]["total"] == 6
        # Two more nodes die: every object still reads back exactly.
        others = [n for n in cluster.nodes if n is not victim][:2]
        for node in others:
            cluster.stop_node(node, kill=True)
        _read_all(api, written)


def test_running_worker_rebuilds_a_lost_node_by_itself(cluster: Cluster) -> None:
    with cluster.client() as api:
        written = _write(api, 4, seed=200)
        cluster.start_worker()
        victim = cluster.nodes[3]
        cluster.stop_node(victim, kill=True)

        def healed() -> bool:
            parts = _shares(cluster)
            return all(
                all(state == "ok" and node_id not in (None, victim.node_id) for _, node_id, state in shares)
                for shares in parts.values()
            )

        cluster.wait_for(healed, timeout=60, interval=0.5)
        _assert_whole(cluster, dead={victim.node_id})
        for node in cluster.nodes[5:7]:
            cluster.stop_node(node, kill=True)
        _read_all(api, written)


def test_writes_with_two_of_eight_nodes_down_are_completed_by_repair(cluster: Cluster) -> None:
    with cluster.client() as api:
        api.put("/api/v1/buckets/heal")
        down = cluster.nodes[:2]
        for node in down:
            cluster.stop_node(node, kill=True)
            _wait_down(cluster, api, node)
        data = sample(SIZE, seed=300)
        reply = api.put("/api/v1/buckets/heal/objects/degraded", content=data)
        assert reply.status_code == 201, reply.text
        [shares] = _shares(cluster).values()
        placed = [s for s in shares if s[1] is not None]
        assert len(placed) == 6 and all(state == "ok" for _, _, state in placed)
        assert [(node, state) for _, node, state in shares if node is None] == [(None, "missing")]
        assert api.get("/api/v1/buckets/heal/objects/degraded").content == data
        # No seventh node to put it on yet: repair leaves it missing and retries later.
        cluster.run_worker_once("repair")
        assert sum(node is None for _, node, _ in next(iter(_shares(cluster).values()))) == 1
        # A new node joins: the next repair round completes the part to 7 shares.
        cluster.add_node()
        cluster.run_worker_once("repair")
        [shares] = _shares(cluster).values()
        assert all(state == "ok" and node is not None for _, node, state in shares)
        assert len({node for _, node, _ in shares}) == 7
        assert api.get("/api/v1/buckets/heal/objects/degraded").content == data


def test_write_made_while_a_node_was_down_gets_its_missing_share_rebuilt(tmp_path: Path) -> None:
    """The node dies before any probe notices: the write finds out, records the share missing."""
    unnoticed = {**FAST, "CARGOHOLD_HEALTH_INTERVAL": "3600", "CARGOHOLD_NODE_LOST_AFTER": "3600"}
    with Cluster(tmp_path / "c", env=unnoticed) as cluster, cluster.client() as api:
        api.put("/api/v1/buckets/heal")
        data = sample(SIZE, seed=400)
        for _ in range(4):  # until a write picks the dead node (it cannot tell it is dead)
            victim = cluster.nodes[0]
            if victim.process is not None:
                cluster.stop_node(victim, kill=True)
            reply = api.put("/api/v1/buckets/heal/objects/while-down", content=data)
            assert reply.status_code == 201, reply.text
            missing = cluster.query(
                "SELECT part_id, share_index, node_id FROM part_shares WHERE state = 'missing'"
            )
            if missing:
                break
        assert [node for _, _, node in missing] == [victim.node_id]
        cluster.run_worker_once("repair")
        _assert_whole(cluster, dead={victim.node_id})
        assert api.get("/api/v1/buckets/heal/objects/while-down").content == data


def test_running_worker_rebuilds_a_node_an_admin_declares_lost(tmp_path: Path) -> None:
    """The worker learns of the admin's decision from the store, not from its own (older) view."""
    slow = {**FAST, "CARGOHOLD_NODE_LOST_AFTER": "3600", "CARGOHOLD_HEALTH_INTERVAL": "3600"}
    with Cluster(tmp_path / "c", env=slow) as cluster, cluster.client() as api:
        written = _write(api, 3, seed=500)
        cluster.start_worker()
        victim = next(n for n in cluster.nodes if n.share_files())
        assert api.patch(f"/api/v1/nodes/{victim.node_id}", json={"state": "lost"}).status_code == 200

        def moved_off() -> bool:
            return all(
                all(state == "ok" and node_id != victim.node_id for _, node_id, state in shares)
                for shares in _shares(cluster).values()
            )

        cluster.wait_for(moved_off, timeout=60, interval=0.5)
        _assert_whole(cluster, dead={victim.node_id})
        _read_all(api, written)
