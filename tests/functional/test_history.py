"""The action history against a real cluster: every call leaves a row, and each user sees their share.

Rows are stored in batches in the background, so each test polls the API
until the rows it caused appear.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster
from cargohold.testing.console import ConsoleScript
from tests.conftest import BOTH_STORES, store_url

AGENT = "history-test/1.0"


@pytest.fixture(scope="module", params=BOTH_STORES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster per metadata store: rows are written and searched by each engine."""
    with store_url(request, request.param) as url, Cluster(tmp_path_factory.mktemp("hist"), db_url=url) as c:
        yield c


@pytest.fixture
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.client() as client:
        client.headers["User-Agent"] = AGENT
        yield client


def _as(cluster: Cluster, token: str | None, agent: str = AGENT) -> httpx.Client:
    client = cluster.client(token)
    client.headers["User-Agent"] = agent
    return client


def events(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every event the caller may see that matches ``params``, newest first, across all pages."""
    found: list[dict[str, Any]] = []
    query = {"limit": "1000", **params}
    while True:
        reply = client.get("/api/v1/history", params=query)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        found += body["events"]
        if not body["next_cursor"]:
            return found
        query["cursor"] = body["next_cursor"]


def _wait_for_rows(cluster: Cluster, client: httpx.Client, count: int, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def enough() -> bool:
        seen[:] = events(client, **params)
        return len(seen) >= count

    cluster.wait_for(enough)
    return seen


def test_every_call_is_recorded_with_who_what_and_where(cluster: Cluster, api: httpx.Client) -> None:
    bucket, key = "hist-calls", "dir/ünï code.txt"
    path = f"/api/v1/buckets/{bucket}/objects/{key}"
    assert api.put(f"/api/v1/buckets/{bucket}").status_code == 201
    assert api.put(path, content=b"hello").status_code == 201
    assert api.get(path).content == b"hello"
    assert api.head(path).status_code == 200
    assert api.get(f"/api/v1/buckets/{bucket}/objects", params={"prefix": "dir/"}).status_code == 200
    assert api.get(f"/api/v1/buckets/{bucket}/objects/nope").status_code == 404
    assert api.delete(path).status_code == 204
    with _as(cluster, "CHNOSUCHKEY00000.wrong-secret", agent="history-intruder/2") as intruder:
        assert intruder.get(f"/api/v1/buckets/{bucket}/objects").status_code == 401
    with _as(cluster, None, agent="history-probe") as anonymous:  # no action, no row
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/openapi.json").status_code == 200
    # Rows are stored in the order calls ended: once the last call's row is in, all are.
    assert api.put(f"/api/v1/buckets/{bucket}/objects/last", content=b"").status_code == 201

    rows = _wait_for_rows(cluster, api, 9, bucket=bucket)
    summary = [(r["action"], r["key"], r["status"], r["result"]) for r in reversed(rows)]
    assert summary == [
        ("bucket.create", None, 201, "ok"),
        ("object.create", key, 201, "ok"),
        ("object.read", key, 200, "ok"),
        ("object.stat", key, 200, "ok"),
        ("object.list", None, 200, "ok"),
        ("object.read", "nope", 404, "no_such_key"),
        ("object.delete", key, 204, "ok"),
        ("object.list", None, 401, "invalid_credentials"),
        ("object.create", "last", 201, "ok"),
    ]
    for row in rows:
        assert row["bucket"] == bucket and row["client"] == "127.0.0.1"
        assert row["at"].endswith("+00:00") and isinstance(row["id"], int)
        if row["status"] == 401:
            assert row["user"] is None and row["user_agent"] == "history-intruder/2"
        else:
            assert row["user"] == "admin" and row["user_agent"] == AGENT
    sizes = {r["action"]: r["size"] for r in rows if r["key"] == key}
    assert sizes == {"object.create": 5, "object.read": 5, "object.stat": 5, "object.delete": 5}
    assert not [r for r in events(api) if r["user_agent"] == "history-probe"]


def test_users_see_their_own_calls_and_calls_on_their_buckets(cluster: Cluster, api: httpx.Client) -> None:
    alice_key, bob_key = make_user(api, "hist-alice"), make_user(api, "hist-bob")
    with _as(cluster, alice_key) as alice, _as(cluster, bob_key) as bob:
        assert alice.put("/api/v1/buckets/hist-alices").status_code == 201
        assert alice.put("/api/v1/buckets/hist-alices/objects/mine", content=b"a").status_code == 201
        assert api.put("/api/v1/buckets/hist-alices/objects/admins", content=b"bb").status_code == 201
        assert api.put("/api/v1/buckets/hist-admins").status_code == 201
        assert api.put("/api/v1/buckets/hist-admins/objects/secret", content=b"c").status_code == 201
        assert bob.get("/api/v1/buckets/hist-alices/objects/mine").status_code == 404
        assert alice.get("/api/v1/buckets/hist-alices/objects/mine").content == b"a"  # it is there
        login = httpx.post(
            cluster.url + "/api/v1/auth/login", json={"name": "hist-alice", "password": "not-hers"}
        )
        assert login.status_code == 401
        assert api.put("/api/v1/buckets/hist-admins/objects/last", content=b"").status_code == 201
        _wait_for_rows(cluster, api, 1, bucket="hist-admins", prefix="last")

        seen = events(alice)
        assert not [r for r in seen if r["bucket"] == "hist-admins"]
        assert {r["user"] for r in seen} == {"hist-alice", "admin", "hist-bob"}
        foreign = sorted(
            (r["user"], r["action"], r["key"], r["status"]) for r in seen if r["user"] != "hist-alice"
        )
        assert foreign == [
            ("admin", "object.create", "admins", 201),
            ("hist-bob", "object.read", "mine", 404),
        ]
        failed_login = [r for r in seen if r["action"] == "auth.login"]
        assert [(r["status"], r["client"]) for r in failed_login] == [(401, "127.0.0.1")]
        assert {r["action"] for r in events(alice, user="admin")} == {"object.create"}

        bobs = events(bob)
        assert {r["user"] for r in bobs} == {"hist-bob"}
        assert {(r["bucket"], r["status"]) for r in bobs if r["action"] == "object.read"} == {
            ("hist-alices", 404)
        }

        everyone = events(api, since="2000-01-01T00:00:00Z")
        assert {"hist-alices", "hist-admins"} <= {r["bucket"] for r in everyone}
        assert {r["user"] for r in events(api, user="hist-alice")} == {"hist-alice"}


def test_pages_filters_and_bad_parameters(cluster: Cluster, api: httpx.Client) -> None:
    bucket = "hist-pages"
    assert api.put(f"/api/v1/buckets/{bucket}").status_code == 201
    for i in range(5):
        assert api.put(f"/api/v1/buckets/{bucket}/objects/p/{i}", content=b"x").status_code == 201
    rows = _wait_for_rows(cluster, api, 5, bucket=bucket, action="object.create")

    paged: list[dict[str, Any]] = []
    params = {"bucket": bucket, "action": "object", "limit": "2"}
    while True:
        page = api.get("/api/v1/history", params=params).json()
        assert len(page["events"]) <= 2
        paged += page["events"]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert [r["id"] for r in paged] == [r["id"] for r in rows]
    assert [r["key"] for r in events(api, bucket=bucket, prefix="p/3")] == ["p/3"]

    bad_filters = (
        {"since": "garbage"},
        {"limit": "0"},
        {"limit": "5000"},
        {"cursor": "x"},
        {"action": "a b"},
        {"user": ""},
    )
    for bad in bad_filters:
        reply = api.get("/api/v1/history", params=bad)
        problem = reply.json()
        assert (reply.status_code, problem["code"], problem["field"]) == (400, "invalid_argument", *bad), bad
    with _as(cluster, None) as anonymous:
        assert anonymous.get("/api/v1/history").status_code == 401


def test_cli_prints_the_history(
    cluster: Cluster, api: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> None:
    bucket = "hist-cli"
    assert api.put(f"/api/v1/buckets/{bucket}").status_code == 201
    assert api.put(f"/api/v1/buckets/{bucket}/objects/shown.txt", content=b"12345").status_code == 201
    _wait_for_rows(cluster, api, 2, bucket=bucket)

    cli = ConsoleScript(cluster, tmp_path_factory.mktemp("hist-home"))
    table = cli.ok("history", "--bucket", bucket)
    lines = table.splitlines()
    assert "action" in lines[0] and "client" in lines[0]
    assert "object.create" in lines[1] and f"{bucket}/shown.txt" in lines[1] and "201 ok" in lines[1]
    assert "bucket.create" in lines[2] and "127.0.0.1" in lines[2] and "admin" in lines[2]
    rows = json.loads(cli.ok("history", "--bucket", bucket, "--action", "object", "--json"))
    assert [(r["action"], r["size"], r["user_agent"]) for r in rows] == [("object.create", 5, AGENT)]
    assert cli.ok("history", "--bucket", "hist-nothing-here") == "no matching events\n"
