"""Bucket versioning over the native API, on a real cluster with each metadata store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cargohold.domain.layout import Layout
from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster
from cargohold.testing.data import sample
from tests.conftest import BOTH_STORES, store_url

BLOCK = Layout.parse("ec:5+2").block_size
API = "/api/v1/buckets"


def _restore(object_url: str) -> str:
    """The restore action of the object at ``object_url`` (the action comes before the key)."""
    return object_url.replace("/objects/", "/restore/", 1)


@pytest.fixture(scope="module", params=BOTH_STORES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Every versioning test runs once on SQLite and once on PostgreSQL."""
    with store_url(request, request.param) as url, Cluster(tmp_path_factory.mktemp("ver"), db_url=url) as c:
        yield c


def _versioned(api: httpx.Client, bucket: str) -> None:
    reply = api.put(f"{API}/{bucket}/versioning", json={"status": "enabled"})
    assert reply.status_code == 200 and reply.json()["status"] == "enabled", reply.text


def _put(api: httpx.Client, url: str, data: bytes) -> str:
    reply = api.put(url, content=data)
    assert reply.status_code == 201, reply.text
    version = reply.headers["x-version-id"]
    assert reply.json()["version_id"] == version and len(version) == 32
    return version


def _versions(api: httpx.Client, url: str) -> list[tuple[str, bool, bool]]:
    reply = api.get(url, params={"versions": ""})
    assert reply.status_code == 200, reply.text
    return [(v["version_id"], v["is_latest"], v["delete_marker"]) for v in reply.json()["versions"]]


def _share_files(cluster: Cluster) -> set[Path]:
    return {p for node in cluster.nodes for p in node.share_files()}


def _gc_has_run(cluster: Cluster, api: httpx.Client, bucket: str) -> None:
    """Queue a deletion behind everything queued so far and wait until gc has done it.

    The control bucket does not version, so replacing its object frees the
    first copy's shares: once those are gone, any deletion queued earlier is
    done too. What is still on disk then was not queued at all.
    """
    control = f"{bucket}-gc"
    if api.get(f"{API}/{control}/versioning").status_code == 404:
        assert api.put(f"{API}/{control}").status_code == 201
    url = f"{API}/{control}/objects/control"
    before = _share_files(cluster)
    _put(api, url, sample(2 * BLOCK, seed=99))
    first = _share_files(cluster) - before
    assert first
    _put(api, url, sample(BLOCK + 1, seed=98))
    cluster.wait_for(lambda: not first & _share_files(cluster), timeout=20)


def _put_counting(cluster: Cluster, api: httpx.Client, url: str, data: bytes) -> tuple[str, set[Path]]:
    """PUT a version; returns its id and the share files it added."""
    before = _share_files(cluster)
    version = _put(api, url, data)
    return version, _share_files(cluster) - before


def test_versioning_status_on_off(api: httpx.Client, bucket: str) -> None:
    url = f"{API}/{bucket}/versioning"
    assert api.get(url).json() == {"bucket": bucket, "status": "off"}
    assert api.put(url, json={"status": "off"}).json()["status"] == "off"  # never on: nothing to suspend
    assert api.put(url, json={"status": "on"}).json()["status"] == "enabled"
    assert api.get(url).json()["status"] == "enabled"
    assert api.put(url, json={"status": "suspended"}).json()["status"] == "suspended"
    assert api.put(url, json={"status": "enabled"}).json()["status"] == "enabled"
    bad = api.put(url, json={"status": "sometimes"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_argument"
    assert api.put(url, json={}).status_code == 400
    assert api.get(f"{API}/no-such-bucket-here/versioning").json()["code"] == "no_such_bucket"


def test_versions_list_read_delete_restore(api: httpx.Client, bucket: str) -> None:
    _versioned(api, bucket)
    url = f"{API}/{bucket}/objects/doc/report.bin"
    big, bigger, tiny = sample(2 * BLOCK + 123, seed=1), sample(3 * BLOCK + 7, seed=2), b"tiny v3"
    v1, v2, v3 = _put(api, url, big), _put(api, url, bigger), _put(api, url, tiny)
    assert _versions(api, url) == [(v3, True, False), (v2, False, False), (v1, False, False)]
    listed = api.get(url, params={"versions": ""}).json()
    assert [v["size"] for v in listed["versions"]] == [len(tiny), len(bigger), len(big)]
    assert listed["key"] == "doc/report.bin" and listed["truncated"] is False

    # Reads: the latest by default, any version by id, with its own size, ETag and ranges.
    latest = api.get(url)
    assert latest.content == tiny and latest.headers["x-version-id"] == v3
    old = api.get(url, params={"version_id": v1})
    assert old.status_code == 200 and old.content == big and old.headers["x-version-id"] == v1
    part = api.get(url, params={"version_id": v1}, headers={"Range": f"bytes={BLOCK - 10}-{BLOCK + 10}"})
    assert part.status_code == 206 and part.content == big[BLOCK - 10 : BLOCK + 11]
    assert part.headers["content-range"] == f"bytes {BLOCK - 10}-{BLOCK + 10}/{len(big)}"
    tail = api.get(url, params={"version_id": v2}, headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == bigger[-100:]
    head = api.head(url, params={"version_id": v2})
    assert head.status_code == 200 and head.headers["content-length"] == str(len(bigger))
    assert head.headers["x-version-id"] == v2 and head.headers["etag"] != latest.headers["etag"]
    cached = api.get(url, params={"version_id": v1}, headers={"If-None-Match": old.headers["etag"]})
    assert cached.status_code == 304
    unknown = api.get(url, params={"version_id": "0" * 32})
    assert unknown.status_code == 404 and unknown.json()["code"] == "no_such_version"
    assert api.head(url, params={"version_id": "0" * 32}).status_code == 404
    malformed = api.get(url, params={"version_id": "v1"})
    assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_version_id"

    # A plain DELETE adds a delete marker; every version stays readable by id.
    gone = api.delete(url)
    assert gone.status_code == 204 and gone.headers["x-delete-marker"] == "true"
    marker = gone.headers["x-version-id"]
    missing = api.get(url)
    assert missing.status_code == 404 and missing.json()["code"] == "no_such_key"
    assert missing.json()["delete_marker"] is True and missing.headers["x-delete-marker"] == "true"
    head_missing = api.head(url)
    assert head_missing.status_code == 404 and head_missing.headers["x-delete-marker"] == "true"
    as_version = api.get(url, params={"version_id": marker})
    assert as_version.status_code == 404 and as_version.json()["delete_marker"] is True
    assert api.get(url, params={"version_id": v2}).content == bigger
    listing = api.get(f"{API}/{bucket}/objects", params={"prefix": "doc/"}).json()
    assert listing["objects"] == []  # a deleted key is not listed
    assert api.delete(url).status_code == 404  # deleting a deleted key
    assert _versions(api, url)[0] == (marker, True, True)

    # Restore: a marker cannot be restored; a version can, and the former latest stays.
    refused = api.post(_restore(url), json={"version_id": marker})
    assert refused.status_code == 400 and refused.json()["code"] == "delete_marker_not_restorable"
    no_body = api.post(_restore(url), json={})
    assert no_body.status_code == 400
    nowhere = api.post(_restore(url), json={"version_id": "1" * 32})
    assert nowhere.status_code == 404 and nowhere.json()["code"] == "no_such_version"
    restored = api.post(_restore(url), json={"version_id": v1})
    assert restored.status_code == 200, restored.text
    assert restored.json()["version_id"] == v1 and restored.headers["x-version-id"] == v1
    assert api.get(url).content == big
    assert _versions(api, url) == [
        (v1, True, False),
        (marker, False, True),
        (v3, False, False),
        (v2, False, False),
    ]

    # DELETE ?version_id= removes exactly that version; the newest left takes over.
    removed = api.delete(url, params={"version_id": v1})
    assert removed.status_code == 204 and removed.headers["x-version-id"] == v1
    assert "x-delete-marker" not in removed.headers
    assert _versions(api, url)[0] == (marker, True, True)
    assert api.get(url).status_code == 404
    unmarked = api.delete(url, params={"version_id": marker})
    assert unmarked.status_code == 204 and unmarked.headers["x-delete-marker"] == "true"
    assert api.get(url).content == tiny  # deleting the marker undoes the delete
    again = api.delete(url, params={"version_id": v1})
    assert again.status_code == 404 and again.json()["code"] == "no_such_version"


def test_old_versions_keep_their_shares_until_deleted(
    cluster: Cluster, api: httpx.Client, bucket: str
) -> None:
    _versioned(api, bucket)
    url = f"{API}/{bucket}/objects/kept.bin"
    first = sample(2 * BLOCK + 5, seed=11)
    v1, v1_files = _put_counting(cluster, api, url, first)
    _, v2_files = _put_counting(cluster, api, url, sample(BLOCK + 9, seed=12))
    assert len(v1_files) == len(v2_files) == 7 and not v1_files & v2_files
    marker = api.delete(url).headers["x-version-id"]
    _gc_has_run(cluster, api, bucket)
    assert v1_files | v2_files <= _share_files(cluster)  # replaced and deleted, yet kept
    assert api.get(url, params={"version_id": v1}).content == first

    assert api.delete(url, params={"version_id": marker}).status_code == 204  # frees nothing
    assert api.delete(url, params={"version_id": v1}).status_code == 204
    cluster.wait_for(lambda: not v1_files & _share_files(cluster), timeout=20)
    assert v2_files <= _share_files(cluster)
    assert api.get(url).content == sample(BLOCK + 9, seed=12)


def test_unversioned_bucket_replaces_and_deletes_for_good(
    cluster: Cluster, api: httpx.Client, bucket: str
) -> None:
    url = f"{API}/{bucket}/objects/plain.bin"
    _, v1_files = _put_counting(cluster, api, url, sample(BLOCK + 1, seed=21))
    assert v1_files
    v2 = _put(api, url, sample(BLOCK + 2, seed=22))
    cluster.wait_for(lambda: not v1_files & _share_files(cluster), timeout=20)
    assert _versions(api, url) == [(v2, True, False)]
    gone = api.delete(url)
    assert gone.status_code == 204 and gone.headers["x-version-id"] == v2
    assert "x-delete-marker" not in gone.headers
    assert _versions(api, url) == []
    missing = api.get(url)
    assert missing.status_code == 404 and "delete_marker" not in missing.json()


def test_suspended_bucket_keeps_old_versions(api: httpx.Client, bucket: str) -> None:
    _versioned(api, bucket)
    url = f"{API}/{bucket}/objects/s"
    kept = _put(api, url, b"versioned")
    assert api.put(f"{API}/{bucket}/versioning", json={"status": "off"}).json()["status"] == "suspended"
    _put(api, url, b"null one")
    latest = _put(api, url, b"null two")  # replaces the first unversioned one
    assert [v[0] for v in _versions(api, url)] == [latest, kept]
    marker = api.delete(url)
    assert marker.headers["x-delete-marker"] == "true"
    assert [v[0] for v in _versions(api, url)] == [marker.headers["x-version-id"], kept]
    assert api.get(url, params={"version_id": kept}).content == b"versioned"


def test_bucket_version_listing_pages(api: httpx.Client, bucket: str) -> None:
    _versioned(api, bucket)
    made: dict[str, list[str]] = {}
    for key in ("a", "b/1", "b/2", "c"):
        for i in range(3):
            made.setdefault(key, []).insert(
                0, _put(api, f"{API}/{bucket}/objects/{key}", f"{key}{i}".encode())
            )
    marker = api.delete(f"{API}/{bucket}/objects/b/1").headers["x-version-id"]
    made["b/1"].insert(0, marker)
    expected = [(k, v) for k in sorted(made) for v in made[k]]

    def every(limit: int, prefix: str = "") -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        cursor = None
        while True:
            params = {
                "versions": "",
                "limit": str(limit),
                "prefix": prefix,
                **({"cursor": cursor} if cursor else {}),
            }
            page = api.get(f"{API}/{bucket}/objects", params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            seen += [(v["key"], v["version_id"]) for v in body["versions"]]
            assert body["truncated"] == (body["next_cursor"] is not None)
            cursor = body["next_cursor"]
            if cursor is None:
                return seen

    assert every(1000) == expected
    assert every(2) == expected
    assert every(3, prefix="b/") == [e for e in expected if e[0].startswith("b/")]
    page = api.get(f"{API}/{bucket}/objects", params={"versions": "", "limit": "1"}).json()
    first = page["versions"][0]
    assert set(first) == {"key", "version_id", "size", "etag", "created_at", "is_latest", "delete_marker"}
    bad = api.get(f"{API}/{bucket}/objects", params={"versions": "", "cursor": "b/\x00"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
    assert api.get(f"{API}/{bucket}/objects", params={"versions": "", "limit": "0"}).status_code == 400
    plain = api.get(f"{API}/{bucket}/objects").json()
    assert [o["key"] for o in plain["objects"]] == ["a", "b/2", "c"]
    assert all(len(o["version_id"]) == 32 for o in plain["objects"])


def test_a_cursor_is_a_position_and_a_version_id_is_judged_alike_everywhere(
    api: httpx.Client, bucket: str
) -> None:
    """A cursor the server did not make still names a position (a key to resume after), unless no
    key could hold it (400 invalid_cursor); a version id is 32 lower-case hex digits wherever it is
    given (400 invalid_version_id), as the document's pattern says."""
    _versioned(api, bucket)
    for key in ("a", "b", "c"):
        _put(api, f"{API}/{bucket}/objects/{key}", b"1")
        _put(api, f"{API}/{bucket}/objects/{key}", b"2")
    listing = f"{API}/{bucket}/objects"
    after_a = api.get(listing, params={"versions": "", "cursor": "a"})
    assert [v["key"] for v in after_a.json()["versions"]] == ["b", "b", "c", "c"]
    first = api.get(listing, params={"versions": "", "limit": "3"}).json()
    rest = api.get(listing, params={"versions": "", "cursor": first["next_cursor"]}).json()
    assert [v["key"] for v in first["versions"] + rest["versions"]] == ["a", "a", "b", "b", "c", "c"]
    url = f"{listing}/b"
    for cursor in ("\u202e", "x" * 8193):
        for where in (listing, url):
            refused = api.get(where, params={"versions": "", "cursor": cursor})
            assert refused.status_code == 400 and refused.json()["code"] == "invalid_cursor", where
    # limit and cursor are the GET's parameters: judged on a download too, not only with ?versions.
    download = api.get(url, params={"limit": "1001"})
    assert download.status_code == 400 and download.json()["field"] == "limit"
    for version_id in ("0" * 31, "0" * 33, "A" * 32, "g" * 32):
        for reply in (
            api.get(url, params={"version_id": version_id}),
            api.delete(url, params={"version_id": version_id}),
            api.post(_restore(url), json={"version_id": version_id}),
            api.post("/api/v1/shares", json={"bucket": bucket, "key": "b", "version_id": version_id}),
        ):
            assert reply.status_code == 400 and reply.json()["code"] == "invalid_version_id", reply.text
        assert api.head(url, params={"version_id": version_id}).status_code == 400


def test_version_calls_need_the_right_grant(cluster: Cluster, api: httpx.Client, bucket: str) -> None:
    _versioned(api, bucket)
    url = f"{API}/{bucket}/objects/guarded"
    v1 = _put(api, url, b"one")
    _put(api, url, b"two")
    name = "ver-reader-" + hashlib.sha256(bucket.encode()).hexdigest()[:6]
    token = make_user(api, name)
    with cluster.client(token) as stranger:
        assert stranger.get(url, params={"versions": ""}).json()["code"] == "no_such_bucket"
        assert stranger.get(url, params={"version_id": v1}).status_code == 404
        assert stranger.get(f"{API}/{bucket}/versioning").status_code == 404
    granted = api.post(f"{API}/{bucket}/grants", json={"user": name, "level": "read"})
    assert granted.status_code == 201, granted.text
    with cluster.client(token) as reader:
        assert len(_versions(reader, url)) == 2
        assert reader.get(url, params={"version_id": v1}).content == b"one"
        assert reader.get(f"{API}/{bucket}/versioning").json()["status"] == "enabled"
        for reply in (
            reader.delete(url, params={"version_id": v1}),
            reader.post(_restore(url), json={"version_id": v1}),
            reader.put(f"{API}/{bucket}/versioning", json={"status": "off"}),
        ):
            assert reply.status_code == 403 and reply.json()["code"] == "access_denied", reply.text
    assert api.post(f"{API}/{bucket}/grants", json={"user": name, "level": "write"}).status_code == 201
    with cluster.client(token) as writer:
        restored = writer.post(_restore(url), json={"version_id": v1})
        assert restored.status_code == 200, restored.text
        off = writer.put(f"{API}/{bucket}/versioning", json={"status": "off"})
        assert off.status_code == 403  # switching versioning needs admin on the bucket
    with cluster.client(None) as anonymous:
        assert anonymous.get(url, params={"versions": ""}).status_code == 401
        assert anonymous.post(_restore(url), json={"version_id": v1}).status_code == 401
