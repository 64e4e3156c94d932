"""Background imports against a real cluster (gateway, worker, nodes) and real HTTP sources.

Each source is an aiohttp server in this process (``testing/sources.py``) on
127.0.0.1, so every test but the one about the refusal turns the cluster
setting ``webhook_allow_private`` on. Files are 8-16 MiB in 1 MiB parts: a
drop at byte N resumes at the part boundary below N. Runs on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster
from cargohold.testing.console import ConsoleScript
from cargohold.testing.sources import SourceServer
from tests.conftest import BOTH_STORES, store_url

MIB = 1 << 20
PART = MIB
BUCKET = "imports"
ORDER = {"PENDING": 0, "LOADING": 1, "UPLOADED": 2, "FAILED": 2, "DELETED": 2}


@pytest.fixture(scope="module", params=BOTH_STORES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {
        "CARGOHOLD_IMPORT_PART_SIZE": str(PART),
        "CARGOHOLD_IMPORT_RETRY_BACKOFF": "0.2",
        "CARGOHOLD_IMPORT_LEASE": "3",
        "CARGOHOLD_IMPORT_CONCURRENCY": "2",
        "CARGOHOLD_WORKER_POLL_INTERVAL": "0.2",
    }
    with (
        store_url(request, request.param) as url,
        Cluster(
            tmp_path_factory.mktemp("imports"),
            node_count=3,
            layout="ec:2+1",
            db_url=url,
            env=env,
            capture_logs=True,
        ) as running,
    ):
        running.start_worker()
        with running.client() as api:
            assert api.put(f"/api/v1/buckets/{BUCKET}").status_code == 201
        set_allow_private(running, True)
        yield running


@pytest.fixture
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.client() as client:
        yield client


def set_allow_private(cluster: Cluster, allowed: bool) -> None:
    """The cluster setting ``webhook_allow_private``, which opens private addresses to imports too."""
    with cluster.client() as admin:
        reply = admin.patch("/api/v1/events/settings", json={"webhook_allow_private": allowed})
        assert reply.status_code == 200, reply.text
        assert reply.json()["webhook_allow_private"] is allowed


def start(api: httpx.Client, source: str, key: str, **extra: Any) -> dict[str, Any]:
    reply = api.post("/api/v1/imports", json={"source": source, "bucket": BUCKET, "key": key, **extra})
    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert body["status"] == "PENDING"
    assert reply.headers["Location"] == f"/api/v1/imports/{body['id']}"
    return dict(body)


def follow(
    api: httpx.Client, import_id: str, until: Any = None, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Every state the import shows, polled every 50 ms, until it is over (or ``until(state)``)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = api.get(f"/api/v1/imports/{import_id}").json()
        seen.append(state)
        if state["status"] in ("UPLOADED", "FAILED", "DELETED") or (until is not None and until(state)):
            return seen
        time.sleep(0.05)
    raise TimeoutError(f"import {import_id} still {seen[-1]['status']} after {timeout} s")


def break_once_read(
    cluster: Cluster, api: httpx.Client, source: SourceServer, import_id: str
) -> list[dict[str, Any]]:
    """Let the held source break its connection once the import has read every byte it was
    sent (so it breaks off at exactly the drop offset); returns the states seen meanwhile."""
    cluster.wait_for(lambda: source.holding is not None, timeout=30)
    at = source.holding
    assert at is not None
    seen = follow(api, import_id, until=lambda state: state["bytes_done"] >= at)
    source.release()
    return seen


def stored_sha256(api: httpx.Client, key: str) -> str:
    reply = api.get(f"/api/v1/buckets/{BUCKET}/objects/{key}")
    assert reply.status_code == 200, reply.text
    return hashlib.sha256(reply.content).hexdigest()


def events_of(cluster: Cluster, import_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The import.* events of one import in the outbox, in order: (type, detail)."""
    rows = cluster.query("SELECT type, detail FROM events WHERE type LIKE 'import.%' ORDER BY id")
    found = []
    for kind, detail in rows:
        document = json.loads(detail) if isinstance(detail, str) else detail
        if document.get("import_id") == import_id:
            found.append((kind, document))
    return found


def share_files(cluster: Cluster) -> set[str]:
    return {str(path) for node in cluster.nodes for path in node.share_files()}


def wait_until_freed(cluster: Cluster, before: set[str], timeout: float = 30.0) -> None:
    """Wait until the nodes hold the share files they held ``before``, no more and no fewer."""
    try:
        cluster.wait_for(lambda: share_files(cluster) == before, timeout=timeout)
    except TimeoutError:
        now = share_files(cluster)
        parts = sorted({path.rsplit("/", 1)[1].split(".")[0] for path in now ^ before})
        rows = {p: cluster.query(f"SELECT object_id, upload_id FROM parts WHERE id = '{p}'") for p in parts}
        raise AssertionError(
            f"{len(now - before)} share files more, {len(before - now)} fewer: {rows}"
        ) from None


def test_two_drops_resume_by_range_from_the_last_part_and_progress_only_moves_forward(
    cluster: Cluster, api: httpx.Client
) -> None:
    data = os.urandom(8 * MIB)
    digest = hashlib.sha256(data).hexdigest()
    with SourceServer(data, drops=[3_000_000, 6_500_000], pace=8 * MIB, hold=True) as source:
        made = start(api, source.file_url(), "ranged.bin", expected_sha256=digest)
        seen = break_once_read(cluster, api, source, made["id"])
        seen += break_once_read(cluster, api, source, made["id"])
        seen += follow(api, made["id"])
        requests = [(s.range, s.if_range, s.status) for s in source.seen]
    final = seen[-1]
    assert final["status"] == "UPLOADED", final
    # Each drop costs the part in flight: the next request starts at the part boundary below it.
    assert requests == [
        (None, None, 200),
        (f"bytes={2 * PART}-", '"v1"', 206),
        (f"bytes={6 * PART}-", '"v1"', 206),
    ]
    assert (final["attempts"], final["resumes"], final["restarts"]) == (3, 2, 0)
    assert (final["size"], final["bytes_done"], final["uploaded_percentage"]) == (len(data), len(data), 100.0)
    assert final["content_type"] is None and final["version_id"]
    assert stored_sha256(api, "ranged.bin") == digest
    head = api.head(f"/api/v1/buckets/{BUCKET}/objects/ranged.bin")
    assert head.headers["content-type"] == "application/x-test"
    assert head.headers["x-version-id"] == final["version_id"]
    # Status and progress never go backwards, and progress was seen on the way.
    statuses = [ORDER[s["status"]] for s in seen]
    assert statuses == sorted(statuses)
    done = [s["bytes_done"] for s in seen]
    assert done == sorted(done)
    percentages = [s["uploaded_percentage"] for s in seen if s["uploaded_percentage"] is not None]
    assert percentages == sorted(percentages)
    assert any(0 < p < 100 for p in percentages), percentages
    assert any(s["status"] == "LOADING" and s["rate"] for s in seen), "no rate while loading"
    # Every status change wrote its event in the same transaction: created, progress, completed.
    kinds = [kind for kind, detail in events_of(cluster, made["id"])]
    assert kinds[0] == "import.created" and kinds[-1] == "import.completed", kinds
    assert set(kinds[1:-1]) == {"import.progress"} and len(kinds) >= 4, kinds
    progress = [detail["bytes_done"] for kind, detail in events_of(cluster, made["id"])]
    assert progress == sorted(progress)


def test_a_source_without_ranges_is_read_again_from_its_start_and_stored_once(
    cluster: Cluster, api: httpx.Client
) -> None:
    data = os.urandom(6 * MIB + 12345)
    with SourceServer(data, ranges=False, drops=[2_500_000, 4_800_000], hold=True) as source:
        made = start(api, source.file_url(), "no-ranges.bin")
        break_once_read(cluster, api, source, made["id"])
        break_once_read(cluster, api, source, made["id"])
        final = follow(api, made["id"])[-1]
        requests = [(s.range, s.status) for s in source.seen]
    assert final["status"] == "UPLOADED", final
    # The Range requests are answered with the whole file: the stored parts are read past.
    assert requests == [(None, 200), (f"bytes={2 * PART}-", 200), (f"bytes={4 * PART}-", 200)]
    assert (final["attempts"], final["resumes"], final["restarts"]) == (3, 0, 2)
    assert stored_sha256(api, "no-ranges.bin") == hashlib.sha256(data).hexdigest()


def test_a_missing_source_fails_with_its_reason(api: httpx.Client) -> None:
    with SourceServer(b"", status=404) as source:
        made = start(api, source.file_url("gone.bin"), "gone.bin")
        final = follow(api, made["id"])[-1]
        assert len(source.seen) == 1  # a 404 is not retried
    assert final["status"] == "FAILED"
    assert final["error"]["code"] == "source_not_found"
    assert "404" in final["error"]["message"]
    assert api.get(f"/api/v1/buckets/{BUCKET}/objects/gone.bin").json()["code"] == "no_such_key"


def test_a_private_address_is_refused_unless_the_cluster_allows_it(
    cluster: Cluster, api: httpx.Client
) -> None:
    set_allow_private(cluster, False)
    try:
        for source in ("http://127.0.0.1:9/file", "http://[::1]:9/file", "http://localhost:9/file"):
            reply = api.post("/api/v1/imports", json={"source": source, "bucket": BUCKET, "key": "x"})
            assert reply.status_code == 422, reply.text
            assert reply.json()["code"] == "source_not_allowed"
    finally:
        set_allow_private(cluster, True)
    for source, code in (
        ("ftp://example.com/file", "invalid_argument"),
        ("http://u:p@h/f", "invalid_argument"),
        ("http://h/\u0085", "invalid_argument"),  # a C1 control: outside the document's pattern
        (f"http://{'a' * 64}.example.com/f", "invalid_source"),  # a DNS label over 63 octets
    ):
        reply = api.post("/api/v1/imports", json={"source": source, "bucket": BUCKET, "key": "x"})
        assert (reply.status_code, reply.json()["code"]) == (400, code), reply.text


def test_listing_parameters_that_are_present_but_empty_are_refused(api: httpx.Client) -> None:
    """An empty value is a value: ``?cursor=`` is no cursor any page gave, ``?bucket=`` no bucket."""
    for query, code in (
        ("cursor=", "invalid_argument"),
        ("bucket=", "invalid_bucket_name"),
        ("limit=", "invalid_argument"),
        ("user=", "invalid_argument"),
    ):
        reply = api.get(f"/api/v1/imports?{query}")
        assert (reply.status_code, reply.json()["code"]) == (400, code), reply.text


def test_a_wrong_checksum_fails_the_import_and_frees_its_shares(cluster: Cluster, api: httpx.Client) -> None:
    before = share_files(cluster)
    data = os.urandom(3 * MIB)
    with SourceServer(data) as source:
        made = start(api, source.file_url(), "wrong.bin", expected_md5="0" * 32)
        final = follow(api, made["id"])[-1]
    assert final["status"] == "FAILED"
    assert final["error"]["code"] == "checksum_mismatch"
    assert api.get(f"/api/v1/buckets/{BUCKET}/objects/wrong.bin").status_code == 404
    failed = events_of(cluster, made["id"])[-1]
    assert failed[0] == "import.failed" and failed[1]["error"]["code"] == "checksum_mismatch"
    wait_until_freed(cluster, before)


def test_a_cancel_mid_way_stops_the_transfer_and_frees_its_shares(
    cluster: Cluster, api: httpx.Client
) -> None:
    before = share_files(cluster)
    data = os.urandom(16 * MIB)
    with SourceServer(data, pace=3 * MIB) as source:
        made = start(api, source.file_url(), "cancelled.bin")
        follow(api, made["id"], until=lambda s: s["bytes_done"] >= 3 * MIB)
        assert share_files(cluster) > before  # parts are stored (a strict superset)
        cancelled = api.delete(f"/api/v1/imports/{made['id']}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "DELETED"
        # The worker notices within a tick: the source's connection is dropped long before its end.
        stopped = time.monotonic()
        cluster.wait_for(lambda: source.active == 0, timeout=5)
        assert time.monotonic() - stopped < 3
        assert source.sent < len(data)
    again = api.delete(f"/api/v1/imports/{made['id']}")
    assert (again.status_code, again.json()["code"]) == (409, "import_finished")
    wait_until_freed(cluster, before)
    assert api.get(f"/api/v1/imports/{made['id']}").json()["status"] == "DELETED"
    assert events_of(cluster, made["id"])[-1][0] == "import.cancelled"


def test_a_worker_killed_mid_import_is_followed_by_one_that_continues_after_the_stored_parts(
    cluster: Cluster, api: httpx.Client
) -> None:
    data = os.urandom(10 * MIB)
    with SourceServer(data, pace=3 * MIB) as source:
        made = start(api, source.file_url(), "survivor.bin")
        follow(api, made["id"], until=lambda s: s["bytes_done"] >= 4 * MIB)
        assert cluster.worker is not None
        cluster.worker.send_signal(signal.SIGKILL)
        cluster.worker.wait(10)
        cluster.worker = None
        # What was durable when the worker died: the parts recorded against the import's upload.
        stored = cluster.query(
            "SELECT COALESCE(SUM(parts.size), 0) FROM parts"
            " JOIN imports ON parts.upload_id = imports.upload_id"
            f" WHERE imports.id = '{made['id']}'"
        )[0][0]
        assert stored >= 3 * PART and stored % PART == 0, stored
        cluster.start_worker()
        final = follow(api, made["id"])[-1]
        requests = [(s.range, s.status) for s in source.seen]
    assert final["status"] == "UPLOADED", final
    # The next worker took the job over once its lease lapsed, and asked for what was not stored.
    assert requests == [(None, 200), (f"bytes={stored}-", 206)]
    assert stored_sha256(api, "survivor.bin") == hashlib.sha256(data).hexdigest()


def test_a_worker_runs_at_most_its_share_of_imports_at_once(cluster: Cluster, api: httpx.Client) -> None:
    data = os.urandom(2 * MIB)
    with SourceServer(data, pace=2 * MIB) as source:
        made = [start(api, source.file_url(f"f{i}"), f"parallel-{i}.bin") for i in range(5)]
        finals = [follow(api, m["id"])[-1] for m in made]
    assert [f["status"] for f in finals] == ["UPLOADED"] * 5
    assert source.most_active == 2  # CARGOHOLD_IMPORT_CONCURRENCY


def test_a_source_larger_than_the_quota_fails_before_its_body_is_stored(
    cluster: Cluster, api: httpx.Client
) -> None:
    token = make_user(api, "importer", quota_bytes=2 * MIB)
    before = share_files(cluster)
    with cluster.client(token) as user, SourceServer(os.urandom(3 * MIB)) as source:
        assert user.put("/api/v1/buckets/importer-b").status_code == 201
        reply = user.post(
            "/api/v1/imports", json={"source": source.file_url(), "bucket": "importer-b", "key": "big"}
        )
        assert reply.status_code == 202, reply.text
        final = follow(user, reply.json()["id"])[-1]
    assert final["status"] == "FAILED"
    assert final["error"]["code"] == "quota_exceeded"
    assert final["bytes_done"] == 0
    assert share_files(cluster) == before


def test_users_see_their_own_imports_and_admins_see_everyones(cluster: Cluster, api: httpx.Client) -> None:
    token = make_user(api, "lister")
    with cluster.client(token) as user, SourceServer(os.urandom(64 * 1024)) as source:
        assert user.put("/api/v1/buckets/lister-b").status_code == 201
        mine = user.post(
            "/api/v1/imports", json={"source": source.file_url(), "bucket": "lister-b", "key": "k"}
        ).json()
        follow(user, mine["id"])
        theirs = start(api, source.file_url(), "admins.bin")
        follow(api, theirs["id"])
        listed = user.get("/api/v1/imports").json()
        assert [i["id"] for i in listed["imports"]] == [mine["id"]]
        assert user.get(f"/api/v1/imports/{theirs['id']}").json()["code"] == "no_such_import"
        assert user.delete(f"/api/v1/imports/{theirs['id']}").json()["code"] == "no_such_import"
        everyone = api.get("/api/v1/imports", params={"status": "UPLOADED", "limit": 1000}).json()["imports"]
        assert {mine["id"], theirs["id"]} <= {i["id"] for i in everyone}
        only = api.get("/api/v1/imports", params={"user": "lister"}).json()["imports"]
        assert [i["id"] for i in only] == [mine["id"]]
        assert api.get("/api/v1/imports", params={"status": "BOGUS"}).json()["code"] == "invalid_argument"
        # The upload session behind an import belongs to it: the upload APIs do not show it.
        assert user.get("/api/v1/uploads").json()["uploads"] == []


def test_the_cli_imports_and_waits_then_lists_shows_and_cancels(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cli = ConsoleScript(cluster, tmp_path_factory.mktemp("home"))
    data = os.urandom(3 * MIB)
    digest = hashlib.sha256(data).hexdigest()
    with SourceServer(data) as source:
        done = cli.run_ok("import", source.file_url(), f"{BUCKET}/cli.bin", "--wait", "--sha256", digest)
        assert f"imported {BUCKET}/cli.bin (3.1 MB, version " in done.stdout
        failed = cli("import", source.file_url(), f"{BUCKET}/cli-bad.bin", "--wait", "--sha256", "0" * 64)
        assert failed.returncode == 1
        assert "error: checksum_mismatch: sha256 of the body is" in failed.stderr
    with SourceServer(os.urandom(8 * MIB), pace=64 * 1024) as slow:  # cancelled long before its end
        queued = cli.ok("import", slow.file_url(), f"{BUCKET}/cli-cancel.bin")
        import_id = queued.split()[1]
        assert queued.startswith(f"import {import_id} PENDING: ")
        assert cli.ok("imports", "cancel", import_id).startswith(f"cancelled import {import_id}")
    shown = cli.ok("imports", "show", import_id)
    assert "status:       DELETED" in shown
    listed = cli.ok("imports", "list", "--plain", "--status", "deleted")
    assert import_id in listed and "cli.bin" not in listed
