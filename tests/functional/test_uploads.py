"""Upload sessions and Content-Range chunks against a real cluster."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from cargohold.testing.cluster import Cluster
from cargohold.testing.data import sample
from tests.conftest import BOTH_STORES, store_url

PART = 1024 * 1024 + 4097


@pytest.fixture(scope="module", params=BOTH_STORES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Every upload test runs once on SQLite and once on PostgreSQL."""
    with store_url(request, request.param) as url, Cluster(tmp_path_factory.mktemp("up"), db_url=url) as c:
        yield c


def _create(api: httpx.Client, bucket: str, key: str, **extra: object) -> dict:
    reply = api.post("/api/v1/uploads", json={"bucket": bucket, "key": key, **extra})
    assert reply.status_code == 201, reply.text
    return reply.json()


def test_parallel_parts_in_any_order(cluster: Cluster, api: httpx.Client, bucket: str) -> None:
    data = sample(8 * PART - 1000, seed=21)
    pieces = [data[i : i + PART] for i in range(0, len(data), PART)]
    upload = _create(api, bucket, "big.bin", size=len(data), md5=hashlib.md5(data).hexdigest())
    assert upload["status"] == "PENDING" and upload["uploaded_percentage"] == 0.0

    def send(number: int) -> dict:
        with cluster.client() as own:
            reply = own.put(f"/api/v1/uploads/{upload['id']}/parts/{number}", content=pieces[number - 1])
            assert reply.status_code == 200, reply.text
            return reply.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, reversed(range(1, len(pieces) + 1))))
    assert {r["part_number"] for r in results} == set(range(1, 9))
    for r in results:
        assert r["md5"] == hashlib.md5(pieces[r["part_number"] - 1]).hexdigest()
    state = api.get(f"/api/v1/uploads/{upload['id']}").json()
    assert state["status"] == "LOADING" and state["uploaded_percentage"] == 100.0
    assert state["bytes_received"] == len(data) and len(state["parts"]) == 8
    done = api.post(f"/api/v1/uploads/{upload['id']}/complete", json={})
    assert done.status_code == 200, done.text
    assert done.json()["upload"]["status"] == "UPLOADED"
    assert done.json()["object"]["etag"].endswith("-8")
    got = api.get(f"/api/v1/buckets/{bucket}/objects/big.bin")
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    ranged = api.get(
        f"/api/v1/buckets/{bucket}/objects/big.bin", headers={"Range": f"bytes={PART - 5}-{PART + 5}"}
    )
    assert ranged.content == data[PART - 5 : PART + 6]


def test_part_replaced_and_whole_file_digest_checked(api: httpx.Client, bucket: str) -> None:
    data = sample(2 * PART, seed=22)
    upload = _create(api, bucket, "fix.bin", sha256=hashlib.sha256(data).hexdigest())
    url = f"/api/v1/uploads/{upload['id']}"
    api.put(f"{url}/parts/1", content=data[:PART])
    api.put(f"{url}/parts/2", content=b"wrong" * 1000)
    bad = api.post(f"{url}/complete", json={})
    assert bad.status_code == 409 and bad.json()["code"] == "upload_digest_mismatch"
    assert api.get(url).json()["status"] == "LOADING"
    api.put(f"{url}/parts/2", content=data[PART:])
    good = api.post(f"{url}/complete", json={"parts": [{"part_number": 1}, {"part_number": 2}]})
    assert good.status_code == 200, good.text
    assert api.get(f"/api/v1/buckets/{bucket}/objects/fix.bin").content == data


def test_missing_part_and_bad_numbers(api: httpx.Client, bucket: str) -> None:
    upload = _create(api, bucket, "gap.bin")
    url = f"/api/v1/uploads/{upload['id']}"
    api.put(f"{url}/parts/1", content=b"a" * 100)
    api.put(f"{url}/parts/3", content=b"c" * 100)
    # What the upload holds refuses these, not their form: the same call succeeds once part 2 is
    # there (409); a list out of order is malformed whatever the upload holds (400).
    gap = api.post(f"{url}/complete", json={})
    assert gap.status_code == 409 and gap.json()["code"] == "missing_parts"
    listed = api.post(f"{url}/complete", json={"parts": [{"part_number": 1}, {"part_number": 2}]})
    assert listed.status_code == 409 and listed.json()["code"] == "missing_parts"
    other = api.post(f"{url}/complete", json={"parts": [{"part_number": 1, "md5": "0" * 32}]})
    assert other.status_code == 409 and other.json()["code"] == "part_mismatch"
    backwards = api.post(f"{url}/complete", json={"parts": [{"part_number": 3}, {"part_number": 1}]})
    assert backwards.status_code == 400 and backwards.json()["code"] == "invalid_part_order"
    for number, code in (("0", "invalid_part"), ("10001", "invalid_part"), ("x", "invalid_argument")):
        reply = api.put(f"{url}/parts/{number}", content=b"x")
        assert reply.status_code == 400 and reply.json()["code"] == code, number


def test_sizes_that_disagree_with_the_upload(api: httpx.Client, bucket: str) -> None:
    """A declared size bounds the upload: a chunk's total or parts that disagree with it are refused
    by the upload's state (409 size_mismatch); a size past the gateway's limit is 413."""
    upload = _create(api, bucket, "sized.bin", size=10)
    url = f"/api/v1/uploads/{upload['id']}"
    other_total = api.put(url, content=b"x" * 5, headers={"Content-Range": "bytes 0-4/11"})
    assert other_total.status_code == 409 and other_total.json()["code"] == "size_mismatch"
    assert api.put(f"{url}/parts/1", content=b"x" * 4).status_code == 200
    short = api.post(f"{url}/complete", json={})
    assert short.status_code == 409 and short.json()["code"] == "size_mismatch"
    assert short.json()["received"] == 4
    huge = api.post("/api/v1/uploads", json={"bucket": bucket, "key": "huge", "size": 2**63 - 1})
    assert huge.status_code == 413 and huge.json()["code"] == "payload_too_large"
    no_parts = api.post("/api/v1/uploads", json={"bucket": bucket, "key": "k", "part_size": 0})
    assert no_parts.status_code == 400 and no_parts.json()["code"] == "invalid_argument"
    assert no_parts.json()["field"] == "part_size"
    assert _create(api, bucket, "k", part_size=1)["part_size"] == 1


def test_content_range_chunks_resume(api: httpx.Client, bucket: str) -> None:
    data = sample(3 * PART + 11, seed=23)
    upload = _create(api, bucket, "chunks.bin")
    url = f"/api/v1/uploads/{upload['id']}"
    step = PART
    first = api.put(url, content=data[:step], headers={"Content-Range": f"bytes 0-{step - 1}/{len(data)}"})
    assert first.status_code == 200 and first.json()["offset"] == step
    wrong = api.put(url, content=data[:10], headers={"Content-Range": f"bytes 5-14/{len(data)}"})
    assert wrong.status_code == 409 and wrong.json()["code"] == "offset_mismatch"
    assert wrong.json()["offset"] == step
    offset = api.get(url).json()["offset"]
    while offset < len(data):
        end = min(offset + step, len(data)) - 1
        reply = api.put(
            url,
            content=data[offset : end + 1],
            headers={"Content-Range": f"bytes {offset}-{end}/{len(data)}"},
        )
        assert reply.status_code == 200, reply.text
        offset = reply.json()["offset"]
    assert api.get(url).json()["uploaded_percentage"] == 100.0
    done = api.post(f"{url}/complete", json={"md5": hashlib.md5(data).hexdigest()})
    assert done.status_code == 200, done.text
    assert api.get(f"/api/v1/buckets/{bucket}/objects/chunks.bin").content == data
    # A range that is malformed, contradicts itself or the body's length is refused as such,
    # whatever the upload's state (it is complete by now).
    for header in ("bytes 0-9", "bytes 9-0/100", "items 0-9/100", "bytes 0-0/0", "bytes 0-4/100"):
        reply = api.put(url, content=b"x" * 10, headers={"Content-Range": header})
        assert reply.status_code == 400 and reply.json()["code"] == "invalid_content_range", header


def test_abort_frees_and_closes(cluster: Cluster, api: httpx.Client, bucket: str) -> None:
    def share_files() -> set:  # type: ignore[type-arg]
        return {p for n in cluster.nodes for p in n.share_files()}

    upload = _create(api, bucket, "gone.bin")
    url = f"/api/v1/uploads/{upload['id']}"
    before = share_files()
    api.put(f"{url}/parts/1", content=sample(PART, seed=24))
    stored = share_files() - before
    assert len(stored) == 7
    listed = api.get("/api/v1/uploads", params={"bucket": bucket}).json()["uploads"]
    assert [u["bytes_received"] for u in listed if u["id"] == upload["id"]] == [PART]
    aborted = api.delete(url)
    assert aborted.status_code == 200 and aborted.json()["status"] == "DELETED"
    cluster.wait_for(lambda: not stored & share_files(), timeout=15)  # the part's shares are freed
    late = api.put(f"{url}/parts/2", content=b"x")
    assert late.status_code == 409 and late.json()["code"] == "upload_not_open"
    assert api.get("/api/v1/uploads/" + "0" * 32).json()["code"] == "no_such_upload"
    assert upload["id"] not in [u["id"] for u in api.get("/api/v1/uploads").json()["uploads"]]


def test_events_stream_to_final_state(cluster: Cluster, api: httpx.Client, bucket: str) -> None:
    upload = _create(api, bucket, "watched.bin", size=2 * PART)
    url = f"/api/v1/uploads/{upload['id']}"
    statuses: list[str] = []

    def watch() -> None:
        with cluster.client() as own, own.stream("GET", f"{url}/events") as events:
            for line in events.iter_lines():
                if line.startswith("data: "):
                    statuses.append(json.loads(line[6:])["status"])

    with ThreadPoolExecutor(1) as pool:
        watcher = pool.submit(watch)
        cluster.wait_for(lambda: statuses == ["PENDING"])
        api.put(f"{url}/parts/1", content=sample(PART, seed=25))
        api.put(f"{url}/parts/2", content=sample(PART, seed=26))
        api.post(f"{url}/complete", json={})
        watcher.result(timeout=30)
    assert statuses[0] == "PENDING" and statuses[-1] == "UPLOADED" and "LOADING" in statuses
