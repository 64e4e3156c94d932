"""Upload sessions under faults: expiry, dropped connections, a restarted gateway, races."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from cargohold.testing.cluster import ADMIN_KEY, Cluster
from cargohold.testing.data import sample
from tests.conftest import BOTH_STORES, store_url

PART = 1024 * 1024 + 333


@pytest.fixture(params=BOTH_STORES)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    # Long enough to outlive a gateway restart under load, short enough to watch expiry.
    env = {"CARGOHOLD_UPLOAD_TTL": "15", "CARGOHOLD_SWEEP_INTERVAL": "0.3"}
    with (
        store_url(request, request.param) as url,
        Cluster(tmp_path / "c", node_count=7, env=env, db_url=url) as c,
    ):
        yield c


def _create(api: httpx.Client, key: str, **extra: object) -> str:
    api.put("/api/v1/buckets/faults")
    reply = api.post("/api/v1/uploads", json={"bucket": "faults", "key": key, **extra})
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def _drop_mid_body(url: str, path: str, body: bytes, sent: int) -> None:
    """Send headers announcing the whole body, then only ``sent`` bytes, then hang up."""
    target = urlparse(url)
    with socket.create_connection((target.hostname, target.port)) as conn:
        head = (
            f"PUT {path} HTTP/1.1\r\nHost: {target.netloc}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
            f"Content-Length: {len(body)}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        conn.sendall(head.encode() + body[:sent])


def test_expired_session_is_refused_and_swept(cluster: Cluster) -> None:
    with cluster.client() as api:
        upload_id = _create(api, "slow.bin")
        url = f"/api/v1/uploads/{upload_id}"
        assert api.put(f"{url}/parts/1", content=sample(PART, seed=1)).status_code == 200
        shares_before = sum(len(n.share_files()) for n in cluster.nodes)
        assert shares_before == 7
        cluster.wait_for(lambda: api.get(url).json()["status"] == "FAILED", timeout=30)
        state = api.get(url).json()
        assert state["error"] == "expired" and state["parts"] == []
        late = api.put(f"{url}/parts/2", content=b"x")
        assert late.status_code == 410 and late.json()["code"] == "upload_expired"
        cluster.wait_for(lambda: sum(len(n.share_files()) for n in cluster.nodes) == 0, timeout=15)


def test_part_size_limit(cluster: Cluster) -> None:
    with cluster.client() as api:
        upload_id = _create(api, "small-parts.bin", part_size=1000)
        reply = api.put(f"/api/v1/uploads/{upload_id}/parts/1", content=b"x" * 2000)
        assert reply.status_code == 413 and reply.json()["code"] == "part_too_large"

        def chunked():  # type: ignore[no-untyped-def]
            yield b"y" * 1500

        streamed = api.put(f"/api/v1/uploads/{upload_id}/parts/1", content=chunked())
        assert streamed.status_code == 413 and streamed.json()["code"] == "payload_too_large"
        assert api.get(f"/api/v1/uploads/{upload_id}").json()["parts"] == []


def test_dropped_part_is_not_kept_and_resends_work(cluster: Cluster) -> None:
    data = sample(2 * PART, seed=2)
    with cluster.client() as api:
        upload_id = _create(api, "dropped.bin")
        url = f"/api/v1/uploads/{upload_id}"
        _drop_mid_body(cluster.url, f"{url}/parts/1", data[:PART], PART // 2)
        cluster.wait_for(lambda: api.get(url).json()["status"] == "LOADING")
        assert api.get(url).json()["parts"] == []
        assert api.put(f"{url}/parts/1", content=data[:PART]).status_code == 200
        assert api.put(f"{url}/parts/2", content=data[PART:]).status_code == 200
        assert api.post(f"{url}/complete", json={}).status_code == 200
        got = api.get("/api/v1/buckets/faults/objects/dropped.bin").content
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


def test_gateway_restart_mid_session(cluster: Cluster) -> None:
    data = sample(3 * PART, seed=3)
    with cluster.client() as api:
        upload_id = _create(api, "restart.bin", size=len(data))
        url = f"/api/v1/uploads/{upload_id}"
        assert api.put(f"{url}/parts/1", content=data[:PART]).status_code == 200
    cluster.stop_gateway()
    cluster.start_gateway()
    with cluster.client() as api:
        state = api.get(url).json()
        assert state["status"] == "LOADING" and [p["part_number"] for p in state["parts"]] == [1]
        assert api.put(f"{url}/parts/2", content=data[PART : 2 * PART]).status_code == 200
        assert api.put(f"{url}/parts/3", content=data[2 * PART :]).status_code == 200
        assert api.post(f"{url}/complete", json={}).status_code == 200
        assert api.get("/api/v1/buckets/faults/objects/restart.bin").content == data


def test_concurrent_writes_to_one_part(cluster: Cluster) -> None:
    versions = [sample(PART, seed=10 + i) for i in range(4)]
    with cluster.client() as api:
        upload_id = _create(api, "race.bin")
    url = f"/api/v1/uploads/{upload_id}/parts/1"
    answers: list[int] = []

    def send(data: bytes) -> None:
        with cluster.client() as own:
            answers.append(own.put(url, content=data).status_code)

    threads = [threading.Thread(target=send, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 4
    with cluster.client() as api:
        parts = api.get(f"/api/v1/uploads/{upload_id}").json()["parts"]
        assert len(parts) == 1
        winner = next(v for v in versions if hashlib.md5(v).hexdigest() == parts[0]["md5"])
        assert api.post(f"/api/v1/uploads/{upload_id}/complete", json={}).status_code == 200
        assert api.get("/api/v1/buckets/faults/objects/race.bin").content == winner
        # The three losing versions are garbage: only one part's shares stay on the nodes.
        cluster.wait_for(lambda: sum(len(n.share_files()) for n in cluster.nodes) == 7, timeout=15)
