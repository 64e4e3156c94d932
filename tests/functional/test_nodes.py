"""Node administration and placement: listing, live add, flags, even fill."""

from __future__ import annotations

import statistics

import httpx
import pytest

from cargohold.testing.cluster import Cluster
from cargohold.testing.data import sample


def _used(api: httpx.Client) -> dict[int, int]:
    return {n["id"]: n["used"] for n in api.get("/api/v1/nodes").json()["nodes"]}


def _fresh_stats(cluster: Cluster, api: httpx.Client, expected_total: int) -> dict[int, int]:
    """Poll until the gateway's health probes have seen every byte written."""
    cluster.wait_for(lambda: sum(_used(api).values()) >= expected_total, timeout=15)
    return _used(api)


def _disk_bytes(cluster: Cluster) -> int:
    return sum(p.stat().st_size for n in cluster.nodes for p in n.share_files())


def test_list_and_flags(api: httpx.Client, cluster: Cluster) -> None:
    nodes = api.get("/api/v1/nodes").json()["nodes"]
    assert len(nodes) == 8
    assert all(n["healthy"] and n["enabled"] and n["active"] for n in nodes)
    assert {"zone", "capacity", "used", "free", "fill", "shares"} <= nodes[0].keys()
    first = nodes[0]["id"]
    off = api.patch(f"/api/v1/nodes/{first}", json={"active": False, "zone": "z9"})
    assert off.status_code == 200 and off.json()["active"] is False and off.json()["zone"] == "z9"
    try:
        node = next(n for n in cluster.nodes if n.node_id == first)
        before = set(node.share_files())
        api.put("/api/v1/buckets/flags")
        for i in range(5):
            reply = api.put(f"/api/v1/buckets/flags/objects/{i}", content=sample(600_000, seed=i))
            assert reply.status_code == 201
        # Seven shares per part, seven active nodes: the inactive node got nothing new,
        # and every other node got one share of each object.
        assert set(node.share_files()) == before
        others = [n for n in cluster.nodes if n is not node]
        assert all(len(set(n.share_files())) >= 5 for n in others)
    finally:
        api.patch(f"/api/v1/nodes/{first}", json={"active": True, "zone": "default"})
    bad = api.patch(f"/api/v1/nodes/{first}", json={"active": "yes"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_argument"
    empty = api.patch(f"/api/v1/nodes/{first}", json={})
    assert empty.status_code == 400


def test_add_node_rejects_unreachable(api: httpx.Client) -> None:
    reply = api.post("/api/v1/nodes", json={"url": "http://127.0.0.1:9", "zone": "x"})
    assert reply.status_code == 422 and reply.json()["code"] == "node_unreachable"
    nowhere = api.post("/api/v1/nodes", json={"url": "http://no-such-host.invalid", "zone": "x"})
    assert nowhere.status_code == 422 and nowhere.json()["code"] == "node_unreachable"
    assert api.post("/api/v1/nodes", json={"url": "ftp://x"}).status_code == 400


@pytest.mark.slow
def test_even_fill_then_new_nodes_take_more(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with Cluster(tmp_path / "fill") as cluster, cluster.client() as api:
        api.put("/api/v1/buckets/fill")
        sizes = [40_000 + (i * 7919) % 900_000 for i in range(200)] + [3_000_000] * 10
        for i, size in enumerate(sizes):
            reply = api.put(f"/api/v1/buckets/fill/objects/o{i}", content=sample(size, seed=i))
            assert reply.status_code == 201
        disk = _disk_bytes(cluster)
        used = _fresh_stats(cluster, api, disk)
        mean = statistics.mean(used.values())
        assert all(abs(u - mean) <= 0.10 * mean for u in used.values()), used

        new = [cluster.add_node(), cluster.add_node()]
        before = _used(api)
        total_before = sum(before.values())
        for i, size in enumerate(sizes[:60]):
            api.put(f"/api/v1/buckets/fill/objects/n{i}", content=sample(size, seed=1000 + i))
        after = _fresh_stats(cluster, api, _disk_bytes(cluster))
        written = sum(after.values()) - total_before
        new_share = sum(after[n.node_id] for n in new) / written  # type: ignore[index]
        # Proportional would be 2/10 of the new bytes; emptiest-first puts a share of
        # every new part on each empty node, 2/7 of the bytes, the most possible.
        assert new_share > 0.27, (new_share, after)
