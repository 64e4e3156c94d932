"""Per-user quotas on a real cluster: refused before any byte is stored, on every way in.

Each test gets a fresh user with a quota and a bucket they own. "Before any
byte is stored" is shown twice: no new share file appears on any node, and
the refusal arrives while the client has sent only the request head (a raw
socket that never sends the announced body still gets its 403).
"""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster
from cargohold.testing.data import sample

MiB = 1024 * 1024
QUOTA = MiB
BIG = 8 * MiB  # far over the quota, under the cluster's object size limit
TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {"Content-Type": "application/offset+octet-stream"}


@dataclass
class Account:
    name: str
    key: str
    bucket: str
    client: httpx.Client

    def path(self, key: str) -> str:
        return f"/api/v1/buckets/{self.bucket}/objects/{key}"


@pytest.fixture
def user(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Account]:
    """A user with a 1 MiB quota, owning one empty bucket."""
    name = "q-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:10]
    with cluster.client() as admin:
        key = make_user(admin, name, quota_bytes=QUOTA)
    with cluster.client(key) as client:
        assert client.put(f"/api/v1/buckets/{name}").status_code == 201
        yield Account(name, key, name, client)


def _share_files(cluster: Cluster) -> set[Path]:
    return {p for node in cluster.nodes for p in node.share_files()}


def _answer_to_head(cluster: Cluster, key: str, method: str, path: str, headers: dict[str, str]) -> str:
    """Send only a request's head (its body is announced, never sent) and return the answer.

    A gateway that read the body before deciding would wait for it forever:
    the socket's timeout turns that into a failure.
    """
    url = urlsplit(cluster.url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {url.netloc}", f"Authorization: Bearer {key}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


def _refused_early(cluster: Cluster, user: Account, method: str, path: str, **headers: str) -> None:
    before = _share_files(cluster)
    answer = _answer_to_head(cluster, user.key, method, path, {"Content-Length": str(BIG), **headers})
    assert answer.startswith("HTTP/1.1 403"), answer
    assert "quota" in answer, answer
    assert not _share_files(cluster) - before


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _tus_create(user: Account, key: str, **headers: str) -> str:
    reply = user.client.post(
        "/tus/", headers={**TUS, "Upload-Metadata": _meta(bucket=user.bucket, key=key), **headers}
    )
    assert reply.status_code == 201, reply.text
    return str(reply.headers["Location"])


# -- plain PUT ----------------------------------------------------------------------------


def test_a_put_too_big_is_refused_before_its_body(cluster: Cluster, user: Account) -> None:
    _refused_early(cluster, user, "PUT", user.path("big"))
    # A client that does send the body (streamed, many MB) gets the same answer, and nothing is kept.
    before = _share_files(cluster)
    chunk = sample(MiB, seed=5)
    reply = user.client.put(
        user.path("big"), content=(chunk for _ in range(BIG // MiB)), headers={"Content-Length": str(BIG)}
    )
    assert (reply.status_code, reply.json()["code"]) == (403, "quota_exceeded")
    assert reply.json()["room"] == QUOTA and reply.json()["bucket"] == user.bucket
    assert not _share_files(cluster) - before
    assert user.client.get(user.path("big")).status_code == 404


def test_a_streamed_put_may_use_only_the_room_left(cluster: Cluster, user: Account) -> None:
    before = _share_files(cluster)
    data = sample(QUOTA + 200 * 1024, seed=6)
    crossing = user.client.put(
        user.path("s"), content=(data[i : i + 65536] for i in range(0, len(data), 65536))
    )
    assert (crossing.status_code, crossing.json()["code"]) == (403, "quota_exceeded")
    assert user.client.get(user.path("s")).status_code == 404
    cluster.wait_for(lambda: not _share_files(cluster) - before)  # its shares are removed

    fits = data[:QUOTA]
    assert user.client.put(user.path("s"), content=iter([fits])).status_code == 201  # chunked too
    assert user.client.get(user.path("s")).content == fits
    full = user.client.put(user.path("one-more"), content=iter([b"x"]))
    assert (full.status_code, full.json()["code"]) == (403, "quota_exceeded")


def test_deleting_frees_quota(user: Account) -> None:
    first = sample(600 * 1024, seed=7)
    assert user.client.put(user.path("a"), content=first).status_code == 201
    refused = user.client.put(user.path("b"), content=first)
    assert (refused.status_code, refused.json()["code"]) == (403, "quota_exceeded")
    assert refused.json()["room"] == QUOTA - len(first)
    assert user.client.delete(user.path("a")).status_code == 204
    assert user.client.put(user.path("b"), content=first).status_code == 201


def test_the_bucket_owner_pays(cluster: Cluster, user: Account) -> None:
    with cluster.client() as admin:
        helper_key = make_user(admin, user.name + "-helper")  # no quota of their own
    grant = user.client.post(
        f"/api/v1/buckets/{user.bucket}/grants", json={"user": user.name + "-helper", "level": "write"}
    )
    assert grant.status_code == 201, grant.text
    with cluster.client(helper_key) as helper:
        refused = helper.put(user.path("from-helper"), content=sample(QUOTA + 1))
        assert (refused.status_code, refused.json()["code"]) == (403, "quota_exceeded")
        assert helper.put(f"/api/v1/buckets/{user.name}-helper", json={}).status_code == 201
        granted = helper.post(
            f"/api/v1/buckets/{user.name}-helper/grants", json={"user": user.name, "level": "write"}
        )
        assert granted.is_success
        assert granted.status_code == 201 and granted.json()["level"] == "write", granted.text
    # The quota user writes more than their quota into a bucket someone without one owns.
    big = user.client.put(f"/api/v1/buckets/{user.name}-helper/objects/k", content=sample(2 * QUOTA))
    assert big.status_code == 201, big.text


# -- upload sessions ----------------------------------------------------------------------


def test_upload_sessions_are_refused_before_their_parts(cluster: Cluster, user: Account) -> None:
    sized = user.client.post("/api/v1/uploads", json={"bucket": user.bucket, "key": "u", "size": BIG})
    assert (sized.status_code, sized.json()["code"]) == (403, "quota_exceeded")
    open_ended = user.client.post("/api/v1/uploads", json={"bucket": user.bucket, "key": "u"})
    assert open_ended.status_code == 201
    upload_id = open_ended.json()["id"]
    _refused_early(cluster, user, "PUT", f"/api/v1/uploads/{upload_id}/parts/1")
    _refused_early(
        cluster, user, "PUT", f"/api/v1/uploads/{upload_id}", **{"Content-Range": f"bytes 0-{BIG - 1}/*"}
    )
    # Parts that fit are paid for while the upload is open: the room shrinks with each.
    part = sample(600 * 1024, seed=8)
    assert user.client.put(f"/api/v1/uploads/{upload_id}/parts/1", content=part).status_code == 200
    second = user.client.put(f"/api/v1/uploads/{upload_id}/parts/2", content=part)
    assert (second.status_code, second.json()["code"]) == (403, "quota_exceeded")
    assert user.client.get(f"/api/v1/uploads/{upload_id}").json()["status"] == "LOADING"
    # Aborting frees them.
    assert user.client.delete(f"/api/v1/uploads/{upload_id}").status_code == 200
    assert user.client.put(user.path("after"), content=part).status_code == 201


# -- tus ----------------------------------------------------------------------------------


def test_tus_uploads_are_refused_before_their_bytes(cluster: Cluster, user: Account) -> None:
    too_long = user.client.post(
        "/tus/",
        headers={**TUS, "Upload-Length": str(BIG), "Upload-Metadata": _meta(bucket=user.bucket, key="t")},
    )
    assert too_long.status_code == 403 and "quota" in too_long.text
    deferred = _tus_create(user, "t", **{"Upload-Defer-Length": "1"})
    _refused_early(cluster, user, "PATCH", deferred, **TUS, **STREAM, **{"Upload-Offset": "0"})
    # A chunk of unknown length that crosses the quota is refused and nothing of it is kept.
    data = sample(QUOTA + 100 * 1024, seed=9)
    crossing = user.client.patch(
        deferred,
        content=(data[i : i + 65536] for i in range(0, len(data), 65536)),
        headers={**TUS, **STREAM, "Upload-Offset": "0"},
    )
    assert crossing.status_code == 403 and "quota" in crossing.text
    assert user.client.head(deferred, headers=TUS).headers["Upload-Offset"] == "0"


def test_tus_concatenation_does_not_pay_twice(user: Account) -> None:
    """The final upload takes the partial uploads' stored parts: they are counted once."""
    pieces = [sample(400 * 1024, seed=10), sample(400 * 1024, seed=11)]
    partials = []
    for piece in pieces:
        url = _tus_create(user, "p", **{"Upload-Length": str(len(piece)), "Upload-Concat": "partial"})
        done = user.client.patch(url, content=piece, headers={**TUS, **STREAM, "Upload-Offset": "0"})
        assert done.status_code == 204, done.text
        partials.append(url)
    _tus_create(user, "joined", **{"Upload-Concat": "final;" + " ".join(partials)})
    assert user.client.get(user.path("joined")).content == b"".join(pieces)
