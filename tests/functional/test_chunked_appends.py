"""Chunked uploads grow one part over many chunks (tus PATCHes, Content-Range chunks).

A cluster of its own: ec:2+1 on four nodes (1 MiB blocks, so a node can be
lost and a new part still placed) and parts sealed at three blocks, so the
seal is reached with a few MiB.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tusclient.client import TusClient

from cargohold.api.tus import VERSION
from cargohold.domain.layout import Layout
from cargohold.testing.cluster import ADMIN_KEY, Cluster
from cargohold.testing.data import sample

LAYOUT = "ec:2+1"
BLOCK = Layout.parse(LAYOUT).block_size
SEAL = 3 * BLOCK
STREAM = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {"CARGOHOLD_APPEND_PART_LIMIT": str(SEAL)}
    with Cluster(tmp_path_factory.mktemp("appends"), node_count=4, layout=LAYOUT, env=env) as running:
        yield running


@pytest.fixture
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.client() as client:
        client.headers["Tus-Resumable"] = VERSION
        yield client


@pytest.fixture
def bucket(api: httpx.Client, request: pytest.FixtureRequest) -> str:
    name = request.node.name.replace("_", "-")[:50].strip("-").lower()
    assert api.put(f"/api/v1/buckets/{name}").status_code == 201
    return name


def _create(api: httpx.Client, bucket: str, key: str, length: int) -> str:
    meta = (
        f"bucket {base64.b64encode(bucket.encode()).decode()},key {base64.b64encode(key.encode()).decode()}"
    )
    reply = api.post("/tus/", headers={"Upload-Metadata": meta, "Upload-Length": str(length)})
    assert reply.status_code == 201, reply.text
    return str(reply.headers["Location"])


def _patch(api: httpx.Client, url: str, offset: int, data: bytes) -> int:
    reply = api.patch(url, content=data, headers={**STREAM, "Upload-Offset": str(offset)})
    assert reply.status_code == 204, reply.text
    return int(reply.headers["Upload-Offset"])


def _offset(api: httpx.Client, url: str) -> int:
    return int(api.head(url).headers["Upload-Offset"])


def _parts(api: httpx.Client, upload_id: str) -> list[int]:
    reply = api.get(f"/api/v1/uploads/{upload_id}")
    assert reply.status_code == 200, reply.text
    return [p["size"] for p in reply.json()["parts"]]


def _object(api: httpx.Client, bucket: str, key: str) -> bytes:
    reply = api.get(f"/api/v1/buckets/{bucket}/objects/{key}")
    assert reply.status_code == 200, reply.text
    return reply.content


def test_many_patches_grow_one_part_until_the_seal(api: httpx.Client, bucket: str) -> None:
    data = sample(7 * BLOCK + 10, seed=140)
    url = _create(api, bucket, "grown.bin", len(data))
    upload_id = url.rsplit("/", 1)[1]
    for n in range(7):
        assert _patch(api, url, n * BLOCK, data[n * BLOCK : (n + 1) * BLOCK]) == (n + 1) * BLOCK
    # Sealed at three blocks: the next chunk opened a new part, twice.
    assert _parts(api, upload_id) == [SEAL, SEAL, BLOCK]
    assert _patch(api, url, 7 * BLOCK, data[7 * BLOCK :]) == len(data)
    assert _object(api, bucket, "grown.bin") == data
    # No md5 was computed, and the ETag says so (S3 clients skip their md5 check).
    assert api.head(f"/api/v1/buckets/{bucket}/objects/grown.bin").headers["ETag"].endswith('-3"')


def test_tus_takes_whole_blocks_and_the_client_sends_the_rest_again(
    cluster: Cluster, api: httpx.Client, bucket: str
) -> None:
    data = sample(2 * BLOCK + BLOCK // 2 + 3, seed=141)
    url = _create(api, bucket, "uneven.bin", len(data))
    upload_id = url.rsplit("/", 1)[1]
    # One and a half blocks: the whole block is taken, the half is not acknowledged.
    assert _patch(api, url, 0, data[: BLOCK + BLOCK // 2]) == BLOCK
    assert _offset(api, url) == BLOCK
    # A chunk shorter than a block is taken whole (it ends the part), so an upload always moves on.
    assert _patch(api, url, BLOCK, data[BLOCK : BLOCK + 100]) == BLOCK + 100
    assert _parts(api, upload_id) == [BLOCK + 100]
    client = TusClient(cluster.url + "/tus/", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    uploader = client.uploader(file_stream=io.BytesIO(data), url=cluster.url + url, chunk_size=BLOCK + 4321)
    assert uploader.offset == BLOCK + 100
    uploader.upload()
    assert _object(api, bucket, "uneven.bin") == data


def test_content_range_chunks_answer_their_exact_end(api: httpx.Client, bucket: str) -> None:
    data = sample(3 * BLOCK + 7000, seed=142)
    reply = api.post("/api/v1/uploads", json={"bucket": bucket, "key": "ranges.bin", "size": len(data)})
    assert reply.status_code == 201, reply.text
    upload_id = reply.json()["id"]
    cuts = [0, BLOCK, 2 * BLOCK, 2 * BLOCK + 5000, len(data)]
    for start, end in itertools.pairwise(cuts):
        headers = {"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"}
        chunk = api.put(f"/api/v1/uploads/{upload_id}", content=data[start:end], headers=headers)
        assert chunk.status_code == 200, chunk.text
        assert chunk.json()["offset"] == end
    # Whole-block chunks share a part; the uneven one ends it, the next opens another.
    assert _parts(api, upload_id) == [2 * BLOCK + 5000, BLOCK + 2000]
    done = api.post(f"/api/v1/uploads/{upload_id}/complete", json={})
    assert done.status_code == 200, done.text
    assert _object(api, bucket, "ranges.bin") == data


def test_a_node_killed_mid_append_and_the_upload_goes_on_in_a_new_part(
    tmp_path: Path,
) -> None:
    env = {"CARGOHOLD_APPEND_PART_LIMIT": str(SEAL)}
    with Cluster(tmp_path, node_count=4, layout=LAYOUT, env=env) as cluster, cluster.client() as api:
        api.headers["Tus-Resumable"] = VERSION
        assert api.put("/api/v1/buckets/kill").status_code == 201
        data = sample(5 * BLOCK + 100, seed=143)
        url = _create(api, "kill", "survivor.bin", len(data))
        upload_id = url.rsplit("/", 1)[1]
        assert _patch(api, url, 0, data[: 2 * BLOCK]) == 2 * BLOCK
        victim = next(node for node in cluster.nodes if node.share_files())
        address = urlsplit(cluster.url)
        with socket.create_connection((address.hostname, address.port)) as raw:
            raw.sendall(
                (
                    f"PATCH {url} HTTP/1.1\r\nHost: {address.netloc}\r\n"
                    f"Authorization: Bearer {ADMIN_KEY}\r\nTus-Resumable: {VERSION}\r\n"
                    f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {2 * BLOCK}\r\n"
                    f"Content-Length: {2 * BLOCK}\r\n\r\n"
                ).encode()
                + data[2 * BLOCK : 3 * BLOCK]
            )
            # The gateway has the block in hand (and the nodes their append requests): kill one.
            cluster.wait_for(
                lambda: api.get(f"/api/v1/uploads/{upload_id}").json()["bytes_received"] > 2 * BLOCK
            )
            cluster.stop_node(victim, kill=True)
            try:
                raw.sendall(data[3 * BLOCK : 4 * BLOCK])
                raw.recv(65536)
            except OSError:
                pass  # the gateway may answer (503) and close before the rest is sent
        # Nothing of the failed PATCH was acknowledged: the part holds what it held.
        assert _offset(api, url) == 2 * BLOCK
        cluster.wait_for(lambda: sum(n["healthy"] for n in api.get("/api/v1/nodes").json()["nodes"]) == 3)
        client = TusClient(cluster.url + "/tus/", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        uploader = client.uploader(file_stream=io.BytesIO(data), url=cluster.url + url, chunk_size=len(data))
        assert uploader.offset == 2 * BLOCK
        assert _parts(api, upload_id) == [2 * BLOCK]
        uploader.upload()
        assert _object(api, "kill", "survivor.bin") == data


def test_a_second_patch_while_one_is_stored_is_refused(
    cluster: Cluster, api: httpx.Client, bucket: str
) -> None:
    data = sample(2 * BLOCK, seed=144)
    url = _create(api, bucket, "raced.bin", len(data))
    upload_id = url.rsplit("/", 1)[1]
    headers = {
        **STREAM,
        "Upload-Offset": "0",
        "Tus-Resumable": VERSION,
        "Authorization": f"Bearer {ADMIN_KEY}",
    }

    async def race() -> tuple[int, int]:
        release = asyncio.Event()

        async def slow() -> AsyncIterator[bytes]:
            yield data[:BLOCK]
            await release.wait()
            yield data[BLOCK:]

        async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as client:
            first = asyncio.create_task(
                client.patch(url, content=slow(), headers={**headers, "Content-Length": str(len(data))})
            )
            deadline = time.monotonic() + 10
            while (await client.get(f"/api/v1/uploads/{upload_id}", headers=headers)).json()[
                "bytes_received"
            ] == 0:
                assert time.monotonic() < deadline, "the first PATCH never started"
                await asyncio.sleep(0.05)
            second = await client.patch(url, content=data, headers=headers)
            release.set()
            return (await first).status_code, second.status_code

    assert asyncio.run(race()) == (204, 409)
    assert _offset(api, url) == len(data)
    assert _object(api, bucket, "raced.bin") == data
