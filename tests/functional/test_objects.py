"""Round trips, ranges, listing and every bad input of the native API, on a real cluster."""

from __future__ import annotations

import base64
import hashlib
import re
import socket

import httpx
import pytest

from cargohold.domain.layout import Layout
from cargohold.testing.cluster import Cluster
from cargohold.testing.data import sample

BLOCK = Layout.parse("ec:5+2").block_size
SIZES = [0, 1, 4096, 32 * 1024 + 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12345]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(api: httpx.Client, bucket: str, size: int) -> None:
    data = sample(size, seed=size)
    url = f"/api/v1/buckets/{bucket}/objects/dir/file-{size}.bin"
    reply = api.put(url, content=data, headers={"Content-Type": "video/x-test"})
    assert reply.status_code == 201, reply.text
    assert reply.json()["size"] == size
    got = api.get(url)
    assert got.status_code == 200
    assert got.headers["content-length"] == str(size)
    assert got.headers["content-type"] == "video/x-test"
    assert got.headers["etag"] == reply.headers["etag"]
    assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(data).hexdigest()
    head = api.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(size)


def test_chunked_upload_without_length(api: httpx.Client, bucket: str) -> None:
    data = sample(2 * BLOCK + 77, seed=9)

    def body():  # type: ignore[no-untyped-def]
        for i in range(0, len(data), 100_000):
            yield data[i : i + 100_000]

    url = f"/api/v1/buckets/{bucket}/objects/chunked"
    assert api.put(url, content=body()).status_code == 201
    assert api.get(url).content == data


def test_replace_object(api: httpx.Client, bucket: str) -> None:
    url = f"/api/v1/buckets/{bucket}/objects/same"
    api.put(url, content=sample(BLOCK * 2, seed=1))
    api.put(url, content=sample(BLOCK + 5, seed=2))
    assert api.get(url).content == sample(BLOCK + 5, seed=2)


RANGE_SIZE = 3 * BLOCK + 999


@pytest.fixture(scope="module")
def ranged(cluster: Cluster) -> tuple[str, bytes]:
    data = sample(RANGE_SIZE, seed=42)
    with cluster.client() as api:
        api.put("/api/v1/buckets/ranges")
        url = "/api/v1/buckets/ranges/objects/big"
        assert api.put(url, content=data).status_code == 201
    return url, data


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=0-1023", 0, 1023),
        (f"bytes={BLOCK - 10}-{BLOCK + 10}", BLOCK - 10, BLOCK + 10),
        (f"bytes={BLOCK}-{2 * BLOCK - 1}", BLOCK, 2 * BLOCK - 1),
        (f"bytes={2 * BLOCK + 5}-", 2 * BLOCK + 5, RANGE_SIZE - 1),
        ("bytes=-100", RANGE_SIZE - 100, RANGE_SIZE - 1),
        (f"bytes=-{RANGE_SIZE + 50}", 0, RANGE_SIZE - 1),
        (f"bytes=100-{RANGE_SIZE + 1000}", 100, RANGE_SIZE - 1),
    ],
)
def test_range_forms(api: httpx.Client, ranged: tuple[str, bytes], header: str, start: int, end: int) -> None:
    url, data = ranged
    got = api.get(url, headers={"Range": header})
    assert got.status_code == 206
    assert got.headers["content-range"] == f"bytes {start}-{end}/{RANGE_SIZE}"
    assert got.content == data[start : end + 1]


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (f"bytes={RANGE_SIZE}-", "range_not_satisfiable"),
        ("bytes=-0", "range_not_satisfiable"),
        ("bytes=5-2", "invalid_range"),
        ("items=0-5", "invalid_range"),
        ("bytes=0-1,5-6", "invalid_range"),
    ],
)
def test_bad_ranges(api: httpx.Client, ranged: tuple[str, bytes], header: str, code: str) -> None:
    got = api.get(ranged[0], headers={"Range": header})
    assert got.status_code == 416
    assert got.headers["content-type"].startswith("application/problem+json")
    assert got.json()["code"] == code


def test_conditional_get(api: httpx.Client, ranged: tuple[str, bytes]) -> None:
    etag = api.head(ranged[0]).headers["etag"]
    assert api.get(ranged[0], headers={"If-None-Match": etag}).status_code == 304
    assert api.get(ranged[0], headers={"If-None-Match": '"other"'}).status_code == 200


def test_listing_with_delimiter_and_pages(api: httpx.Client, bucket: str) -> None:
    keys = [f"a/{i:02d}" for i in range(5)] + ["b/x", "b/y/z", "c", "d"]
    for key in keys:
        assert api.put(f"/api/v1/buckets/{bucket}/objects/{key}", content=b"x").status_code == 201
    top = api.get(f"/api/v1/buckets/{bucket}/objects", params={"delimiter": "/"}).json()
    assert top["common_prefixes"] == ["a/", "b/"]
    assert [o["key"] for o in top["objects"]] == ["c", "d"]
    seen, cursor = [], None
    while True:
        params = {"prefix": "a/", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"/api/v1/buckets/{bucket}/objects", params=params).json()
        seen += [o["key"] for o in page["objects"]]
        cursor = page["next_cursor"]
        if not page["truncated"]:
            break
    assert seen == keys[:5]
    # A page holds 1 to 1000 entries, as the document says; the refusal names the parameter.
    for limit in (0, 1001):
        refused = api.get(f"/api/v1/buckets/{bucket}/objects", params={"limit": limit, "prefix": "a" * 1024})
        problem = refused.json()
        assert (refused.status_code, problem["code"], problem["field"]) == (400, "invalid_argument", "limit")
    full = api.get(f"/api/v1/buckets/{bucket}/objects", params={"limit": 1000, "prefix": "a" * 1024})
    assert (full.status_code, full.json()["objects"]) == (200, [])


def test_checksums_verified(api: httpx.Client, bucket: str) -> None:
    data = sample(BLOCK + 3, seed=5)
    url = f"/api/v1/buckets/{bucket}/objects/checked"
    good_md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    ok = api.put(
        url,
        content=data,
        headers={"Content-MD5": good_md5, "x-checksum-sha256": hashlib.sha256(data).hexdigest()},
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["md5"] == hashlib.md5(data).hexdigest()
    bad = api.put(f"{url}-bad", content=data, headers={"x-checksum-sha256": "0" * 64})
    assert bad.status_code == 400 and bad.json()["code"] == "bad_digest"
    assert api.head(f"{url}-bad").status_code == 404
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    small = api.put(f"{url}-small", content=b"tiny", headers={"Content-MD5": wrong_md5})
    assert small.status_code == 400 and small.json()["code"] == "bad_digest"
    assert api.get(f"{url}-small").status_code == 404
    malformed = api.put(url, content=b"x", headers={"Content-MD5": "not base64!"})
    assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_digest_header"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/buckets/nope-bucket/objects/x", 404, "no_such_bucket"),
        ("PUT", "/api/v1/buckets/nope-bucket/objects/x", 404, "no_such_bucket"),
        ("GET", "/api/v1/buckets/nope-bucket/objects", 404, "no_such_bucket"),
        ("PUT", "/api/v1/buckets/Bad_Name", 400, "invalid_bucket_name"),
        ("PUT", "/api/v1/buckets/ab", 400, "invalid_bucket_name"),
        ("GET", "/api/v1/nowhere", 404, "route_not_found"),
        ("PATCH", "/api/v1/nodes/999999", 404, "no_such_node"),
    ],
)
def test_bad_requests(api: httpx.Client, method: str, path: str, status: int, code: str) -> None:
    if method == "PATCH":
        reply = api.patch(path, json={"active": False})
    else:
        reply = api.request(method, path, content=b"x" if method == "PUT" else None)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["code"] == code


@pytest.mark.parametrize("key", ["a//b", "../etc/passwd", "a/./b", "x/../y", "tab\there", "/lead"])
def test_bad_keys(api: httpx.Client, bucket: str, key: str) -> None:
    from urllib.parse import quote

    # Dots are percent-encoded so the client cannot normalise them away before the server sees them.
    encoded = quote(key, safe="/").replace(".", "%2E")
    reply = api.put(f"/api/v1/buckets/{bucket}/objects/" + encoded, content=b"x")
    assert reply.status_code == 400, reply.text
    assert reply.json()["code"] == "invalid_key"


def test_unknown_key(api: httpx.Client, bucket: str) -> None:
    for method in ("GET", "DELETE"):
        reply = api.request(method, f"/api/v1/buckets/{bucket}/objects/missing")
        assert reply.status_code == 404 and reply.json()["code"] == "no_such_key"
    assert api.head(f"/api/v1/buckets/{bucket}/objects/missing").status_code == 404


def test_auth_required(cluster: Cluster, bucket: str) -> None:
    paths = ["/api/v1/buckets", f"/api/v1/buckets/{bucket}/objects/x", "/api/v1/nodes"]
    with cluster.client(key=None) as anonymous:
        for path in paths:
            reply = anonymous.get(path)
            assert reply.status_code == 401 and reply.json()["code"] == "unauthorized"
        reply = anonymous.get(paths[0], headers={"Authorization": "Basic abc"})
        assert reply.status_code == 401
    for wrong in ("CHNOPE.secret", cluster_key_with_wrong_secret(), "no-dot"):
        with cluster.client(key=wrong) as client:
            reply = client.get(paths[0])
            assert reply.status_code == 401 and reply.json()["code"] == "invalid_credentials"


def cluster_key_with_wrong_secret() -> str:
    from cargohold.testing.cluster import ADMIN_KEY

    return ADMIN_KEY.split(".")[0] + ".wrong-secret"


def test_bucket_lifecycle(api: httpx.Client) -> None:
    assert api.put("/api/v1/buckets/life-cycle", json={"layout": "mirror:3"}).status_code == 201
    again = api.put("/api/v1/buckets/life-cycle")
    assert again.status_code == 409 and again.json()["code"] == "bucket_exists"
    names = [b["name"] for b in api.get("/api/v1/buckets").json()["buckets"]]
    assert "life-cycle" in names
    api.put("/api/v1/buckets/life-cycle/objects/k", content=sample(BLOCK + 1))
    assert api.get("/api/v1/buckets/life-cycle/objects/k").content == sample(BLOCK + 1)
    busy = api.delete("/api/v1/buckets/life-cycle")
    assert busy.status_code == 409 and busy.json()["code"] == "bucket_not_empty"
    assert api.delete("/api/v1/buckets/life-cycle/objects/k").status_code == 204
    assert api.delete("/api/v1/buckets/life-cycle").status_code == 204
    bad = api.put("/api/v1/buckets/bad-layout", json={"layout": "ec:5+0"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_layout"
    # Eight nodes: a write of ec:10+2 needs eleven, so every write would be 503; refused now.
    wide = api.put("/api/v1/buckets/too-wide", json={"layout": "ec:10+2"})
    assert wide.status_code == 409 and wide.json()["code"] == "layout_too_wide"
    assert (wide.json()["needed"], wide.json()["available"]) == (11, 8)
    assert api.get("/api/v1/buckets/too-wide/versioning").status_code == 404
    assert api.put("/api/v1/buckets/wide-enough", json={"layout": "ec:7+3"}).status_code == 201


@pytest.mark.parametrize(("layout", "width"), [("mirror:2", 2), ("stripe:4", 4), ("ec:3+2", 5)])
def test_other_layouts(cluster: Cluster, api: httpx.Client, layout: str, width: int) -> None:
    name = "layout-" + layout.replace(":", "-").replace("+", "-")
    api.put(f"/api/v1/buckets/{name}", json={"layout": layout})
    data = sample(2 * 1024 * 1024 + 7, seed=3)
    before = {p for n in cluster.nodes for p in n.share_files()}
    assert api.put(f"/api/v1/buckets/{name}/objects/f", content=data).status_code == 201
    new = {p for n in cluster.nodes for p in n.share_files()} - before
    assert len(new) == width  # one share file per share of the bucket's layout
    assert api.get(f"/api/v1/buckets/{name}/objects/f").content == data
    got = api.get(f"/api/v1/buckets/{name}/objects/f", headers={"Range": "bytes=1048570-1048590"})
    assert got.content == data[1048570:1048591]


def test_openapi_and_docs(cluster: Cluster) -> None:
    with httpx.Client(base_url=cluster.url) as anonymous:
        doc = anonymous.get("/openapi.json").json()
        assert "/api/v1/buckets/{bucket}/objects/{key}" in doc["paths"]
        assert anonymous.get("/docs").status_code == 200


def _every_protected_call() -> list[tuple[str, str]]:
    """Every documented native operation the OpenAPI document does not mark public.

    S3 operations authenticate with SigV4 instead (``test_s3_auth.py``).
    """
    from cargohold.api.openapi import openapi_document

    return [
        (method.upper(), path)
        for path, operations in openapi_document()["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") not in ([], [{"sigv4": []}])
    ]


PATH_VALUES = {"bucket": "media", "key": "a/b", "node_id": "1", "upload_id": "0" * 32, "number": "1"}


def fill_path(path: str) -> str:
    """A concrete URL for a route path: known parameters get real-looking values, others "x1"."""
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: PATH_VALUES.get(m.group(1), "x1"), path)


@pytest.mark.parametrize(("method", "path"), _every_protected_call())
def test_every_call_needs_a_key(cluster: Cluster, method: str, path: str) -> None:
    concrete = fill_path(path)
    headers = {"Tus-Resumable": "1.0.0"} if concrete.startswith("/tus") else {}
    with cluster.client(key=None) as anonymous:
        reply = anonymous.request(method, concrete, headers=headers)
        assert reply.status_code == 401, (method, concrete, reply.text)
    with cluster.client(key=cluster_key_with_wrong_secret()) as wrong:
        assert wrong.request(method, concrete, headers=headers).status_code == 401


def test_oversize_objects_are_refused(cluster: Cluster, bucket: str) -> None:
    from urllib.parse import urlparse

    from cargohold.testing.cluster import ADMIN_KEY
    from tests.functional.conftest import MAX_OBJECT

    path = f"/api/v1/buckets/{bucket}/objects/huge"
    target = urlparse(cluster.url)
    # Announced too large: refused before a byte of the body is read.
    with socket.create_connection((target.hostname, target.port)) as conn:
        conn.sendall(
            f"PUT {path} HTTP/1.1\r\nHost: {target.netloc}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
            f"Content-Length: {MAX_OBJECT + 1}\r\n\r\n".encode()
        )
        head = conn.recv(65536).decode(errors="replace")
    assert head.startswith("HTTP/1.1 413") and "payload_too_large" in head

    def chunked():  # type: ignore[no-untyped-def]
        block = sample(1 << 20, seed=77)
        for _ in range(MAX_OBJECT // len(block) + 1):
            yield block

    with cluster.client() as api:
        reply = api.put(path, content=chunked())
        assert reply.status_code == 413 and reply.json()["code"] == "payload_too_large"
        assert api.head(path).status_code == 404
