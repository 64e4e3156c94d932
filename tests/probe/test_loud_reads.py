"""Probe tests: a read that breaks after its first byte cuts the connection at once.

ec:5+2 on 8 nodes. Three damaged share files make one block undecodable.
In a later block the 200 (or 206) has already gone out, so the gateway can
only abort: the client must see a body shorter than Content-Length within
seconds (curl's "partial file", httpx's incomplete read), never a hang and
never a second response inside the body. In the first block the error is
known before any byte: an ordinary 503 problem. Every damaged object is
read once only, since the first read reports its bad shares for repair.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cargohold.domain.layout import Layout
from cargohold.erasure.codec import codec_for
from cargohold.erasure.reader import full_frame_size
from cargohold.testing.cluster import ADMIN_KEY, Cluster
from cargohold.testing.data import sample

LAYOUT = Layout.parse("ec:5+2")
BLOCK = LAYOUT.block_size
SIZE = 3 * BLOCK + 4321  # four blocks, the last one short
FRAME = full_frame_size(codec_for(LAYOUT))
HEADER = 20  # docs/share-format.md
#: How long a broken transfer may take to end, far below curl's -m 30.
PROMPT = 5.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("loud")
    with Cluster(root / "c", gateway_log=root / "gateway.log") as running, running.client() as api:
        assert api.put("/api/v1/buckets/probe").status_code == 201
        yield running


@pytest.fixture
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.client() as client:
        yield client


class GatewayLog:
    """What the gateway wrote to stderr since this object was made."""

    def __init__(self, cluster: Cluster) -> None:
        assert cluster.gateway_log is not None
        self.path = cluster.gateway_log
        self.start = self.path.stat().st_size

    def new_lines(self) -> list[str]:
        with self.path.open("rb") as f:
            f.seek(self.start)
            return f.read().decode(errors="replace").splitlines()

    def assert_one_abort(self, path: str, status: int) -> None:
        lines = self.new_lines()
        aborts = [line for line in lines if " aborted after " in line]
        assert len(aborts) == 1, lines
        # "<time> WARNING cargohold.aborts [<request id>] GET <path> -> <status> aborted after …"
        assert re.search(
            rf" WARNING cargohold\.aborts \[[0-9a-f]{{32}}\] "
            rf"GET {re.escape(path)} -> {status} aborted after ",
            aborts[0],
        ), aborts
        assert aborts[0].endswith("read_unavailable: fewer than 5 shares of a part are readable"), aborts
        assert not [line for line in lines if "Traceback" in line or "Error handling request" in line], lines


def _put_damaged(cluster: Cluster, api: httpx.Client, key: str, data: bytes, block: int) -> None:
    """Store ``data`` and flip one payload byte of ``block`` in data shares 0, 1 and 2."""
    before = {p for node in cluster.nodes for p in node.share_files()}
    reply = api.put(f"/api/v1/buckets/probe/objects/{key}", content=data)
    assert reply.status_code == 201, reply.text
    shares = {p for node in cluster.nodes for p in node.share_files()} - before
    by_index = {int(p.name.rsplit(".", 1)[1]): p for p in shares}
    assert sorted(by_index) == list(range(7))
    for index in (0, 1, 2):
        raw = bytearray(by_index[index].read_bytes())
        raw[block * FRAME + HEADER + 10] ^= 0xFF
        by_index[index].write_bytes(bytes(raw))


def _curl(url: str, out: Path, *args: str) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        ["curl", "-sS", "-m", "30", "-o", str(out), "-w", "%{http_code}", *args, url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout, time.monotonic() - started


def test_curl_get_ends_with_a_partial_file_at_once(
    cluster: Cluster, api: httpx.Client, tmp_path: Path
) -> None:
    data = sample(SIZE, seed=21)
    _put_damaged(cluster, api, "late-curl", data, block=2)
    log = GatewayLog(cluster)
    out = tmp_path / "got"
    url = f"{cluster.url}/api/v1/buckets/probe/objects/late-curl"
    code, status, took = _curl(url, out, "-H", f"Authorization: Bearer {ADMIN_KEY}")
    assert (code, status) == (18, "200")  # 18: partial file; 28 would be curl's timeout
    assert took < PROMPT
    got = out.read_bytes()
    assert 0 < len(got) < SIZE
    assert got == data[: len(got)]  # what arrived is the object's, and nothing else
    log.assert_one_abort("/api/v1/buckets/probe/objects/late-curl", 200)


def _read_until_broken(response: httpx.Response) -> bytes:
    got = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        for chunk in response.iter_raw():
            got += chunk
    return bytes(got)


def test_httpx_get_sees_an_incomplete_body(cluster: Cluster, api: httpx.Client) -> None:
    data = sample(SIZE, seed=22)
    _put_damaged(cluster, api, "late-httpx", data, block=3)
    log = GatewayLog(cluster)
    started = time.monotonic()
    with api.stream("GET", "/api/v1/buckets/probe/objects/late-httpx") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(SIZE)
        got = _read_until_broken(response)
    assert time.monotonic() - started < PROMPT
    assert 0 < len(got) < SIZE and got == data[: len(got)]
    log.assert_one_abort("/api/v1/buckets/probe/objects/late-httpx", 200)
    # The history keeps the status that started and names the failure as the result.
    events: list[dict[str, object]] = []

    def recorded() -> bool:
        reply = api.get("/api/v1/history", params={"action": "object.read", "bucket": "probe"})
        events[:] = [e for e in reply.json()["events"] if e["key"] == "late-httpx"]
        return bool(events)

    cluster.wait_for(recorded)
    assert [(e["status"], e["result"]) for e in events] == [(200, "read_unavailable")]


def test_range_get_sees_an_incomplete_body(cluster: Cluster, api: httpx.Client) -> None:
    data = sample(SIZE, seed=23)
    _put_damaged(cluster, api, "late-range", data, block=2)
    log = GatewayLog(cluster)
    first, last = BLOCK // 2, SIZE - 100
    started = time.monotonic()
    headers = {"Range": f"bytes={first}-{last}"}
    with api.stream("GET", "/api/v1/buckets/probe/objects/late-range", headers=headers) as response:
        assert response.status_code == 206
        assert response.headers["content-length"] == str(last - first + 1)
        got = _read_until_broken(response)
    assert time.monotonic() - started < PROMPT
    assert 0 < len(got) < last - first + 1 and got == data[first : first + len(got)]
    log.assert_one_abort("/api/v1/buckets/probe/objects/late-range", 206)


def test_share_link_get_is_cut_the_same_way(cluster: Cluster, api: httpx.Client, tmp_path: Path) -> None:
    data = sample(SIZE, seed=24)
    _put_damaged(cluster, api, "late-link", data, block=2)
    link = api.post("/api/v1/shares", json={"bucket": "probe", "key": "late-link"})
    assert link.status_code == 201, link.text
    log = GatewayLog(cluster)
    out = tmp_path / "got"
    code, status, took = _curl(cluster.url + link.json()["url"], out)
    assert (code, status) == (18, "200")
    assert took < PROMPT
    got = out.read_bytes()
    assert 0 < len(got) < SIZE and got == data[: len(got)]
    log.assert_one_abort("/s/{token}", 200)  # a link's token is a credential: never logged
    assert link.json()["token"] not in log.path.read_text()


def test_damage_in_the_first_block_is_a_problem_before_any_byte(cluster: Cluster, api: httpx.Client) -> None:
    data = sample(SIZE, seed=25)
    _put_damaged(cluster, api, "early", data, block=0)
    log = GatewayLog(cluster)
    reply = api.get("/api/v1/buckets/probe/objects/early")
    assert reply.status_code == 503
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["code"] == "read_unavailable"
    lines = log.new_lines()
    assert not [line for line in lines if " aborted after " in line or "Traceback" in line], lines
