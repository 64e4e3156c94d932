"""Renames over the native API on a real cluster: metadata only, atomic, within and across buckets."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from cargohold.domain.layout import Layout
from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster
from cargohold.testing.data import sample

BLOCK = Layout.parse("ec:5+2").block_size
API = "/api/v1/buckets"


def _obj(bucket: str, key: str) -> str:
    return f"{API}/{bucket}/objects/{key}"


def _put(api: httpx.Client, bucket: str, key: str, data: bytes) -> str:
    reply = api.put(_obj(bucket, key), content=data)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["version_id"])


def _rename(api: httpx.Client, bucket: str, key: str, **body: object) -> httpx.Response:
    return api.post(f"{API}/{bucket}/rename/{key}", json=body)


def _share_files(cluster: Cluster) -> set[Path]:
    return {p for node in cluster.nodes for p in node.share_files()}


def _other_bucket(api: httpx.Client, bucket: str, suffix: str, layout: str | None = None) -> str:
    name = f"{bucket}-{suffix}"
    reply = api.put(f"{API}/{name}", json={"layout": layout} if layout else None)
    assert reply.status_code == 201, reply.text
    return name


def test_rename_moves_no_bytes(cluster: Cluster, api: httpx.Client, bucket: str) -> None:
    data = sample(2 * BLOCK + 321, seed=31)
    version = _put(api, bucket, "dir/old name.bin", data)
    files = _share_files(cluster)
    moved = _rename(api, bucket, "dir/old name.bin", to_key="new/name.bin")
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert (body["bucket"], body["key"], body["version_id"], body["size"]) == (
        bucket,
        "new/name.bin",
        version,
        len(data),
    )
    assert body["renamed_from"] == {"bucket": bucket, "key": "dir/old name.bin", "delete_marker": None}
    assert moved.headers["x-version-id"] == version
    assert _share_files(cluster) == files  # not one share written or deleted
    got = api.get(_obj(bucket, "new/name.bin"))
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    assert got.headers["x-version-id"] == version
    ranged = api.get(_obj(bucket, "new/name.bin"), headers={"Range": f"bytes={BLOCK}-{BLOCK + 99}"})
    assert ranged.status_code == 206 and ranged.content == data[BLOCK : BLOCK + 100]
    gone = api.get(_obj(bucket, "dir/old name.bin"))
    assert gone.status_code == 404 and gone.json()["code"] == "no_such_key"
    assert "delete_marker" not in gone.json()  # an unversioned bucket leaves no marker
    keys = [o["key"] for o in api.get(f"{API}/{bucket}/objects").json()["objects"]]
    assert keys == ["new/name.bin"]


def test_refuses_to_overwrite_unless_asked(cluster: Cluster, api: httpx.Client, bucket: str) -> None:
    _put(api, bucket, "a", sample(BLOCK + 1, seed=32))
    before = _share_files(cluster)
    _put(api, bucket, "b", sample(BLOCK + 2, seed=33))
    b_files = _share_files(cluster) - before
    refused = _rename(api, bucket, "a", to_key="b")
    assert refused.status_code == 409 and refused.json()["code"] == "key_exists"
    assert api.get(_obj(bucket, "a")).content == sample(BLOCK + 1, seed=32)  # nothing changed
    assert api.get(_obj(bucket, "b")).content == sample(BLOCK + 2, seed=33)
    done = _rename(api, bucket, "a", to_key="b", overwrite=True)
    assert done.status_code == 200, done.text
    assert api.get(_obj(bucket, "b")).content == sample(BLOCK + 1, seed=32)
    assert api.get(_obj(bucket, "a")).status_code == 404
    cluster.wait_for(lambda: not b_files & _share_files(cluster), timeout=20)  # the replaced one is freed


def test_across_buckets_of_one_layout(api: httpx.Client, bucket: str) -> None:
    other = _other_bucket(api, bucket, "to")
    version = _put(api, bucket, "travels", b"small enough to be inline")
    moved = _rename(api, bucket, "travels", to_bucket=other, to_key="arrived")
    assert moved.status_code == 200, moved.text
    assert moved.json()["bucket"] == other and moved.json()["version_id"] == version
    assert api.get(_obj(other, "arrived")).content == b"small enough to be inline"
    assert api.get(_obj(bucket, "travels")).status_code == 404
    # Without to_key's bucket the move stays in the source bucket.
    back = _rename(api, other, "arrived", to_key="stays")
    assert back.status_code == 200 and back.json()["bucket"] == other

    mirrored = _other_bucket(api, bucket, "mirror", layout="mirror:2")
    _put(api, bucket, "x", b"x")
    mismatch = _rename(api, bucket, "x", to_bucket=mirrored, to_key="x")
    assert mismatch.status_code == 409 and mismatch.json()["code"] == "layout_mismatch"
    assert api.get(_obj(bucket, "x")).content == b"x"


def test_versioned_source_keeps_its_history(api: httpx.Client, bucket: str) -> None:
    assert api.put(f"{API}/{bucket}/versioning", json={"status": "enabled"}).status_code == 200
    v1 = _put(api, bucket, "hist", b"one")
    v2 = _put(api, bucket, "hist", b"two")
    dest = _put(api, bucket, "dest", b"dest")
    moved = _rename(api, bucket, "hist", to_key="dest", overwrite=True)
    assert moved.status_code == 200, moved.text
    marker = moved.json()["renamed_from"]["delete_marker"]
    assert marker is not None
    source = api.get(_obj(bucket, "hist"), params={"versions": ""}).json()["versions"]
    assert [(v["version_id"], v["delete_marker"]) for v in source] == [(marker, True), (v1, False)]
    missing = api.get(_obj(bucket, "hist"))
    assert missing.status_code == 404 and missing.json()["delete_marker"] is True
    target = api.get(_obj(bucket, "dest"), params={"versions": ""}).json()["versions"]
    assert [(v["version_id"], v["is_latest"]) for v in target] == [(v2, True), (dest, False)]
    assert api.get(_obj(bucket, "dest"), params={"version_id": dest}).content == b"dest"
    again = _rename(api, bucket, "hist", to_key="elsewhere")  # the source reads as deleted
    assert again.status_code == 404 and again.json()["code"] == "no_such_key"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid_argument"),
        ({"to_key": 7}, 400, "invalid_argument"),
        ({"to_key": "k", "overwrite": "yes"}, 400, "invalid_argument"),
        ({"to_key": "src"}, 409, "same_object"),
        ({"to_key": "src", "overwrite": True}, 409, "same_object"),
        ({"to_key": "../up"}, 400, "invalid_key"),
        ({"to_key": "k", "to_bucket": "no-such-bucket-anywhere"}, 404, "no_such_bucket"),
    ],
)
def test_bad_renames(api: httpx.Client, bucket: str, body: dict, status: int, code: str) -> None:
    _put(api, bucket, "src", b"s")
    reply = _rename(api, bucket, "src", **body)
    assert reply.status_code == status and reply.json()["code"] == code, reply.text
    nothing = _rename(api, bucket, "never-was", to_key="k")
    assert nothing.status_code == 404 and nothing.json()["code"] == "no_such_key"


def test_no_key_collides_with_an_action(api: httpx.Client, bucket: str) -> None:
    """Actions name themselves before the key: a key ending in "rename" is just a key."""
    assert api.post(_obj(bucket, "k")).status_code == 405
    stored = api.put(_obj(bucket, "x/rename"), content=b"a key that ends in rename")
    assert stored.status_code == 201 and stored.json()["key"] == "x/rename"
    _put(api, bucket, "x", b"x itself")
    refused = api.post(_obj(bucket, "x/rename"), json={"to_key": "y"})  # not an action on x
    assert (refused.status_code, refused.json()["code"]) == (405, "method_not_allowed")
    assert api.get(_obj(bucket, "x")).content == b"x itself"
    moved = _rename(api, bucket, "x/rename", to_key="x/restore")
    assert moved.status_code == 200 and moved.json()["key"] == "x/restore"
    assert api.get(_obj(bucket, "x/restore")).content == b"a key that ends in rename"
    assert api.get(_obj(bucket, "x")).content == b"x itself"


def test_rename_needs_write_on_both_buckets(cluster: Cluster, api: httpx.Client, bucket: str) -> None:
    target = _other_bucket(api, bucket, "dst")
    _put(api, bucket, "mine", b"m")
    name = "mover-" + hashlib.sha256(bucket.encode()).hexdigest()[:6]
    token = make_user(api, name)

    def grant(on: str, level: str) -> None:
        reply = api.post(f"{API}/{on}/grants", json={"user": name, "level": level})
        assert reply.status_code == 201, reply.text

    with cluster.client(token) as mover:
        unseen = _rename(mover, bucket, "mine", to_bucket=target, to_key="t")
        assert unseen.status_code == 404 and unseen.json()["code"] == "no_such_bucket"
        grant(bucket, "read")
        reader = _rename(mover, bucket, "mine", to_bucket=target, to_key="t")
        assert reader.status_code == 403 and reader.json()["code"] == "access_denied"
        grant(bucket, "write")
        no_target = _rename(mover, bucket, "mine", to_bucket=target, to_key="t")
        assert no_target.status_code == 404 and no_target.json()["code"] == "no_such_bucket"
        grant(target, "read")
        read_target = _rename(mover, bucket, "mine", to_bucket=target, to_key="t")
        assert read_target.status_code == 403 and read_target.json()["code"] == "access_denied"
        grant(target, "write")
        done = _rename(mover, bucket, "mine", to_bucket=target, to_key="t")
        assert done.status_code == 200, done.text
    assert api.get(_obj(target, "t")).content == b"m"
    with cluster.client(None) as anonymous:
        assert _rename(anonymous, target, "t", to_key="u").status_code == 401
