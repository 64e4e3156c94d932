"""A real cluster (8 node processes + a gateway process) shared by a test module."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from cargohold.testing.cluster import Cluster
from tests.conftest import store_url

#: The shared cluster's object size limit, small enough to test oversize bodies quickly.
MAX_OBJECT = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {"CARGOHOLD_MAX_OBJECT_SIZE": str(MAX_OBJECT)}
    with Cluster(tmp_path_factory.mktemp("cluster"), env=env) as running:
        yield running


@pytest.fixture
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.client() as client:
        yield client


@pytest.fixture
def bucket(api: httpx.Client, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test, named after the test id."""
    name = "t-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    reply = api.put(f"/api/v1/buckets/{name}")
    assert reply.status_code == 201, reply.text
    return name


@contextlib.contextmanager
def accounts_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[Cluster]:
    """One node (mirror:1) on the store ``request.param`` names, caching users, keys and sessions 300 s."""
    env = {"CARGOHOLD_AUTH_CACHE_SECONDS": "300"}
    with (
        store_url(request, request.param) as url,
        Cluster(
            tmp_path_factory.mktemp(name), node_count=1, layout="mirror:1", db_url=url, env=env
        ) as running,
    ):
        yield running


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request of a :func:`burst` got: status, problem code, Retry-After."""

    status: int
    code: str | None
    retry_after: int | None


def burst(
    base_url: str, addresses: list[str], send: Callable[[httpx.Client], httpx.Response]
) -> list[Answer]:
    """``send`` once per address, all at once (one thread and connection each).

    Every client connects first and then waits at a barrier, so the requests
    reach the gateway together rather than one connection set-up apart.
    """
    barrier = threading.Barrier(len(addresses))

    def one(address: str) -> Answer:
        transport = httpx.HTTPTransport(local_address=address)
        with httpx.Client(base_url=base_url, transport=transport, timeout=120) as client:
            client.get("/healthz").raise_for_status()  # the connection is open and kept
            barrier.wait()
            reply = send(client)
        problem = reply.headers.get("content-type", "").startswith("application/problem+json")
        retry_after = reply.headers.get("retry-after")
        return Answer(
            reply.status_code,
            reply.json().get("code") if problem else None,
            int(retry_after) if retry_after is not None else None,
        )

    with ThreadPoolExecutor(len(addresses)) as pool:
        return list(pool.map(one, addresses))


def tally(answers: list[Answer]) -> dict[tuple[int, str | None], int]:
    """How many answers had each (status, code)."""
    counts: dict[tuple[int, str | None], int] = {}
    for answer in answers:
        counts[answer.status, answer.code] = counts.get((answer.status, answer.code), 0) + 1
    return counts
