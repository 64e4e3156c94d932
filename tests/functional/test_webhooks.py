"""Webhooks against a real cluster and a real receiver that verifies every signature.

The receiver (``testing/webhook_receiver.py``) is an aiohttp server on a
loopback port, so these tests turn ``webhook_allow_private`` on; one test
turns it off and sees loopback targets refused, at creation and at delivery.
Retries are made fast with the backoff settings; nothing here sleeps for a
fixed time: every wait polls for the state it needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from cargohold.testing.cluster import Cluster
from cargohold.testing.console import ConsoleScript
from cargohold.testing.webhook_receiver import Receiver
from tests.conftest import BOTH_STORES, store_url

FAST_RETRIES = {"CARGOHOLD_WEBHOOK_BACKOFF_BASE": "0.2", "CARGOHOLD_WEBHOOK_BACKOFF_MAX": "1"}
SETTINGS = "/api/v1/events/settings"


@pytest.fixture(scope="module", params=BOTH_STORES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("webhooks")
    with (
        store_url(request, request.param) as url,
        Cluster(root, node_count=3, layout="ec:2+1", db_url=url, env=FAST_RETRIES, capture_logs=True) as c,
    ):
        c.start_worker()
        yield c


@pytest.fixture
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.client() as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def allow_private(api: httpx.Client, allowed: bool) -> None:
    answer = api.patch(SETTINGS, json={"webhook_allow_private": allowed})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"webhook_allow_private": allowed}


def subscribe(api: httpx.Client, receiver: Receiver, path: str, **fields: object) -> dict[str, object]:
    made = api.post("/api/v1/webhooks", json={"url": receiver.url(path), **fields})
    assert made.status_code == 201, made.text
    body = made.json()
    assert str(body["secret"]).startswith("whsec_")
    receiver.expect(path, str(body["secret"]))
    return dict(body)


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout}s")


def expected_ids(cluster: Cluster, after: int, where: str = "") -> list[int]:
    rows = cluster.query(f"SELECT id FROM events WHERE id > {after} {where} ORDER BY id")
    return [int(r[0]) for r in rows]


def put(api: httpx.Client, bucket: str, key: str, data: bytes = b"payload") -> None:
    answer = api.put(f"/api/v1/buckets/{bucket}/objects/{key}", content=data)
    assert answer.status_code == 201, answer.text


def test_every_event_arrives_once_in_order_through_an_outage_and_restarts(
    cluster: Cluster, receiver: Receiver
) -> None:
    with cluster.client() as api:
        allow_private(api, True)
        for bucket in ("wh-one", "wh-two"):
            assert api.put(f"/api/v1/buckets/{bucket}").status_code == 201
        everything = subscribe(api, receiver, "all")
        objects_of_one = subscribe(api, receiver, "one", types=["object.*"], bucket="wh-one")
        assert objects_of_one["types"] == ["object.*"] and objects_of_one["bucket"] == "wh-one"
        for n in range(4):
            put(api, "wh-one", f"before-{n}")
        put(api, "wh-two", "elsewhere")
        assert api.delete("/api/v1/buckets/wh-one/objects/before-0").status_code == 204

    start_all, start_one = int(str(everything["cursor"])), int(str(objects_of_one["cursor"]))
    one_filter = "AND type LIKE 'object.%' AND bucket = 'wh-one'"
    wait_until(lambda: receiver.event_ids("all") == expected_ids(cluster, start_all), what="first deliveries")
    wait_until(lambda: receiver.event_ids("one") == expected_ids(cluster, start_one, one_filter))

    receiver.down()
    with cluster.client() as api:
        for n in range(3):
            put(api, "wh-one", f"during-{n}")

        def failed_once() -> bool:
            attempts = api.get(f"/api/v1/webhooks/{everything['id']}/deliveries").json()["deliveries"]
            return any(not a["ok"] for a in attempts)

        wait_until(failed_once, what="a failed attempt while the receiver is down")
    cluster.stop_worker()
    cluster.stop_gateway()
    cluster.start_gateway()
    cluster.start_worker()
    with cluster.client() as api:
        put(api, "wh-one", "after-restart")
        put(api, "wh-two", "after-restart")
    receiver.up()

    wait_until(lambda: receiver.event_ids("all") == expected_ids(cluster, start_all), what="all deliveries")
    wait_until(lambda: receiver.event_ids("one") == expected_ids(cluster, start_one, one_filter))
    assert all(d.verified for d in receiver.deliveries)
    # Refused connections never reached the receiver: each event arrived exactly once, in id order.
    for path in ("all", "one"):
        ids = receiver.event_ids(path)
        assert ids == sorted(set(ids))
        assert len({d.message_id for d in receiver.received(path)}) == len(ids)
    with cluster.client() as api:
        shown = api.get(f"/api/v1/webhooks/{everything['id']}").json()
        attempts = api.get(f"/api/v1/webhooks/{everything['id']}/deliveries", params={"limit": 1000}).json()
    assert shown["status"] == "active" and shown["failed_attempts"] == 0 and shown["failing_since"] is None
    assert shown["delivered"] == len(receiver.event_ids("all"))
    failures = [a for a in attempts["deliveries"] if not a["ok"]]
    assert failures and all(a["status_code"] is None and a["error"] for a in failures)
    retried = {a["event_id"] for a in failures}
    assert all(
        any(a["ok"] and a["event_id"] == event_id for a in attempts["deliveries"]) for event_id in retried
    )


def test_an_upload_completion_reaches_a_webhook_at_once(cluster: Cluster, receiver: Receiver) -> None:
    with cluster.client() as api:
        allow_private(api, True)
        assert api.put("/api/v1/buckets/wh-uploads").status_code == 201
        subscribe(api, receiver, "done", types=["upload.completed", "upload.failed"], bucket="wh-uploads")
        made = api.post("/api/v1/uploads", json={"bucket": "wh-uploads", "key": "movie.mp4", "size": 6})
        assert made.status_code == 201, made.text
        upload_id = made.json()["id"]
        assert api.put(f"/api/v1/uploads/{upload_id}/parts/1", content=b"movie!").status_code == 200
        completed = api.post(f"/api/v1/uploads/{upload_id}/complete", json={})
        assert completed.status_code == 200, completed.text
        done_at = time.time()
    wait_until(lambda: len(receiver.received("done")) == 1, timeout=10, what="the completion's delivery")
    delivery = receiver.received("done")[0]
    assert delivery.verified
    assert delivery.body["type"] == "upload.completed"
    data = delivery.body["data"]
    assert (data["bucket"], data["key"], data["size"]) == ("wh-uploads", "movie.mp4", 6)
    assert data["detail"]["upload_id"] == upload_id
    assert data["version_id"] == completed.json()["object"]["version_id"]
    assert delivery.received_at - done_at < 5.0


def test_private_targets_are_refused_unless_an_admin_allows_them(
    cluster: Cluster, api: httpx.Client, receiver: Receiver
) -> None:
    allow_private(api, False)
    try:
        for url in ("http://127.0.0.1:9/hook", "http://localhost:9/", "http://[::1]:9/", "http://10.1.2.3/"):
            refused = api.post("/api/v1/webhooks", json={"url": url})
            assert refused.status_code == 422, (url, refused.text)
            assert refused.json()["code"] == "webhook_target_forbidden"
        bad = api.post("/api/v1/webhooks", json={"url": "ftp://example.com/"})  # the document's pattern
        assert (bad.status_code, bad.json()["code"], bad.json()["field"]) == (400, "invalid_argument", "url")
        too_long = api.post("/api/v1/webhooks", json={"url": f"https://{'a' * 64}.example.com/"})
        assert (too_long.status_code, too_long.json()["code"]) == (400, "invalid_webhook_url")
        assert api.post("/api/v1/webhooks", json={"url": "http://x/", "types": ["nope.*"]}).json()[
            "code"
        ] == ("invalid_event_type")

        # Allowed when made, withdrawn before the delivery: the worker refuses to dial it.
        allow_private(api, True)
        assert api.put("/api/v1/buckets/wh-private").status_code == 201
        hook = subscribe(api, receiver, "private", bucket="wh-private")
        receiver.down()
        put(api, "wh-private", "secret.txt")
        allow_private(api, False)

        def refused_for_its_address(after: int = 0) -> list[int]:
            attempts = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]
            return [
                a["id"] for a in attempts if a["id"] > after and "not a public address" in (a["error"] or "")
            ]

        wait_until(lambda: bool(refused_for_its_address()), what="a delivery refused for its address")
        last = max(refused_for_its_address())
        receiver.up()  # listening again, and still not dialled
        wait_until(lambda: bool(refused_for_its_address(last)), what="another refusal, receiver up")
        assert receiver.received("private") == []
        allow_private(api, True)
        wait_until(lambda: len(receiver.received("private")) == 1, what="the delivery once allowed")
    finally:
        allow_private(api, True)


def test_webhooks_belong_to_their_owner(cluster: Cluster, api: httpx.Client, receiver: Receiver) -> None:
    from cargohold.testing.accounts import make_user

    allow_private(api, True)
    token = make_user(api, f"wh-user-{int(time.time() * 1000) % 100000}")
    with cluster.client(token) as user:
        mine = user.post("/api/v1/webhooks", json={"url": receiver.url("user")})
        assert mine.status_code == 201, mine.text
        hook_id = mine.json()["id"]
        assert [h["id"] for h in user.get("/api/v1/webhooks").json()["webhooks"]] == [hook_id]
        assert "secret" not in user.get(f"/api/v1/webhooks/{hook_id}").json()
    admin_hooks = api.post("/api/v1/webhooks", json={"url": receiver.url("admin")}).json()
    with cluster.client(token) as user:
        hidden = user.get(f"/api/v1/webhooks/{admin_hooks['id']}")
        assert hidden.status_code == 404 and hidden.json()["code"] == "no_such_webhook"
        assert user.delete(f"/api/v1/webhooks/{admin_hooks['id']}").status_code == 404
        assert user.delete(f"/api/v1/webhooks/{hook_id}").status_code == 204
        assert user.get(f"/api/v1/webhooks/{hook_id}").status_code == 404
    assert api.delete(f"/api/v1/webhooks/{admin_hooks['id']}").status_code == 204


def test_cli_creates_pings_lists_and_deletes(cluster: Cluster, receiver: Receiver, tmp_path: Path) -> None:
    with cluster.client() as api:
        allow_private(api, True)
        assert api.put("/api/v1/buckets/wh-cli").status_code == 201
    cli = ConsoleScript(cluster, tmp_path)
    hook_id, secret = cli.ok(
        "webhooks", "create", receiver.url("cli"), "--type", "object.created", "--bucket", "wh-cli"
    ).split()
    assert hook_id.startswith("wh_") and secret.startswith("whsec_")
    receiver.expect("cli", secret)
    assert cli.ok("webhooks", "ping", hook_id).startswith("ok: 204")
    ping = receiver.received("cli")[0]
    assert ping.verified and ping.body["type"] == "webhook.ping" and ping.message_id.startswith("ping_")
    rows = [line.split("\t") for line in cli.ok("webhooks", "ls", "--plain").splitlines()]
    assert [hook_id, receiver.url("cli"), "object.created", "wh-cli", "active"] in [r[:5] for r in rows]
    cli.ok("put", "-", "wh-cli/note.txt", input=b"note")
    wait_until(lambda: len(receiver.received("cli")) == 2, what="the object's delivery")
    attempts = [
        line.split("\t") for line in cli.ok("webhooks", "deliveries", hook_id, "--plain").splitlines()
    ]
    assert [(a[2], a[4], a[5]) for a in attempts] == [
        ("object.created", "ok", "204"),
        ("webhook.ping", "ok", "204"),
    ]
    receiver.status = 500
    try:
        failed = cli("webhooks", "ping", hook_id)
        assert failed.returncode == 1 and "HTTP 500" in failed.stdout
    finally:
        receiver.status = 204
    cli.ok("webhooks", "delete", hook_id)
    assert hook_id not in cli.ok("webhooks", "ls", "--plain")


def test_a_webhook_failing_for_too_long_is_disabled_and_says_so(tmp_path: Path) -> None:
    """A cluster of its own: the failure window is shortened to a second here."""
    env = {**FAST_RETRIES, "CARGOHOLD_WEBHOOK_DISABLE_AFTER": "1"}
    with (
        Cluster(tmp_path / "c", node_count=1, layout="mirror:1", env=env) as cluster,
        cluster.client() as api,
        Receiver() as dead,
        Receiver() as live,
    ):
        cluster.start_worker()
        allow_private(api, True)
        hook = subscribe(api, dead, "gone")
        subscribe(api, live, "watcher", types=["webhook.disabled"])
        dead.down()
        assert api.put("/api/v1/buckets/wh-gone").status_code == 201
        put(api, "wh-gone", "x")
        wait_until(
            lambda: api.get(f"/api/v1/webhooks/{hook['id']}").json()["status"] == "disabled",
            what="the failing webhook disabled",
        )
        shown = api.get(f"/api/v1/webhooks/{hook['id']}").json()
        assert shown["disabled_at"] and "failing since" in shown["disabled_reason"]
        assert shown["next_attempt_at"] is None
        wait_until(lambda: len(live.received("watcher")) == 1, what="the webhook.disabled event")
        told = live.received("watcher")[0].body["data"]
        assert told["type"] == "webhook.disabled" and told["detail"]["webhook_id"] == hook["id"]
        attempts = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]
        assert len(attempts) >= 2 and not any(a["ok"] for a in attempts)
