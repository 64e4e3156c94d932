"""Logs of real role processes: JSON lines for collectors, one line for a client that leaves."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from cargohold.testing.cluster import ADMIN_KEY, Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {"CARGOHOLD_LOG_FORMAT": "json"}
    with Cluster(
        tmp_path_factory.mktemp("logs"), node_count=1, layout="mirror:1", env=env, capture_logs=True
    ) as running:
        yield running


def records(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    """Every line of a process's log, each of which must be one JSON object."""
    return [json.loads(line) for line in cluster.log_lines(name)]


def test_every_role_logs_json_lines(cluster: Cluster) -> None:
    cluster.start_worker()
    try:
        cluster.wait_for(lambda: any("worker running" in r["message"] for r in records(cluster, "worker")))
    finally:
        cluster.stop_worker()
    for name, first in (("gateway", "gateway listening on"), ("node-1", "node listening on")):
        lines = records(cluster, name)
        assert any(r["message"].startswith(first) for r in lines), lines
        assert all(set(r) >= {"time", "level", "logger", "message", "request_id"} for r in lines)


def test_a_client_that_goes_away_is_one_line_with_its_request_id(cluster: Cluster) -> None:
    with cluster.client() as api:
        assert api.put("/api/v1/buckets/logs").status_code == 201
        echoed = api.get("/api/v1/buckets", headers={"X-Request-Id": "echo-1"})
        assert echoed.headers["X-Request-Id"] == "echo-1"
    parts = urlsplit(cluster.url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(
            b"PUT /api/v1/buckets/logs/objects/gone HTTP/1.1\r\nHost: gateway\r\n"
            + f"Authorization: Bearer {ADMIN_KEY}\r\n".encode()
            + b"X-Request-Id: gone-1\r\nContent-Length: 10000000\r\n\r\n"
            + b"x" * 2_000_000
        )
    cluster.wait_for(lambda: any(r["request_id"] == "gone-1" for r in records(cluster, "gateway")))
    about_it = [r for r in records(cluster, "gateway") if r["request_id"] == "gone-1"]
    assert len(about_it) == 1, about_it
    assert "client went away" in about_it[0]["message"]
    assert about_it[0]["level"] == "INFO"
    assert not [r for r in records(cluster, "gateway") if "exception" in r]
