"""tus 1.0.0 at /tus/ against a real cluster: tuspy, tus-js-client under Node, and raw HTTP."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tusclient.client import TusClient

from cargohold.domain.layout import Layout
from cargohold.testing.cluster import ADMIN_KEY, Cluster
from cargohold.testing.data import sample

MiB = 1024 * 1024
VERSION = "1.0.0"
STREAM = {"Content-Type": "application/offset+octet-stream"}
TUS_JS = Path(__file__).parent / "tus_js"


@pytest.fixture
def tus(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.client() as client:
        client.headers["Tus-Resumable"] = VERSION
        yield client


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _create(tus: httpx.Client, bucket: str, key: str, length: int | None, **headers: str) -> str:
    sizing = {"Upload-Length": str(length)} if length is not None else {"Upload-Defer-Length": "1"}
    reply = tus.post("/tus/", headers={"Upload-Metadata": _meta(bucket=bucket, key=key), **sizing, **headers})
    assert reply.status_code == 201, reply.text
    assert reply.headers["Tus-Resumable"] == VERSION
    location = reply.headers["Location"]
    assert location.startswith("/tus/")
    return location


def _patch(tus: httpx.Client, url: str, offset: int, data: bytes, **headers: str) -> httpx.Response:
    return tus.patch(url, content=data, headers={**STREAM, "Upload-Offset": str(offset), **headers})


def _offset(tus: httpx.Client, url: str) -> int:
    reply = tus.head(url)
    assert reply.status_code == 200, reply.status_code
    return int(reply.headers["Upload-Offset"])


def _object(api: httpx.Client, bucket: str, key: str) -> bytes:
    reply = api.get(f"/api/v1/buckets/{bucket}/objects/{key}")
    assert reply.status_code == 200, reply.text
    return reply.content


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- real clients ------------------------------------------------------------------


def test_tuspy_round_trip(cluster: Cluster, api: httpx.Client, bucket: str) -> None:
    data = sample(3 * MiB + 12345, seed=61)
    client = TusClient(cluster.url + "/tus/", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    uploader = client.uploader(
        file_stream=io.BytesIO(data),
        chunk_size=MiB,
        metadata={"bucket": bucket, "filename": "py/file.bin", "filetype": "application/x-test"},
        upload_checksum=True,  # sha1 per chunk
    )
    uploader.upload()
    assert uploader.offset == len(data)
    assert _sha256(_object(api, bucket, "py/file.bin")) == _sha256(data)
    head = api.head(f"/api/v1/buckets/{bucket}/objects/py/file.bin")
    assert head.headers["Content-Type"].startswith("application/x-test")


def test_tus_js_client_parallel(cluster: Cluster, api: httpx.Client, bucket: str, tmp_path: Path) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("tus-js-client needs node and npm on PATH")
    if not (TUS_JS / "node_modules" / "tus-js-client").is_dir():
        subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=TUS_JS, check=True, timeout=300)
    data = sample(2 * MiB + 777, seed=62)
    path = tmp_path / "js.bin"
    path.write_bytes(data)
    done = subprocess.run(
        [
            node,
            "upload.js",
            cluster.url + "/tus/",
            ADMIN_KEY,
            str(path),
            bucket,
            "js/file.bin",
            str(MiB // 2),
        ],
        cwd=TUS_JS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    final = urlsplit(json.loads(done.stdout)["url"]).path
    with cluster.client() as tus:
        head = tus.head(final, headers={"Tus-Resumable": VERSION})
    assert head.headers["Upload-Concat"] == "final"
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(len(data))
    assert _sha256(_object(api, bucket, "js/file.bin")) == _sha256(data)


# -- core protocol -----------------------------------------------------------------


def test_options_without_auth(cluster: Cluster) -> None:
    with httpx.Client(base_url=cluster.url) as anonymous:
        reply = anonymous.options("/tus/")
    assert reply.status_code == 204
    assert reply.headers["Tus-Resumable"] == reply.headers["Tus-Version"] == VERSION
    assert set(reply.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "expiration",
        "checksum",
        "concatenation",
    }
    assert reply.headers["Tus-Checksum-Algorithm"].split(",") == ["md5", "sha1", "sha256"]
    assert int(reply.headers["Tus-Max-Size"]) > 0


def test_wrong_version_and_missing_auth(cluster: Cluster, bucket: str) -> None:
    headers = {"Upload-Length": "10", "Upload-Metadata": _meta(bucket=bucket, key="v")}
    for version in ("0.2.2", None):
        sent = {**headers, "Tus-Resumable": version} if version else headers
        with cluster.client() as plain:
            reply = plain.post("/tus/", headers=sent)
        assert reply.status_code == 412
        assert reply.headers["Tus-Version"] == reply.headers["Tus-Resumable"] == VERSION
    with httpx.Client(base_url=cluster.url, headers={"Tus-Resumable": VERSION}) as anonymous:
        reply = anonymous.post("/tus/", headers=headers)
    assert reply.status_code == 401
    assert reply.headers["Tus-Resumable"] == VERSION
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert (reply.json()["status"], reply.json()["code"]) == (401, "unauthorized")


def test_creation_errors(tus: httpx.Client, bucket: str) -> None:
    no_bucket = tus.post("/tus/", headers={"Upload-Length": "5", "Upload-Metadata": _meta(key="k")})
    assert no_bucket.status_code == 400 and "bucket" in no_bucket.text
    unknown = tus.post(
        "/tus/", headers={"Upload-Length": "5", "Upload-Metadata": _meta(bucket="no-such-bucket", key="k")}
    )
    assert unknown.status_code == 404 and "no-such-bucket" in unknown.text
    no_length = tus.post("/tus/", headers={"Upload-Metadata": _meta(bucket=bucket, key="k")})
    assert no_length.status_code == 400
    too_big = tus.post(
        "/tus/", headers={"Upload-Length": str(1 << 60), "Upload-Metadata": _meta(bucket=bucket, key="k")}
    )
    assert too_big.status_code == 413


def test_head_patch_and_their_errors(api: httpx.Client, tus: httpx.Client, bucket: str) -> None:
    data = sample(100_000, seed=63)
    url = _create(tus, bucket, "core.bin", len(data))
    head = tus.head(url)
    assert head.status_code == 200 and head.headers["Cache-Control"] == "no-store"
    assert head.headers["Upload-Offset"] == "0" and head.headers["Upload-Length"] == str(len(data))
    assert parsedate_to_datetime(head.headers["Upload-Expires"]) > datetime.now(UTC)
    assert head.headers["Upload-Metadata"] == _meta(bucket=bucket, key="core.bin")
    wrong_type = tus.patch(url, content=data, headers={"Upload-Offset": "0"})
    assert wrong_type.status_code == 415
    wrong_offset = _patch(tus, url, 5, data[5:100])
    assert wrong_offset.status_code == 409 and wrong_offset.json()["code"] == "offset_mismatch"
    # tus 1.0.0: a PATCH without a usable Upload-Offset is 400, which the document lists too.
    for headers in ({}, {"Upload-Offset": "-1"}, {"Upload-Offset": "ten"}):
        no_offset = tus.patch(url, content=data[:10], headers={**STREAM, **headers})
        assert no_offset.status_code == 400 and no_offset.json()["code"] == "invalid_upload_offset"
    first = _patch(tus, url, 0, data[:60_000])
    assert first.status_code == 204 and first.headers["Upload-Offset"] == "60000"
    assert parsedate_to_datetime(first.headers["Upload-Expires"]) > datetime.now(UTC)
    assert _patch(tus, url, 0, data[:10]).status_code == 409
    assert api.get(f"/api/v1/buckets/{bucket}/objects/core.bin").status_code == 404
    last = _patch(tus, url, 60_000, data[60_000:])
    assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(data))
    assert _object(api, bucket, "core.bin") == data
    assert tus.head("/tus/" + "0" * 32).status_code == 404


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
def test_checksum(tus: httpx.Client, bucket: str, algorithm: str) -> None:
    data = sample(70_000, seed=64)
    url = _create(tus, bucket, f"sum-{algorithm}.bin", len(data))

    def header(chunk: bytes) -> str:
        return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, chunk).digest()).decode()}"

    bad = _patch(tus, url, 0, data[:50_000], **{"Upload-Checksum": header(b"something else")})
    assert bad.status_code == 460 and bad.reason_phrase == "Checksum Mismatch"
    assert _offset(tus, url) == 0
    good = _patch(tus, url, 0, data[:50_000], **{"Upload-Checksum": header(data[:50_000])})
    assert good.status_code == 204 and good.headers["Upload-Offset"] == "50000"
    unknown = _patch(tus, url, 50_000, data[50_000:], **{"Upload-Checksum": "crc32 AAAAAA=="})
    assert unknown.status_code == 400
    assert _offset(tus, url) == 50_000


def test_method_override(tus: httpx.Client, bucket: str) -> None:
    data = sample(30_000, seed=65)
    url = _create(tus, bucket, "override.bin", len(data))
    override = {**STREAM, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"}
    reply = tus.post(url, content=data[:10_000], headers=override)
    assert reply.status_code == 204 and reply.headers["Upload-Offset"] == "10000"
    head = tus.post(url, headers={"X-HTTP-Method-Override": "HEAD"})
    assert head.status_code == 200 and head.headers["Upload-Offset"] == "10000"
    gone = tus.post(url, headers={"X-HTTP-Method-Override": "DELETE"})
    assert gone.status_code == 204
    assert tus.head(url).status_code == 404


# -- extensions --------------------------------------------------------------------


def test_creation_with_upload(api: httpx.Client, tus: httpx.Client, bucket: str) -> None:
    data = sample(200_000, seed=66)
    whole = tus.post(
        "/tus/",
        content=data,
        headers={**STREAM, "Upload-Length": str(len(data)), "Upload-Metadata": _meta(bucket=bucket, key="a")},
    )
    assert whole.status_code == 201 and whole.headers["Upload-Offset"] == str(len(data))
    assert _object(api, bucket, "a") == data
    part = tus.post(
        "/tus/",
        content=data[:1000],
        headers={**STREAM, "Upload-Length": str(len(data)), "Upload-Metadata": _meta(bucket=bucket, key="b")},
    )
    assert part.status_code == 201 and part.headers["Upload-Offset"] == "1000"
    url = part.headers["Location"]
    assert _patch(tus, url, 1000, data[1000:]).status_code == 204
    assert _object(api, bucket, "b") == data
    empty = tus.post(
        "/tus/", headers={"Upload-Length": "0", "Upload-Metadata": _meta(bucket=bucket, key="e")}
    )
    assert empty.status_code == 201
    assert _object(api, bucket, "e") == b""


def test_defer_length(api: httpx.Client, tus: httpx.Client, bucket: str) -> None:
    data = sample(150_000, seed=67)
    url = _create(tus, bucket, "deferred.bin", None)
    head = tus.head(url)
    assert head.headers["Upload-Defer-Length"] == "1" and "Upload-Length" not in head.headers
    assert _patch(tus, url, 0, data[:100_000]).status_code == 204
    last = _patch(tus, url, 100_000, data[100_000:], **{"Upload-Length": str(len(data))})
    assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(data))
    assert tus.head(url).headers["Upload-Length"] == str(len(data))
    assert _object(api, bucket, "deferred.bin") == data


def test_termination(tus: httpx.Client, bucket: str) -> None:
    url = _create(tus, bucket, "gone.bin", 50_000)
    assert _patch(tus, url, 0, sample(20_000, seed=68)).status_code == 204
    assert tus.delete(url).status_code == 204
    assert tus.head(url).status_code in (404, 410)
    assert _patch(tus, url, 20_000, sample(30_000, seed=69)).status_code in (404, 410)
    assert tus.delete(url).status_code in (404, 410)


def test_concatenation(cluster: Cluster, api: httpx.Client, tus: httpx.Client, bucket: str) -> None:
    a, b = sample(120_000, seed=70), sample(80_001, seed=71)
    urls = []
    for piece in (a, b):
        url = _create(tus, bucket, "ignored", len(piece), **{"Upload-Concat": "partial"})
        assert _patch(tus, url, 0, piece).status_code == 204
        assert tus.head(url).headers["Upload-Concat"] == "partial"
        urls.append(url)
    assert api.get(f"/api/v1/buckets/{bucket}/objects/ignored").status_code == 404
    unfinished = _create(tus, bucket, "p", 10, **{"Upload-Concat": "partial"})
    refused = tus.post(
        "/tus/",
        headers={
            "Upload-Concat": f"final;{urls[0]} {unfinished}",
            "Upload-Metadata": _meta(bucket=bucket, key="x"),
        },
    )
    assert refused.status_code == 400 and refused.json()["code"] == "missing_parts"
    final = tus.post(
        "/tus/",
        headers={
            "Upload-Concat": f"final;{urls[0]} {cluster.url}{urls[1]}",  # root-relative and absolute
            "Upload-Metadata": _meta(bucket=bucket, key="joined.bin"),
        },
    )
    assert final.status_code == 201, final.text
    assert _object(api, bucket, "joined.bin") == a + b
    location = final.headers["Location"]
    assert _offset(tus, location) == len(a) + len(b)
    assert _patch(tus, location, len(a) + len(b), b"x").status_code == 403


def test_broken_patch_keeps_the_whole_blocks_that_arrived(
    cluster: Cluster, api: httpx.Client, bucket: str
) -> None:
    data = sample(3 * MiB + 5, seed=72)
    block = Layout.parse(cluster.layout).block_size
    with cluster.client() as tus:
        tus.headers["Tus-Resumable"] = VERSION
        url = _create(tus, bucket, "broken.bin", len(data))
        half = len(data) // 2
        address = urlsplit(cluster.url)
        with socket.create_connection((address.hostname, address.port)) as raw:
            raw.sendall(
                (
                    f"PATCH {url} HTTP/1.1\r\nHost: {address.netloc}\r\n"
                    f"Authorization: Bearer {ADMIN_KEY}\r\nTus-Resumable: {VERSION}\r\n"
                    f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n"
                ).encode()
                + data[:half]
            )
            raw.shutdown(socket.SHUT_WR)  # FIN after the bytes: the connection breaks mid-body
        cluster.wait_for(lambda: _offset(tus, url) > 0)
        # The part grows by whole blocks: the tail of the broken PATCH is sent again.
        assert half // block == 1
        assert _offset(tus, url) == block
    client = TusClient(cluster.url + "/tus/", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    uploader = client.uploader(file_stream=io.BytesIO(data), url=cluster.url + url, chunk_size=MiB)
    assert uploader.offset == block
    uploader.upload()
    assert _sha256(_object(api, bucket, "broken.bin")) == _sha256(data)


def test_expired_upload_is_gone(tmp_path: Path) -> None:
    env = {"CARGOHOLD_UPLOAD_TTL": "1", "CARGOHOLD_SWEEP_INTERVAL": "0.5"}
    with Cluster(tmp_path, node_count=3, layout="mirror:2", env=env) as short, short.client() as tus:
        tus.headers["Tus-Resumable"] = VERSION
        assert tus.put("/api/v1/buckets/brief").status_code == 201
        made_after = datetime.now(UTC)
        url = _create(tus, "brief", "late.bin", 20_000)
        head = tus.head(url)
        # The upload's creation time plus its 1 s lifetime, to the second (an HTTP date): not
        # compared with the clock now, which a loaded machine may have moved past it.
        expires = parsedate_to_datetime(head.headers["Upload-Expires"])
        assert expires >= (made_after + timedelta(seconds=1)).replace(microsecond=0)
        short.wait_for(lambda: tus.head(url).status_code == 410, timeout=10)
        assert _patch(tus, url, 0, sample(20_000, seed=73)).status_code == 410
