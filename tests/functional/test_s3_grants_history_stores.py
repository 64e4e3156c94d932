"""S3 as another way in to the same store: grants decide as natively, calls land in the history,
and the main flow runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster
from tests.conftest import BOTH_STORES, store_url
from tests.functional.s3kit import refused, s3_for

MIB = 1024 * 1024
BUCKET = "s3-shared"


@pytest.fixture(scope="module", params=BOTH_STORES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with (
        store_url(request, request.param) as url,
        Cluster(tmp_path_factory.mktemp("s3"), db_url=url) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def people(cluster: Cluster) -> dict[str, tuple[httpx.Client, Any]]:
    """owner, reader (read grant), writer (write grant), stranger: a native client and an S3 client each."""
    found: dict[str, tuple[httpx.Client, Any]] = {}
    with cluster.client() as admin:
        for name in ("owner", "reader", "writer", "stranger"):
            user = f"s3-{name}"
            token = make_user(admin, user)
            found[name] = (cluster.client(token), s3_for(cluster, admin, user))
    owner_native, owner = found["owner"]
    owner.create_bucket(Bucket=BUCKET)
    owner.put_object(Bucket=BUCKET, Key="doc", Body=b"shared")
    for name, level in (("reader", "read"), ("writer", "write")):
        granted = owner_native.post(
            f"/api/v1/buckets/{BUCKET}/grants", json={"user": f"s3-{name}", "level": level}
        )
        assert granted.status_code == 201, granted.text
    return found


def test_main_flow(cluster: Cluster, people: dict[str, tuple[httpx.Client, Any]]) -> None:
    _, s3 = people["owner"]
    s3.create_bucket(Bucket="s3-flow")
    data = os.urandom(3 * MIB)
    assert (
        s3.put_object(Bucket="s3-flow", Key="dir/a", Body=data)["ETag"]
        == f'"{hashlib.md5(data).hexdigest()}"'
    )
    s3.put_object(Bucket="s3-flow", Key="dir/b", Body=b"small")
    assert s3.get_object(Bucket="s3-flow", Key="dir/a", Range="bytes=5-9")["Body"].read() == data[5:10]
    listed = s3.list_objects_v2(Bucket="s3-flow", Prefix="dir/")
    assert [(o["Key"], o["Size"]) for o in listed["Contents"]] == [("dir/a", len(data)), ("dir/b", 5)]
    upload_id = s3.create_multipart_upload(Bucket="s3-flow", Key="mp")["UploadId"]
    parts = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(Bucket="s3-flow", Key="mp", UploadId=upload_id, PartNumber=n, Body=body)[
                "ETag"
            ],
        }
        for n, body in ((1, data[: 5 * MIB] + os.urandom(5 * MIB - len(data))), (2, b"end"))
    ]
    s3.complete_multipart_upload(
        Bucket="s3-flow", Key="mp", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    assert s3.head_object(Bucket="s3-flow", Key="mp")["ContentLength"] == 5 * MIB + 3
    s3.copy_object(Bucket="s3-flow", Key="copy", CopySource={"Bucket": "s3-flow", "Key": "dir/a"})
    assert s3.get_object(Bucket="s3-flow", Key="copy")["Body"].read() == data
    deleted = s3.delete_objects(
        Bucket="s3-flow", Delete={"Objects": [{"Key": k} for k in ("dir/a", "dir/b", "mp", "copy")]}
    )
    assert len(deleted["Deleted"]) == 4
    s3.delete_bucket(Bucket="s3-flow")


def _native(client: httpx.Client, method: str, path: str, **kwargs: Any) -> tuple[int, str | None]:
    reply = client.request(method, f"/api/v1/buckets/{BUCKET}{path}", **kwargs)
    return reply.status_code, reply.json().get("code") if reply.status_code >= 400 else None


def test_grants_answer_as_natively(people: dict[str, tuple[httpx.Client, Any]]) -> None:
    """Each user asks the same things both ways; the S3 codes are the native codes' S3 names."""
    s3_of = {"no_such_bucket": ("NoSuchBucket", 404), "access_denied": ("AccessDenied", 403)}
    for name, wants in (
        ("reader", {"read": None, "write": "access_denied", "versioning": "access_denied"}),
        ("writer", {"read": None, "write": None, "versioning": "access_denied"}),
        ("stranger", {"read": "no_such_bucket", "write": "no_such_bucket", "versioning": "no_such_bucket"}),
    ):
        native, s3 = people[name]
        read = _native(native, "GET", "/objects/doc")
        write = _native(native, "PUT", f"/objects/by-{name}", content=b"x")
        versioning = _native(native, "PUT", "/versioning", json={"status": "enabled"})
        assert (read[1], write[1], versioning[1]) == (wants["read"], wants["write"], wants["versioning"]), (
            name
        )
        if wants["read"] is None:
            assert s3.get_object(Bucket=BUCKET, Key="doc")["Body"].read() == b"shared"
        else:
            assert refused(s3.get_object, Bucket=BUCKET, Key="doc") == s3_of[wants["read"]]
        if wants["write"] is None:
            s3.put_object(Bucket=BUCKET, Key=f"s3-by-{name}", Body=b"x")
        else:
            assert (
                refused(s3.put_object, Bucket=BUCKET, Key=f"s3-by-{name}", Body=b"x") == s3_of[wants["write"]]
            )
        enabled = {"Status": "Enabled"}
        code = refused(s3.put_bucket_versioning, Bucket=BUCKET, VersioningConfiguration=enabled)
        assert code == s3_of[wants["versioning"]]


def test_s3_calls_are_in_the_history(cluster: Cluster, people: dict[str, tuple[httpx.Client, Any]]) -> None:
    native, s3 = people["writer"]
    s3.put_object(Bucket=BUCKET, Key="hist/obj", Body=b"12345")
    s3.get_object(Bucket=BUCKET, Key="hist/obj")["Body"].read()
    s3.head_object(Bucket=BUCKET, Key="hist/obj")
    s3.list_objects_v2(Bucket=BUCKET, Prefix="hist/")
    refused(s3.get_object, Bucket=BUCKET, Key="hist/none")
    s3.delete_object(Bucket=BUCKET, Key="hist/obj")
    wanted = [
        ("object.create", "hist/obj", "ok", 200, 5),
        ("object.read", "hist/obj", "ok", 200, 5),
        ("object.stat", "hist/obj", "ok", 200, 5),
        ("object.list", None, "ok", 200, None),
        ("object.read", "hist/none", "no_such_key", 404, None),
        ("object.delete", "hist/obj", "ok", 204, 5),
    ]

    def rows() -> list[tuple[Any, ...]]:
        page = native.get(
            "/api/v1/history", params={"bucket": BUCKET, "user": "s3-writer", "limit": 50}
        ).json()
        return [
            (e["action"], e["key"], e["result"], e["status"], e["size"])
            for e in reversed(page["events"])
            if (e["key"] or "").startswith("hist/") or e["action"] == "object.list"
        ]

    cluster.wait_for(lambda: len(rows()) >= len(wanted), timeout=15)
    assert rows() == wanted, rows()
