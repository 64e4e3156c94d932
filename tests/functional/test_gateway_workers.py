"""``cargohold gateway --workers 2``: two gateway processes on one port, as an operator runs them.

On both metadata stores: requests reach both workers; what one stores the
other serves at once; parallel writes through both never meet a locked
store; a user's upload budget holds for the whole gateway, not per
process; a worker killed with SIGKILL is replaced while the port keeps
answering; SIGTERM to the parent leaves no process behind.

Which worker answered is in ``X-Gateway-Worker``; a connection is kept by
the worker that accepted it, so a test picks workers by picking connections.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest

from cargohold.testing.cluster import ADMIN_KEY, Cluster, children_of
from cargohold.testing.data import sample
from tests.conftest import BOTH_STORES, store_url

#: Upload bytes one user may have in flight on the whole gateway: 1 MiB per worker.
USER_UPLOAD_BYTES = 2 * 1024 * 1024
#: A stalled upload's announced size: one fits a worker's share of the budget, two do not.
STALLED = 600_000
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module", params=BOTH_STORES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {"CARGOHOLD_MAX_UPLOAD_BYTES_PER_PRINCIPAL": str(USER_UPLOAD_BYTES)}
    with (
        store_url(request, request.param) as url,
        Cluster(
            tmp_path_factory.mktemp("workers"),
            node_count=3,
            layout="ec:2+1",
            db_url=url,
            env=env,
            gateway_workers=2,
        ) as running,
    ):
        yield running


class Conn:
    """One kept-alive connection, and the worker that accepted it."""

    def __init__(self, url: str, key: str = ADMIN_KEY) -> None:
        parts = urlsplit(url)
        self.http = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
        self.auth = {"Authorization": f"Bearer {key}"}
        self.worker = self.call("GET", "/healthz")[1]

    def call(self, method: str, path: str, body: bytes = b"") -> tuple[int, str, bytes]:
        """Status, answering worker and body of one request."""
        self.http.request(method, path, body=body, headers=self.auth)
        reply = self.http.getresponse()
        return reply.status, reply.getheader("X-Gateway-Worker") or "", reply.read()

    def start_put(self, path: str, size: int, first: bytes) -> None:
        """Send a PUT's head and the first bytes of its body, and stop there."""
        self.http.putrequest("PUT", path)
        self.http.putheader("Authorization", self.auth["Authorization"])
        self.http.putheader("Content-Length", str(size))
        self.http.endheaders(first)

    def answer(self) -> tuple[int, bytes]:
        reply = self.http.getresponse()
        return reply.status, reply.read()

    def close(self) -> None:
        self.http.close()


def by_worker(url: str, each: int, key: str = ADMIN_KEY) -> dict[str, list[Conn]]:
    """``each`` connections to each of the two workers (the kernel spreads them at random)."""
    found: dict[str, list[Conn]] = {"1": [], "2": []}
    for _ in range(200):
        conn = Conn(url, key)
        if len(found[conn.worker]) < each:
            found[conn.worker].append(conn)
        else:
            conn.close()
        if all(len(conns) == each for conns in found.values()):
            return found
    raise AssertionError(f"200 connections did not reach both workers: {found}")


def test_what_one_worker_stores_the_other_serves(cluster: Cluster) -> None:
    conns = by_worker(cluster.url, 1)
    one, two = conns["1"][0], conns["2"][0]
    assert one.call("PUT", "/api/v1/buckets/shared")[:2] == (201, "1")
    small, large = sample(4096, seed=1), sample(100_000, seed=2)  # inline, and erasure-coded on nodes
    assert one.call("PUT", "/api/v1/buckets/shared/objects/small", small)[:2] == (201, "1")
    assert one.call("PUT", "/api/v1/buckets/shared/objects/large", large)[:2] == (201, "1")
    assert two.call("GET", "/api/v1/buckets/shared/objects/small") == (200, "2", small)
    assert two.call("GET", "/api/v1/buckets/shared/objects/large") == (200, "2", large)
    assert two.call("DELETE", "/api/v1/buckets/shared/objects/small")[:2] == (204, "2")
    assert one.call("GET", "/api/v1/buckets/shared/objects/small")[:2] == (404, "1")
    one.close()
    two.close()


def test_parallel_writes_through_both_workers_all_commit(cluster: Cluster) -> None:
    """16 clients at once, each on its own connection: no write meets a locked store (a 500)."""
    assert cluster.client().put("/api/v1/buckets/parallel").status_code == 201

    def client_writes(n: int) -> list[tuple[int, str]]:
        with httpx.Client(base_url=cluster.url, headers=AUTH, timeout=60) as client:
            answers = []
            for i in range(12):
                body = sample(100_000 if i == 0 else 4096, seed=i)
                reply = client.put(f"/api/v1/buckets/parallel/objects/c{n}/o{i}", content=body)
                answers.append((reply.status_code, reply.headers["X-Gateway-Worker"]))
            return answers

    with ThreadPoolExecutor(16) as pool:
        answers = [a for client in pool.map(client_writes, range(16)) for a in client]
    assert {status for status, _ in answers} == {201}
    assert {worker for _, worker in answers} == {"1", "2"}
    with cluster.client() as api:
        listed = api.get("/api/v1/buckets/parallel/objects", params={"limit": 1000}).json()
        assert len(listed["objects"]) == 16 * 12
        assert api.get("/api/v1/buckets/parallel/objects/c7/o0").content == sample(100_000, seed=0)


def test_a_users_upload_budget_is_the_whole_gateways(cluster: Cluster) -> None:
    """Each worker admits half the user's budget: one stalled 600 kB upload each, not three."""
    assert cluster.client().put("/api/v1/buckets/budget").status_code == 201
    conns = by_worker(cluster.url, 2)
    held: list[Conn] = []
    for worker, pair in conns.items():
        for n, conn in enumerate(pair):
            conn.start_put(f"/api/v1/buckets/budget/objects/{worker}-{n}", STALLED, b"x" * 1000)
        # Whichever the worker took first holds 600 kB of its 1 MiB and waits for its body;
        # the other is answered at once.
        ready, _, _ = select.select([conn.http.sock for conn in pair], [], [], 30)
        assert len(ready) == 1
        refused = next(conn for conn in pair if conn.http.sock is ready[0])
        status, body = refused.answer()
        assert status == 429 and b'"slow_down"' in body
        held += [conn for conn in pair if conn is not refused]
    for conn in held:
        conn.http.send(b"x" * (STALLED - 1000))
        assert conn.answer()[0] == 201
    again = by_worker(cluster.url, 1)
    for worker, (conn,) in again.items():
        reply = conn.call("PUT", f"/api/v1/buckets/budget/objects/after-{worker}", b"y" * STALLED)
        assert reply[:2] == (201, worker)  # the budget came back when the uploads ended
    for conn in [c for pairs in (*conns.values(), *again.values()) for c in pairs]:
        conn.close()


def test_a_key_revoked_through_one_worker_stops_at_once_on_the_other(cluster: Cluster) -> None:
    """The workers share a revocation counter: no worker answers from a cached key once it is revoked."""
    admin = by_worker(cluster.url, 1)["1"][0]
    status, _, body = admin.call("POST", "/api/v1/keys", b'{"name": "short-lived"}')
    assert status == 201
    made = json.loads(body)
    holder = by_worker(cluster.url, 1, made["token"])["2"][0]
    assert holder.call("GET", "/api/v1/me")[:2] == (200, "2")  # worker 2 now has the key cached
    assert admin.call("DELETE", f"/api/v1/keys/{made['key_id']}")[:2] == (200, "1")
    assert holder.call("GET", "/api/v1/me")[:2] == (401, "2")


def test_a_killed_worker_is_replaced_and_sigterm_leaves_no_process(cluster: Cluster) -> None:
    assert cluster.gateway is not None
    parent = cluster.gateway.pid
    first = cluster.gateway_pids()
    assert len(first) == 2
    victim = first[0]
    os.kill(victim, signal.SIGKILL)
    for _ in range(10):  # each on a new connection: those the kernel gives the dead worker's socket
        # wait in its queue for the replacement, the others are answered at once
        assert httpx.get(cluster.url + "/healthz", timeout=30).status_code == 200
    cluster.wait_for(lambda: len(children_of(parent)) == 2 and victim not in children_of(parent), 30)
    replaced = children_of(parent)
    seen: set[str] = set()

    def both_answer() -> bool:
        with httpx.Client(base_url=cluster.url, timeout=30) as fresh:
            seen.add(fresh.get("/healthz").headers["X-Gateway-Worker"])
        return seen == {"1", "2"}

    cluster.wait_for(both_answer, 30, 0.0)
    cluster.stop_gateway()
    assert cluster.gateway is None
    cluster.wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in replaced), 10)
    with pytest.raises(httpx.ConnectError):
        httpx.get(cluster.url + "/healthz", timeout=5)
