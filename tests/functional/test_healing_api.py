"""The operators' API for healing: jobs, health, worker throttles, node states and removal."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster


def test_worker_settings_change_at_run_time_and_parallel_changes_all_land(api: httpx.Client) -> None:
    defaults = api.get("/api/v1/worker/settings").json()
    assert set(defaults) == {"repair_bandwidth", "rebalance_bandwidth", "scrub_bandwidth", "concurrency"}
    changes = [
        {"repair_bandwidth": 11 * 1024 * 1024},
        {"rebalance_bandwidth": 22 * 1024 * 1024},
        {"scrub_bandwidth": 0},
        {"concurrency": 7},
    ]

    def patch(body: dict[str, int]) -> int:
        return api.patch("/api/v1/worker/settings", json=body).status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(patch, changes * 3)) == [200] * 12
    assert api.get("/api/v1/worker/settings").json() == {
        "repair_bandwidth": 11 * 1024 * 1024,
        "rebalance_bandwidth": 22 * 1024 * 1024,
        "scrub_bandwidth": 0,
        "concurrency": 7,
    }


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"repair_bandwidth": -1},
        {"repair_bandwidth": 2**70},
        {"concurrency": 0},
        {"concurrency": True},
        {"concurrency": "4"},
        {"bogus": 1},
    ],
)
def test_bad_worker_settings_are_refused(api: httpx.Client, body: dict[str, object]) -> None:
    reply = api.patch("/api/v1/worker/settings", json=body)
    assert reply.status_code == 400
    assert reply.json()["code"] == "invalid_argument"


def test_healing_calls_need_an_admin(cluster: Cluster, api: httpx.Client) -> None:
    key = make_user(api, "plain-healing")
    with cluster.client(key) as user, cluster.client(None) as anonymous:
        for method, path in [
            ("GET", "/api/v1/jobs"),
            ("GET", "/api/v1/health"),
            ("GET", "/api/v1/worker/settings"),
            ("POST", "/api/v1/scrub"),
            ("POST", "/api/v1/rebalance"),
            ("DELETE", "/api/v1/nodes/1"),
        ]:
            assert user.request(method, path).json()["code"] == "forbidden", path
            assert anonymous.request(method, path).status_code == 401, path


def test_jobs_list_filters_and_pages(api: httpx.Client) -> None:
    assert api.post("/api/v1/scrub").status_code == 202
    queued = api.get("/api/v1/jobs", params={"kind": "scrub_node", "state": "queued"}).json()
    assert len(queued["jobs"]) == 8
    job = queued["jobs"][0]
    assert job["kind"] == "scrub_node" and job["state"] == "queued" and job["progress_bytes"] == 0
    # A second start while the first pass is queued queues nothing more.
    assert api.post("/api/v1/scrub").json() == {"queued": 0}
    page = api.get("/api/v1/jobs", params={"kind": "scrub_node", "limit": 3}).json()
    assert len(page["jobs"]) == 3 and page["next_cursor"] == str(page["jobs"][-1]["id"])
    rest = api.get("/api/v1/jobs", params={"kind": "scrub_node", "before": page["next_cursor"]}).json()
    ids = [j["id"] for j in page["jobs"] + rest["jobs"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 8
    for params, field in [({"kind": "nope"}, "kind"), ({"state": "x"}, "state"), ({"limit": "0"}, "limit")]:
        reply = api.get("/api/v1/jobs", params=params)
        assert reply.status_code == 400 and reply.json()["field"] == field


def test_health_counts_objects_and_nodes(api: httpx.Client, bucket: str) -> None:
    assert api.put(f"/api/v1/buckets/{bucket}/objects/big", content=b"x" * 300_000).status_code == 201
    health = api.get("/api/v1/health").json()
    assert health["parts"]["unreadable"] == 0 and health["parts"]["degraded"] == {}
    assert health["objects"]["unreadable"] == 0
    assert health["objects"]["healthy"] == health["objects"]["total"] >= 1
    assert health["nodes"] == {"up": 8, "down": 0, "lost": 0, "draining": 0, "retired": 0}
    assert set(health["jobs"]) == {"queued", "running", "failed"}


def test_node_state_and_removal_rules(cluster: Cluster, api: httpx.Client, bucket: str) -> None:
    assert api.put(f"/api/v1/buckets/{bucket}/objects/held", content=b"y" * 200_000).status_code == 201
    cluster.wait_for(lambda: any(n["shares"] for n in api.get("/api/v1/nodes").json()["nodes"]))
    nodes = api.get("/api/v1/nodes").json()["nodes"]
    holder = next(n for n in nodes if n["shares"])
    refused = api.delete(f"/api/v1/nodes/{holder['id']}")
    assert refused.status_code == 409 and refused.json()["code"] == "node_not_empty"
    bad_state = api.patch(f"/api/v1/nodes/{holder['id']}", json={"state": "retired"})
    assert bad_state.status_code == 400 and bad_state.json()["code"] == "invalid_argument"
    for raw in ("abc", "0", "99999999999999999999", "-1"):
        reply = api.delete(f"/api/v1/nodes/{raw}")
        assert reply.status_code == 404 and reply.json()["code"] == "no_such_node", raw
    assert api.delete("/api/v1/nodes/4242").json()["code"] == "no_such_node"
    assert {n["state"] for n in nodes} == {"normal"} and {n["status"] for n in nodes} == {"up"}
