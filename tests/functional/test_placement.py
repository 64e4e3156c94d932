"""``GET /api/v1/buckets/{bucket}/placement/{key}``: where an object's shares are, against a real cluster.

Four nodes and ec:2+1, so the three shares of a part land on three of four
nodes and "distinct" means something. Nodes are frozen with SIGSTOP (the
health probe then times out, as for a hung machine) and marked lost through
the admin API; no worker runs, so nothing moves the shares meanwhile.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster, NodeProc
from cargohold.testing.data import sample

BUCKET = "placed"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # A frozen node is down after one probe timeout: keep it short so the test does not wait 5 s.
    env = {"CARGOHOLD_HEALTH_TIMEOUT": "1"}
    with Cluster(tmp_path_factory.mktemp("placement"), node_count=4, layout="ec:2+1", env=env) as running:
        with running.client() as admin:
            assert admin.put(f"/api/v1/buckets/{BUCKET}").status_code == 201
        yield running


@pytest.fixture
def admin(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.client() as client:
        yield client


def _placement(client: httpx.Client, key: str, bucket: str = BUCKET, **params: str) -> dict[str, Any]:
    reply = client.get(f"/api/v1/buckets/{bucket}/placement/{key}", params=params)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def _stored_shares(cluster: Cluster, version_id: str) -> list[tuple[int, int]]:
    """(share index, node id) of a version's shares, as the metadata store holds them."""
    rows = cluster.query(
        "SELECT s.share_index, s.node_id FROM part_shares s JOIN parts p ON p.id = s.part_id"
        f" JOIN objects o ON o.id = p.object_id WHERE o.version_id = '{version_id}' ORDER BY s.share_index"
    )
    return [(int(index), int(node)) for index, node in rows]


def _by_index(found: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {share["index"]: share for share in found["parts"][0]["shares"]}


def _node_proc(cluster: Cluster, node_id: int) -> NodeProc:
    return next(n for n in cluster.nodes if n.node_id == node_id)


def test_an_erasure_coded_object_has_k_plus_m_shares_on_distinct_nodes(
    cluster: Cluster, admin: httpx.Client
) -> None:
    data = sample(100_000)  # above the inline threshold: stored as shares
    put = admin.put(f"/api/v1/buckets/{BUCKET}/objects/dir/ec.bin", content=data)
    assert put.status_code == 201, put.text
    found = _placement(admin, "dir/ec.bin")
    assert (found["key"], found["size"], found["etag"]) == ("dir/ec.bin", len(data), put.json()["etag"])
    assert found["version_id"] == put.json()["version_id"]
    assert (found["layout"], found["health"]) == ("ec:2+1", "healthy")
    [part] = found["parts"]
    assert (part["part_number"], part["offset"], part["size"]) == (1, 0, len(data))
    assert (part["needed"], part["available"], part["health"]) == (2, 3, "healthy")
    shares = part["shares"]
    assert [s["index"] for s in shares] == [0, 1, 2]
    holders = [s["node"]["id"] for s in shares]
    assert len(set(holders)) == 3
    assert set(holders) <= {n.node_id for n in cluster.nodes}
    assert [(s["index"], s["node"]["id"]) for s in shares] == _stored_shares(cluster, found["version_id"])
    for share in shares:
        assert share["node"] == {
            "id": share["node"]["id"],
            "zone": "default",
            "status": "up",
            "state": "normal",
            "enabled": True,
        }
        assert (share["state"], share["available"]) == ("ok", True)

    small = admin.put(f"/api/v1/buckets/{BUCKET}/objects/small.txt", content=b"tiny")
    assert small.status_code == 201
    inline = _placement(admin, "small.txt")
    assert (inline["layout"], inline["health"], inline["parts"], inline["size"]) == (
        "inline",
        "healthy",
        [],
        4,
    )


def test_a_frozen_node_shows_down_and_a_node_marked_lost_shows_lost(
    cluster: Cluster, admin: httpx.Client
) -> None:
    assert (
        admin.put(f"/api/v1/buckets/{BUCKET}/objects/watched.bin", content=sample(50_000)).status_code == 201
    )
    shares = _by_index(_placement(admin, "watched.bin"))
    frozen = _node_proc(cluster, shares[0]["node"]["id"])
    assert frozen.process is not None
    os.kill(frozen.process.pid, signal.SIGSTOP)
    try:

        def down() -> bool:
            return bool(_by_index(_placement(admin, "watched.bin"))[0]["node"]["status"] == "down")

        cluster.wait_for(down, timeout=15)
        found = _placement(admin, "watched.bin")
        share = _by_index(found)[0]
        assert share["node"]["state"] == "normal"
        assert (share["state"], share["available"]) == ("ok", False)
        assert (found["health"], found["parts"][0]["available"]) == ("degraded", 2)
    finally:
        os.kill(frozen.process.pid, signal.SIGCONT)
    cluster.wait_for(lambda: _placement(admin, "watched.bin")["health"] == "healthy", timeout=15)

    lost_id = shares[1]["node"]["id"]
    marked = admin.patch(f"/api/v1/nodes/{lost_id}", json={"state": "lost"})
    assert marked.status_code == 200, marked.text
    try:
        found = _placement(admin, "watched.bin")
        share = _by_index(found)[1]
        assert (share["node"]["id"], share["node"]["state"], share["node"]["status"]) == (
            lost_id,
            "lost",
            "up",
        )
        assert share["available"] is False
        assert _by_index(found)[2]["available"] is True
        assert (found["health"], found["parts"][0]["available"]) == ("degraded", 2)
    finally:
        back = admin.patch(f"/api/v1/nodes/{lost_id}", json={"state": "normal"})
        assert back.status_code == 200, back.text
    assert _by_index(_placement(admin, "watched.bin"))[1]["node"]["state"] == "normal"


def test_readers_see_no_node_urls_and_others_see_nothing(cluster: Cluster, admin: httpx.Client) -> None:
    owner_key = make_user(admin, "place-owner")
    reader_key = make_user(admin, "place-reader")
    stranger_key = make_user(admin, "place-stranger")
    with (
        cluster.client(owner_key) as owner,
        cluster.client(reader_key) as reader,
        cluster.client(stranger_key) as stranger,
    ):
        assert owner.put("/api/v1/buckets/place-own").status_code == 201
        assert (
            owner.put("/api/v1/buckets/place-own/objects/doc.bin", content=sample(40_000)).status_code == 201
        )
        grant = owner.post("/api/v1/buckets/place-own/grants", json={"user": "place-reader", "level": "read"})
        assert grant.status_code == 201, grant.text

        seen = reader.get("/api/v1/buckets/place-own/placement/doc.bin")
        assert seen.status_code == 200, seen.text
        assert [len(p["shares"]) for p in seen.json()["parts"]] == [3]
        assert all(
            set(s["node"]) == {"id", "zone", "status", "state", "enabled"}
            for s in seen.json()["parts"][0]["shares"]
        )
        for node in cluster.nodes:
            assert f"127.0.0.1:{node.port}" not in seen.text

        # As every object route answers someone who may not read the bucket: as if it did not exist.
        hidden = stranger.get("/api/v1/buckets/place-own/placement/doc.bin")
        read = stranger.get("/api/v1/buckets/place-own/objects/doc.bin")
        assert (hidden.status_code, hidden.json()["code"]) == (404, "no_such_bucket")
        assert (read.status_code, read.json()["code"]) == (404, "no_such_bucket")

        missing = reader.get("/api/v1/buckets/place-own/placement/nothing-here")
        assert (missing.status_code, missing.json()["code"]) == (404, "no_such_key")


@pytest.mark.parametrize(
    ("bucket", "key", "status", "code"),
    [
        ("Bad_Bucket", "k", 400, "invalid_bucket_name"),
        (BUCKET, "a%01b", 400, "invalid_key"),
        (BUCKET, "small.txt?version_id=not-a-version", 400, "invalid_version_id"),
    ],
)
def test_bad_names_are_refused_as_other_object_routes_refuse_them(
    admin: httpx.Client, bucket: str, key: str, status: int, code: str
) -> None:
    placed = admin.get(f"/api/v1/buckets/{bucket}/placement/{key}")
    read = admin.get(f"/api/v1/buckets/{bucket}/objects/{key}")
    assert (placed.status_code, placed.json()["code"]) == (status, code)
    assert (read.status_code, read.json()["code"]) == (status, code)
