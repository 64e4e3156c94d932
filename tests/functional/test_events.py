"""The event stream (``GET /api/v1/events``) against a real cluster on both metadata stores.

Users see their own doings and their buckets' (owned or granted), resume with
``Last-Event-ID`` without a gap or a repeat, and a change that fails tells
nothing. ``cargohold events`` prints the same stream.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cargohold.cli.events import read_stream
from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster
from cargohold.testing.console import ConsoleScript
from tests.conftest import BOTH_STORES, store_url

EVENTS = "/api/v1/events"


@pytest.fixture(scope="module", params=BOTH_STORES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("events")
    with (
        store_url(request, request.param) as url,
        Cluster(root, node_count=3, layout="ec:2+1", db_url=url) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def people(cluster: Cluster) -> dict[str, str]:
    """alice owns ev-alice; bob owns ev-bob and lets alice read it; carol shares ev-carol with nobody."""
    with cluster.client() as admin:
        keys = {name: make_user(admin, f"ev-{name}") for name in ("alice", "bob", "carol")}
    for name, key in keys.items():
        with cluster.client(key) as client:
            assert client.put(f"/api/v1/buckets/ev-{name}").status_code == 201
    with cluster.client(keys["bob"]) as bob:
        granted = bob.post("/api/v1/buckets/ev-bob/grants", json={"user": "ev-alice", "level": "read"})
        assert granted.status_code == 201, granted.text
    return keys


def read_all(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every event the stream holds now (``follow=false``), as its data documents."""
    answer = client.get(EVENTS, params={"follow": "false", **params})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    return [data for _, data in read_stream(iter(answer.text.splitlines())) if data is not None]


class LiveStream:
    """A following stream read on a thread; ``close`` drops the connection."""

    def __init__(
        self, cluster: Cluster, key: str, headers: dict[str, str] | None = None, **params: str
    ) -> None:
        self.ids: list[int | None] = []  # the ids the stream named, in order (events and id-only blocks)
        self.events: list[dict[str, Any]] = []
        self._client = cluster.client(key, timeout=30)
        self._request = self._client.build_request("GET", EVENTS, params=params, headers=headers or {})
        self._response: httpx.Response | None = None
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._opened.wait(30), "the stream did not open"

    def _read(self) -> None:
        try:
            self._response = self._client.send(self._request, stream=True)
            self._opened.set()
            for event_id, data in read_stream(self._response.iter_lines()):
                self.ids.append(event_id)
                if data is not None:
                    self.events.append(data)
        except (httpx.HTTPError, RuntimeError, AttributeError):
            pass  # closed by the test

    def wait_for(self, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(list(self.events)):
                return
            time.sleep(0.02)
        raise AssertionError(f"stream never matched; it holds {[(e['type'], e['key']) for e in self.events]}")

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        self._client.close()
        self._thread.join(10)


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str | None, str | None]]:
    return [(e["type"], e["bucket"], e["key"]) for e in events]


def test_each_user_sees_their_own_and_their_buckets_events(cluster: Cluster, people: dict[str, str]) -> None:
    alice_stream = LiveStream(cluster, people["alice"])
    try:
        for name in ("alice", "bob", "carol"):
            with cluster.client(people[name]) as client:
                assert (
                    client.put(f"/api/v1/buckets/ev-{name}/objects/{name}.txt", content=b"x").status_code
                    == 201
                )
        with cluster.client(people["carol"]) as carol:
            renamed = carol.post("/api/v1/buckets/ev-carol/rename/carol.txt", json={"to_key": "c2.txt"})
            assert renamed.status_code == 200, renamed.text
        with cluster.client(people["bob"]) as bob:
            assert bob.delete("/api/v1/buckets/ev-bob/objects/bob.txt").status_code == 204
        wanted = [
            ("object.created", "ev-alice", "alice.txt"),
            ("object.created", "ev-bob", "bob.txt"),
            ("object.deleted", "ev-bob", "bob.txt"),
        ]
        alice_stream.wait_for(lambda seen: summary(seen) == wanted)
    finally:
        alice_stream.close()
    with cluster.client(people["alice"]) as alice:
        assert summary(read_all(alice)) == wanted
        only_bob = read_all(alice, bucket="ev-bob", type="object.deleted")
        assert summary(only_bob) == [("object.deleted", "ev-bob", "bob.txt")]
        refused = alice.get(EVENTS, params={"bucket": "ev-carol"})
        assert refused.status_code == 404 and refused.json()["code"] == "no_such_bucket"
        bad = alice.get(EVENTS, params={"type": "objects.*"})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_event_type"
    with cluster.client(people["carol"]) as carol:
        assert ("object.renamed", "ev-carol", "c2.txt") in summary(read_all(carol))
        assert all(e["bucket"] == "ev-carol" for e in read_all(carol))
    with cluster.client() as admin:
        seen_by_admin = summary(read_all(admin, type="object.*"))
        assert set(wanted) | {("object.renamed", "ev-carol", "c2.txt")} <= set(seen_by_admin)


def test_a_stream_resumes_from_last_event_id_with_no_gap_and_no_repeat(
    cluster: Cluster, people: dict[str, str]
) -> None:
    first = LiveStream(cluster, people["alice"], type="object.created", bucket="ev-alice")
    with cluster.client(people["alice"]) as alice:
        for n in range(3):
            assert alice.put(f"/api/v1/buckets/ev-alice/objects/r{n}", content=b"r").status_code == 201
        first.wait_for(lambda seen: [e["key"] for e in seen] == ["r0", "r1", "r2"])
        first.close()
        resume_at = first.events[-1]["id"]
        assert first.ids[0] is not None and first.ids[-1] == resume_at  # the opening block names its start
        for n in range(3, 6):  # written while nobody listens
            assert alice.put(f"/api/v1/buckets/ev-alice/objects/r{n}", content=b"r").status_code == 201
    second = LiveStream(
        cluster,
        people["alice"],
        headers={"Last-Event-ID": str(resume_at)},
        type="object.created",
        bucket="ev-alice",
    )
    try:
        with cluster.client(people["alice"]) as alice:
            assert alice.put("/api/v1/buckets/ev-alice/objects/r6", content=b"r").status_code == 201
        second.wait_for(lambda seen: [e["key"] for e in seen] == ["r3", "r4", "r5", "r6"])
    finally:
        second.close()
    ids = [e["id"] for e in first.events + second.events]
    assert ids == sorted(set(ids))
    with cluster.client(people["alice"]) as alice:
        after = read_all(alice, after=str(resume_at), type="object.created", bucket="ev-alice")
        assert [e["key"] for e in after] == ["r3", "r4", "r5", "r6"]
        assert alice.get(EVENTS, params={"after": "-1"}).json()["code"] == "invalid_argument"


def test_an_upload_moves_through_created_progress_and_completed(
    cluster: Cluster, people: dict[str, str]
) -> None:
    stream = LiveStream(cluster, people["alice"], type="upload.*")
    try:
        with cluster.client(people["alice"]) as alice:
            made = alice.post("/api/v1/uploads", json={"bucket": "ev-alice", "key": "big.bin", "size": 8})
            upload_id = made.json()["id"]
            for number, chunk in ((1, b"1234"), (2, b"5678")):
                assert (
                    alice.put(f"/api/v1/uploads/{upload_id}/parts/{number}", content=chunk).status_code == 200
                )
            done = alice.post(f"/api/v1/uploads/{upload_id}/complete", json={})
            assert done.status_code == 200, done.text
            completed_at = time.monotonic()
        stream.wait_for(lambda seen: bool(seen) and seen[-1]["type"] == "upload.completed")
        told_at = time.monotonic()
    finally:
        stream.close()
    kinds = [e["type"] for e in stream.events]
    assert kinds[0] == "upload.created" and kinds[-1] == "upload.completed"
    progress = [e["detail"] for e in stream.events if e["type"] == "upload.progress"]
    assert progress, kinds
    assert progress[0]["bytes_received"] == 4 and progress[0]["uploaded_percentage"] == 50.0
    assert all(e["detail"]["upload_id"] == upload_id for e in stream.events)
    assert stream.events[-1]["size"] == 8
    assert told_at - completed_at < 5.0


def test_a_change_that_fails_tells_nothing(cluster: Cluster, people: dict[str, str]) -> None:
    with cluster.client(people["alice"]) as alice:
        start = max([e["id"] for e in read_all(alice)] or [0])
        assert alice.put("/api/v1/buckets/ev-alice/objects/keep", content=b"k").status_code == 201
        assert alice.put("/api/v1/buckets/ev-alice/objects/other", content=b"o").status_code == 201
        missing = alice.delete("/api/v1/buckets/ev-alice/objects/not-there")
        assert missing.status_code == 404
        clash = alice.post("/api/v1/buckets/ev-alice/rename/keep", json={"to_key": "other"})
        assert clash.status_code == 409, clash.text
        corrupt = alice.put(
            "/api/v1/buckets/ev-alice/objects/keep", content=b"new", headers={"x-checksum-sha256": "0" * 64}
        )
        assert corrupt.status_code == 400 and corrupt.json()["code"] == "bad_digest"
        assert summary(read_all(alice, after=str(start))) == [
            ("object.created", "ev-alice", "keep"),
            ("object.created", "ev-alice", "other"),
        ]


def test_cli_prints_the_stream(cluster: Cluster, people: dict[str, str], tmp_path: Path) -> None:
    cli = ConsoleScript(cluster, tmp_path)
    cli.env["CARGOHOLD_KEY"] = people["bob"]
    cli.ok("put", "-", "ev-bob/cli.txt", input=b"cli")
    lines = cli.ok("events", "--type", "object.created", "--bucket", "ev-bob").splitlines()
    assert lines and lines[-1].split("\t")[2:4] == ["object.created", "ev-bob/cli.txt"]
    documents = [json.loads(line) for line in cli.ok("events", "--json", "--bucket", "ev-bob").splitlines()]
    assert documents[-1]["key"] == "cli.txt" and all(d["bucket"] == "ev-bob" for d in documents)
    after = documents[-2]["id"]
    assert [json.loads(x)["id"] for x in cli.ok("events", "--json", "--after", str(after)).splitlines()] == [
        documents[-1]["id"]
    ]
    refused = cli("events", "--bucket", "ev-carol")
    assert refused.returncode == 1 and "no_such_bucket" in refused.stderr


def test_a_share_link_tells_when_made_used_and_exhausted(cluster: Cluster, people: dict[str, str]) -> None:
    with cluster.client(people["alice"]) as alice:
        assert alice.put("/api/v1/buckets/ev-alice/objects/shared.txt", content=b"s").status_code == 201
        start = max(e["id"] for e in read_all(alice))
        link = alice.post(
            "/api/v1/shares", json={"bucket": "ev-alice", "key": "shared.txt", "max_downloads": 1}
        )
        assert link.status_code == 201, link.text
        with httpx.Client(base_url=cluster.url) as anonymous:
            assert anonymous.get(link.json()["url"]).content == b"s"
            assert anonymous.get(link.json()["url"]).status_code == 410
        told = read_all(alice, after=str(start), type="share.*")
    assert [e["type"] for e in told] == ["share.created", "share.used", "share.exhausted"]
    assert {e["detail"]["link_id"] for e in told} == {link.json()["id"]}
    assert [e["detail"]["downloads"] for e in told] == [0, 1, 1]
    assert all((e["bucket"], e["key"]) == ("ev-alice", "shared.txt") for e in told)


def test_a_node_going_down_and_up_is_told_to_admins_only(cluster: Cluster, people: dict[str, str]) -> None:
    """Last in the module: one of the three nodes stops for a moment."""
    with cluster.client() as admin:
        start = max([e["id"] for e in read_all(admin)] or [0])
        node = cluster.nodes[-1]

        def node_events() -> list[tuple[str, int]]:
            return [
                (e["type"], e["detail"]["node_id"]) for e in read_all(admin, after=str(start), type="node.*")
            ]

        cluster.stop_node(node)
        deadline = time.monotonic() + 30
        while ("node.down", node.node_id) not in node_events() and time.monotonic() < deadline:
            time.sleep(0.1)
        cluster.start_node(node)
        while ("node.up", node.node_id) not in node_events() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert node_events() == [("node.down", node.node_id), ("node.up", node.node_id)]
    with cluster.client(people["alice"]) as alice:
        assert read_all(alice, after=str(start), type="node.*") == []
