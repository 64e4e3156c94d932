"""Zones end to end: definitions, where a client is, zone-safe placement, nearest reads, metrics.

Six nodes in three zones (two each) under ec:2+4: every zone holds two
shares of every part, which is both zone-safe (at most m = 4 in one zone)
and a readable set (k = 2) in each zone, so a reader in any zone can be
served from its own zone alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cargohold.testing.cluster import Cluster
from cargohold.testing.console import ConsoleScript
from cargohold.testing.data import sample

TOKEN = "scrape-token-for-tests"
ZONES = {
    "a": {"latitude": 40.71, "longitude": -74.01, "networks": ["10.1.0.0/16"]},
    "b": {"latitude": 32.78, "longitude": -96.80, "networks": ["10.2.0.0/16"]},
    "c": {"latitude": -33.92, "longitude": 18.42, "networks": ["10.3.0.0/16", "127.0.0.3/32"]},
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {
        "CARGOHOLD_TRUSTED_PROXIES": '["127.0.0.1/32"]',
        "CARGOHOLD_METRICS_TOKEN": TOKEN,
        "CARGOHOLD_REDIRECT_TO_NEAREST": "true",
        "CARGOHOLD_GATEWAY_HEARTBEAT": "1",
        "CARGOHOLD_DEBUG": "true",
    }
    with Cluster(
        tmp_path_factory.mktemp("zones"),
        node_count=6,
        layout="ec:2+4",
        zones=("a", "b", "c"),
        gateway_zone="c",
        env=env,
    ) as running:
        with running.client() as api:
            for name, body in ZONES.items():
                assert api.put(f"/api/v1/zones/{name}", json=body).status_code == 200
        yield running


def _metrics(url: str, token: str | None = TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = httpx.get(url + "/metrics", headers=headers)
    assert reply.status_code == 200, reply.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


def _zone_bytes(cluster: Cluster, client_zone: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for (name, labels), value in _metrics(cluster.url).items():
        label = dict(labels)
        if name == "cargohold_zone_read_bytes_total" and label["client_zone"] == client_zone:
            found[label["share_zone"]] = value
    return found


def test_zones_list_with_their_nodes(api: httpx.Client) -> None:
    listing = api.get("/api/v1/zones").json()
    assert listing["home"] == "c"
    assert [(z["name"], z["nodes"], z["defined"]) for z in listing["zones"]] == [
        ("a", 2, True),
        ("b", 2, True),
        ("c", 2, True),
    ]
    assert listing["zones"][2]["networks"] == ["10.3.0.0/16", "127.0.0.3/32"]


def test_bad_zone_definitions_are_refused(api: httpx.Client) -> None:
    for body, field in (
        ({"networks": ["10.0.0.0"]}, "networks"),
        ({"networks": ["10.0.0.0/8", "10.0.0.0/255.0.0.0"]}, "networks"),
        ({"networks": ["010.0.0.0/8"]}, "networks"),
        ({"latitude": 10.0}, "latitude"),
        ({"latitude": 100.0, "longitude": 0.0}, "latitude"),
        ({"networks": "10.0.0.0/8"}, "networks"),
    ):
        reply = api.put("/api/v1/zones/spare", json=body)
        assert reply.status_code == 400, body
        assert reply.json()["code"] == "invalid_argument"
        assert reply.json()["field"] == field
    assert api.put("/api/v1/zones/-bad", json={}).json()["code"] == "invalid_argument"
    # A network is stored with its host bits cleared, and shown so.
    stored = api.put("/api/v1/zones/spare", json={"networks": ["10.0.0.1/8", "2001:db8::1/32"]})
    assert stored.json()["networks"] == ["10.0.0.0/8", "2001:db8::/32"]
    assert api.delete("/api/v1/zones/spare").status_code == 204


def test_zone_delete_rules(api: httpx.Client) -> None:
    in_use = api.delete("/api/v1/zones/a")
    assert (in_use.status_code, in_use.json()["code"]) == (409, "zone_in_use")
    missing = api.delete("/api/v1/zones/nowhere")
    assert (missing.status_code, missing.json()["code"]) == (404, "no_such_zone")
    assert api.put("/api/v1/zones/spare", json={"networks": ["10.9.0.0/16"]}).status_code == 200
    assert api.delete("/api/v1/zones/spare").status_code == 204
    assert "spare" not in [z["name"] for z in api.get("/api/v1/zones").json()["zones"]]


def test_whereami_believes_forwarded_for_only_from_trusted_proxies(cluster: Cluster) -> None:
    headers = {"Authorization": f"Bearer {cluster.client().headers['Authorization'].split()[1]}"}
    trusted = httpx.get(cluster.url + "/api/v1/whereami", headers={**headers, "X-Forwarded-For": "10.1.4.4"})
    assert trusted.json() | {} == {
        "address": "10.1.4.4",
        "zone": "a",
        "decided_by": "network",
        "forwarded": True,
        "network": "10.1.0.0/16",
        "latitude": None,
        "longitude": None,
        "distance_km": None,
        "gateway_zone": "c",
    }
    for local, zone, how in (("127.0.0.2", "c", "gateway"), ("127.0.0.3", "c", "network")):
        transport = httpx.HTTPTransport(local_address=local)
        with httpx.Client(transport=transport, headers=headers) as client:
            untrusted = client.get(cluster.url + "/api/v1/whereami", headers={"X-Forwarded-For": "10.1.4.4"})
        answer = untrusted.json()
        assert (answer["address"], answer["zone"], answer["decided_by"], answer["forwarded"]) == (
            local,
            zone,
            how,
            False,
        )


def test_each_zone_reads_its_own_shares_and_survives_losing_another(
    cluster: Cluster, api: httpx.Client
) -> None:
    assert api.put("/api/v1/buckets/near").status_code == 201
    data = sample(1024 * 1024 + 17)
    assert api.put("/api/v1/buckets/near/objects/obj", content=data).status_code == 201
    assert api.get("/api/v1/health").json()["parts"]["not_zone_safe"] == 0
    for zone, client_ip in (("a", "10.1.0.9"), ("b", "10.2.0.9")):
        before = _zone_bytes(cluster, zone)
        reply = api.get("/api/v1/buckets/near/objects/obj", headers={"X-Forwarded-For": client_ip})
        assert hashlib.sha256(reply.content).digest() == hashlib.sha256(data).digest()
        after = _zone_bytes(cluster, zone)
        pulled = {z: after.get(z, 0) - before.get(z, 0) for z in after}
        assert pulled[zone] >= len(data) / 2  # k = 2: half the object from each of two shares
        assert sum(pulled.values()) == pulled[zone], pulled
        plan = reply.headers["X-Cargohold-Zone-Bytes"]
        assert plan.startswith(f"{zone}=") and "," not in plan and int(plan[2:]) >= pulled[zone]
    # Zone b goes dark: readers there now read from the next nearest zone (a, in Dallas' view).
    lost = [n for n in cluster.nodes if n.zone == "b"]
    for node in lost:
        cluster.stop_node(node)
    try:
        cluster.wait_for(
            lambda: sum(not n["healthy"] for n in api.get("/api/v1/nodes").json()["nodes"]) == 2, timeout=15
        )
        before = _zone_bytes(cluster, "b")
        reply = api.get("/api/v1/buckets/near/objects/obj", headers={"X-Forwarded-For": "10.2.0.9"})
        assert reply.status_code == 200 and reply.content == data
        assert reply.headers["X-Cargohold-Zone-Bytes"].startswith("a=")
        after = _zone_bytes(cluster, "b")
        assert after["a"] - before.get("a", 0) >= len(data) / 2
        assert after.get("b", 0) == before.get("b", 0)
    finally:
        for node in lost:
            cluster.start_node(node)


def test_metrics_need_the_token_and_move_with_traffic(cluster: Cluster, api: httpx.Client) -> None:
    refused = httpx.get(cluster.url + "/metrics")
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    wrong = httpx.get(cluster.url + "/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    key = (
        "cargohold_requests_total",
        (("method", "GET"), ("role", "gateway"), ("route", "/api/v1/zones"), ("status", "200")),
    )
    before = _metrics(cluster.url).get(key, 0)
    for _ in range(3):
        assert api.get("/api/v1/zones").status_code == 200
    assert _metrics(cluster.url)[key] == before + 3
    # Node health is a probe every few seconds: on a loaded machine one may be late, and the
    # gauge follows the probes. It must come to all six.
    cluster.wait_for(
        lambda: sum(v for (name, _), v in _metrics(cluster.url).items() if name == "cargohold_node_up") == 6,
        timeout=30,
    )
    node = cluster.nodes[0]
    assert httpx.get(node.url + "/metrics").status_code == 403
    node_metrics = _metrics(node.url)
    assert any(
        name == "cargohold_requests_total" and ("role", "node") in labels for name, labels in node_metrics
    )


def test_cli_zones_and_whereami(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    cli = ConsoleScript(cluster, tmp_path_factory.mktemp("home"))
    cli.ok("zones", "set", "spare-cli", "--lat", "45.5", "--lon", "-122.7", "--network", "10.8.0.0/16")
    rows = {line.split("\t")[0]: line.split("\t") for line in cli.ok("zones", "--plain").splitlines()}
    assert rows["spare-cli"] == ["spare-cli", "45.5", "-122.7", "10.8.0.0/16", "0", "True"]
    assert rows["a"][3:5] == ["10.1.0.0/16", "2"]
    refused = cli("zones", "rm", "a")
    assert refused.returncode == 1 and "zone_in_use" in refused.stderr
    assert cli.ok("zones", "rm", "spare-cli") == "removed zone spare-cli\n"
    figures = dict(line.split("\t") for line in cli.ok("whereami", "--plain").splitlines())
    assert (figures["address"], figures["zone"], figures["decided_by"]) == ("127.0.0.1", "c", "gateway")


def test_downloads_are_sent_to_a_gateway_in_the_clients_zone(cluster: Cluster, api: httpx.Client) -> None:
    assert api.put("/api/v1/buckets/redirect").status_code == 201
    data = sample(200_000, seed=5)
    path = "/api/v1/buckets/redirect/objects/f"
    assert api.put(path, content=data).status_code == 201
    link = api.post("/api/v1/shares", json={"bucket": "redirect", "key": "f"}).json()
    share_path = urlsplit(link["url"]).path
    from_a = {"X-Forwarded-For": "10.1.0.7"}
    # No gateway in zone a yet: served where it arrived.
    assert api.get(path, headers=from_a).content == data
    other, other_url = cluster.spawn_gateway("a")
    try:
        cluster.wait_for(lambda: api.get(path, headers=from_a).status_code == 307, timeout=15)
        moved = api.get(path + "?x=1", headers=from_a)
        assert moved.headers["Location"] == other_url + path + "?x=1"
        # The gateway in zone a serves its own zone's clients itself.
        assert api.get(moved.headers["Location"], headers=from_a).content == data
        shared = httpx.get(cluster.url + share_path, headers=from_a)
        assert (shared.status_code, shared.headers["Location"]) == (307, other_url + share_path)
        # Clients of the gateway's own zone, and non-downloads, are answered here.
        assert api.get(path, headers={"X-Forwarded-For": "10.3.0.7"}).status_code == 200
        assert api.get("/api/v1/zones", headers=from_a).status_code == 200
    finally:
        other.terminate()
        other.wait(15)
    cluster.wait_for(lambda: api.get(path, headers=from_a).status_code == 200, timeout=15)


def test_a_worker_serves_job_and_repair_metrics(cluster: Cluster) -> None:
    url = cluster.start_worker(metrics=True)
    assert url is not None
    try:
        assert httpx.get(url + "/metrics").status_code == 403
        cluster.wait_for(lambda: ("cargohold_parts_degraded", ()) in _metrics(url), timeout=30)
        found = _metrics(url)
        assert found[("cargohold_parts_degraded", ())] == 0
        assert found[("cargohold_jobs", (("kind", "repair_part"), ("state", "failed")))] == 0
    finally:
        cluster.stop_worker()


def test_a_gateway_of_two_workers_is_one_redirect_target_and_one_metrics_source(
    cluster: Cluster, api: httpx.Client
) -> None:
    """``gateway --workers 2``: both workers register the URL they share; a scrape of either counts both."""
    assert api.put("/api/v1/buckets/two-workers").status_code == 201
    path = "/api/v1/buckets/two-workers/objects/f"
    assert api.put(path, content=b"small").status_code == 201
    other, other_url = cluster.spawn_gateway("b", workers=2)
    try:
        assert [row for row in cluster.query("SELECT url, zone FROM gateways") if row[0] == other_url] == [
            (other_url, "b")
        ]
        moved = api.get(path, headers={"X-Forwarded-For": "10.2.0.7"})
        assert (moved.status_code, moved.headers["Location"]) == (307, other_url + path)

        answered: list[str] = []
        while set(answered) != {"1", "2"}:  # fresh connections: the kernel spreads them over both
            assert len(answered) < 200, answered
            reply = httpx.get(other_url + "/api/v1/zones", headers=api.headers)
            assert reply.status_code == 200
            answered.append(reply.headers["X-Gateway-Worker"])
        key = (
            "cargohold_requests_total",
            (("method", "GET"), ("role", "gateway"), ("route", "/api/v1/zones"), ("status", "200")),
        )
        scraped: dict[str, float] = {}
        for _ in range(200):
            reply = httpx.get(other_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert reply.status_code == 200
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(reply.text)
                for s in family.samples
            }
            scraped[reply.headers["X-Gateway-Worker"]] = samples[key]
            if len(scraped) == 2:
                break
        # Whichever worker takes the scrape, it counts the requests both answered.
        assert scraped == {"1": len(answered), "2": len(answered)}
    finally:
        other.terminate()
        other.wait(15)
    # Once its workers stopped, the parent removed the row they shared.
    assert [row for row in cluster.query("SELECT url FROM gateways") if row[0] == other_url] == []
