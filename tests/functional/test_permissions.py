"""The permission matrix, driven from the route table so every new route is covered by itself.

For every route and method in ``ALL_ROUTES``:

* not public: no token gets 401;
* its path names a bucket (``{bucket}``) or something in one (``{upload_id}``):
  a user with no grant gets 404, exactly as for a bucket that does not exist,
  and a user with a read grant gets 403 on writes (PUT, POST, PATCH, DELETE)
  and is served on reads (GET, HEAD).

Calls that name the bucket in a body or query (upload and tus creation,
share links, cross-bucket renames, listings) are listed by hand below.

Every request is well formed (right headers, a plausible body), so that the
permission is the only reason for a refusal. All of it runs on one cluster.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from cargohold.api.auth import is_public
from cargohold.api.routes import ALL_ROUTES
from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster

BUCKET = "perm-matrix"
MISSING = "perm-matrix-missing"  # never created: what "cannot see it" must look like
KEY = "dir/obj.txt"
OWNER, READER, STRANGER = "perm-owner", "perm-reader", "perm-stranger"
TUS = "1.0.0"
WRITES = frozenset({"PUT", "POST", "PATCH", "DELETE"})
_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
#: Path parameters that name a bucket, or something that lives in one.
SCOPED = frozenset({"bucket", "upload_id"})
#: Reads that need more than a read grant (the answer is then 403, as for writes).
ADMIN_READS = frozenset({"grant.list"})
#: Bucket names are one global namespace: creating a taken name says so to anyone.
NAME_CLAIMS = frozenset({"bucket.create"})
#: One JSON body with every field a bucket-scoped write reads, so no write fails on its arguments.
ANY_BODY = {
    "bucket": BUCKET,
    "key": "new-key",
    "size": 1,
    "user": READER,
    "level": "read",
    "status": "enabled",
    "to_key": "renamed",
    "version_id": "0" * 32,
}


def _bare(match: re.Match[str]) -> str:
    """``{key:.+}`` -> ``{key}``, as the OpenAPI document names it."""
    return "{" + match.group(1) + "}"


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


@dataclass(frozen=True)
class Call:
    method: str
    template: str
    action: str

    @property
    def params(self) -> list[str]:
        return _PARAM.findall(self.template)

    def __str__(self) -> str:
        return f"{self.method} {_PARAM.sub(_bare, self.template)}"


def _calls() -> list[Call]:
    """Every native call (S3 requests authenticate with SigV4: ``test_s3_auth.py``)."""
    calls = []
    for route in ALL_ROUTES:
        if route.tag == "s3":
            continue
        for method in route.documented_methods:
            if method != "OPTIONS":
                calls.append(Call(method, route.path, route.action_for(method)))
    return calls


PROTECTED = [c for c in _calls() if not is_public(c.template)]
SCOPED_CALLS = [c for c in PROTECTED if SCOPED & set(c.params)]


@dataclass
class World:
    cluster: Cluster
    keys: dict[str, str]
    values: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None) -> httpx.Client:
        return self.cluster.client(self.keys[who] if who else None)

    def url(self, call: Call, bucket: str = BUCKET) -> str:
        values = {**self.values, "bucket": bucket}
        if call.template.startswith("/tus"):
            values["upload_id"] = self.values["tus_id"]
        return _PARAM.sub(lambda m: values.get(m.group(1), "x"), call.template)


def _request(call: Call, bucket: str = BUCKET) -> dict[str, Any]:
    """Headers and body that make ``call`` well formed, whoever sends it."""
    headers: dict[str, str] = {}
    content: bytes | None = None
    if call.template.startswith("/tus"):
        headers["Tus-Resumable"] = TUS
        if call.method == "POST":
            headers.update({"Upload-Length": "1", "Upload-Metadata": _meta(bucket=bucket, key="tus-new")})
        elif call.method == "PATCH":
            headers.update({"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
            content = b"x"
    elif call.action == "upload.append":
        headers["Content-Range"] = "bytes 0-0/10"
        content = b"x"
    elif call.method in WRITES:
        headers["Content-Type"] = "application/json"
        content = json.dumps({**ANY_BODY, "bucket": bucket}).encode()
    return {"headers": headers, "content": content}


def _send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> tuple[int, str | None]:
    """Status and problem code; a body is read only for errors (event streams never end)."""
    with client.stream(method, url, **kwargs) as reply:
        if reply.status_code < 400 or method == "HEAD":
            return reply.status_code, None
        reply.read()
        try:
            return reply.status_code, reply.json().get("code")
        except ValueError:
            return reply.status_code, None  # tus answers in plain text


@pytest.fixture(scope="module")
def world(cluster: Cluster) -> Iterator[World]:
    with cluster.client() as admin:
        keys = {name: make_user(admin, name) for name in (OWNER, READER, STRANGER)}
    world = World(cluster, keys)
    with world.client(OWNER) as owner:
        assert owner.put(f"/api/v1/buckets/{BUCKET}").status_code == 201
        assert owner.put(f"/api/v1/buckets/{BUCKET}/objects/{KEY}", content=b"hello").status_code == 201
        granted = owner.post(f"/api/v1/buckets/{BUCKET}/grants", json={"user": READER, "level": "read"})
        assert granted.status_code == 201, granted.text
        session = owner.post("/api/v1/uploads", json={"bucket": BUCKET, "key": "up", "size": 10})
        assert session.status_code == 201, session.text
        tus = owner.post(
            "/tus/",
            headers={
                "Tus-Resumable": TUS,
                "Upload-Length": "10",
                "Upload-Metadata": _meta(bucket=BUCKET, key="t"),
            },
        )
        assert tus.status_code == 201, tus.text
        link = owner.post("/api/v1/shares", json={"bucket": BUCKET, "key": KEY})
        assert link.status_code == 201, link.text
    # Each of the others owns a bucket too (the source of a rename into ours).
    for name in (READER, STRANGER):
        with world.client(name) as client:
            assert client.put(f"/api/v1/buckets/own-{name}").status_code == 201
            assert client.put(f"/api/v1/buckets/own-{name}/objects/x", content=b"x").status_code == 201
    world.values = {
        "key": KEY,
        "upload_id": session.json()["id"],
        "tus_id": tus.headers["Location"].rsplit("/", 1)[1],
        "link_id": link.json()["id"],
        "number": "1",
        "user": READER,
        "name": OWNER,
    }
    yield world
    # An event stream ends when its upload does: end the reader's, or it lingers until shutdown.
    with world.client(OWNER) as owner:
        assert owner.delete(f"/api/v1/uploads/{world.values['upload_id']}").status_code == 200


def test_the_matrix_covers_the_bucket_routes() -> None:
    """Guard against a matrix that silently tests nothing."""
    covered = {str(c) for c in SCOPED_CALLS}
    for expected in (
        "PUT /api/v1/buckets/{bucket}/objects/{key}",
        "GET /api/v1/buckets/{bucket}",
        "DELETE /api/v1/buckets/{bucket}/grants/{user}",
        "PUT /api/v1/uploads/{upload_id}/parts/{number}",
        "PATCH /tus/{upload_id}",
    ):
        assert expected in covered, expected


@pytest.mark.parametrize("call", PROTECTED, ids=str)
def test_no_token_is_401(world: World, call: Call) -> None:
    with world.client(None) as anonymous:
        status, _ = _send(anonymous, call.method, world.url(call), **_request(call))
    assert status == 401, call


@pytest.mark.parametrize("call", SCOPED_CALLS, ids=str)
def test_a_stranger_gets_404_as_if_nothing_were_there(world: World, call: Call) -> None:
    with world.client(STRANGER) as stranger:
        seen = _send(stranger, call.method, world.url(call), **_request(call))
        if call.action in NAME_CLAIMS:
            assert seen == (409, "bucket_exists"), call
            return
        missing = _send(stranger, call.method, world.url(call, MISSING), **_request(call, MISSING))
    assert seen[0] == 404, (call, seen)
    if "bucket" in call.params:
        assert seen == (404, None if call.method == "HEAD" else "no_such_bucket"), call
        assert missing == seen, call  # the same answer as for a bucket that does not exist
    elif not call.template.startswith("/tus"):
        assert seen == (404, "no_such_upload"), call


@pytest.mark.parametrize("call", SCOPED_CALLS, ids=str)
def test_a_read_grant_reads_but_never_writes(world: World, call: Call) -> None:
    with world.client(READER) as reader:
        status, code = _send(reader, call.method, world.url(call), **_request(call))
    if call.action in NAME_CLAIMS:
        assert (status, code) == (409, "bucket_exists"), call
    elif call.method in WRITES or call.action in ADMIN_READS:
        assert status == 403, (call, status, code)
        assert code in (None, "access_denied"), (call, code)  # None: tus answers in plain text
    else:
        assert status < 400, (call, status, code)


# -- calls that name the bucket in a body or a query ----------------------------------------


BODY_NAMED: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/api/v1/uploads", {"json": {"bucket": BUCKET, "key": "k", "size": 1}}),
    (
        "POST",
        "/tus/",
        {
            "headers": {
                "Tus-Resumable": TUS,
                "Upload-Length": "1",
                "Upload-Metadata": _meta(bucket=BUCKET, key="k"),
            }
        },
    ),
]


def test_body_named_buckets(world: World) -> None:
    for method, path, kwargs in BODY_NAMED:
        with world.client(STRANGER) as stranger:
            status, code = _send(stranger, method, path, **kwargs)
            assert status == 404 and code in (None, "no_such_bucket"), (path, status, code)
        with world.client(READER) as reader:
            status, code = _send(reader, method, path, **kwargs)
            assert status == 403 and code in (None, "access_denied"), (path, status, code)


def test_renames_into_a_bucket_need_write_there(world: World) -> None:
    for who, status, code in ((STRANGER, 404, "no_such_bucket"), (READER, 403, "access_denied")):
        with world.client(who) as client:
            reply = client.post(
                f"/api/v1/buckets/own-{who}/rename/x", json={"to_bucket": BUCKET, "to_key": "stolen"}
            )
            assert (reply.status_code, reply.json()["code"]) == (status, code), reply.text
            assert client.get(f"/api/v1/buckets/own-{who}/objects/x").status_code == 200


def test_listings_and_shares_show_only_what_one_may_see(world: World) -> None:
    with world.client(STRANGER) as stranger:
        names = [b["name"] for b in stranger.get("/api/v1/buckets").json()["buckets"]]
        assert names == [f"own-{STRANGER}"]
        assert _send(stranger, "GET", f"/api/v1/uploads?bucket={BUCKET}") == (404, "no_such_bucket")
        assert all(u["bucket"] != BUCKET for u in stranger.get("/api/v1/uploads").json()["uploads"])
        assert _send(stranger, "GET", f"/api/v1/shares?bucket={BUCKET}") == (404, "no_such_bucket")
        assert _send(stranger, "POST", "/api/v1/shares", json={"bucket": BUCKET, "key": KEY}) == (
            404,
            "no_such_bucket",
        )
        for method in ("GET", "DELETE"):
            assert _send(stranger, method, f"/api/v1/shares/{world.values['link_id']}") == (
                404,
                "no_such_link",
            )
    with world.client(OWNER) as owner:  # the same URLs exist and answer the owner
        assert _send(owner, "GET", f"/api/v1/shares?bucket={BUCKET}") == (200, None)
        assert _send(owner, "GET", f"/api/v1/shares/{world.values['link_id']}") == (200, None)
    with world.client(READER) as reader:
        names = [b["name"] for b in reader.get("/api/v1/buckets").json()["buckets"]]
        assert names == [f"own-{READER}", BUCKET]
        listed = reader.get(f"/api/v1/uploads?bucket={BUCKET}")
        assert listed.status_code == 200
        assert {u["key"] for u in listed.json()["uploads"]} >= {"up", "t"}
    with world.client(None) as anonymous, world.cluster.client() as admin:
        everything = [b["name"] for b in admin.get("/api/v1/buckets").json()["buckets"]]
        assert {BUCKET, f"own-{READER}", f"own-{STRANGER}"} <= set(everything)
        assert anonymous.get("/api/v1/buckets").status_code == 401


def test_every_action_leaves_a_history_row(world: World) -> None:
    """Each action of the route table is recorded, refused calls included (who tried, and the code)."""
    agent = "history-coverage-probe"
    with world.client(None) as anonymous:
        for call in PROTECTED:
            request = _request(call)
            _send(
                anonymous,
                call.method,
                world.url(call),
                headers={**request["headers"], "User-Agent": agent},
                content=request["content"],
            )
    wanted = {c.action for c in PROTECTED}
    assert "" not in wanted  # every protected call names its action

    def recorded() -> dict[str, tuple[int, str]]:
        found: dict[str, tuple[int, str]] = {}
        params: dict[str, str | int] = {"limit": 1000}
        with world.cluster.client() as admin:
            while True:
                page = admin.get("/api/v1/history", params=params).json()
                for event in page["events"]:
                    if event["user_agent"] == agent:
                        found[event["action"]] = (event["status"], event["result"])
                if not page["next_cursor"]:
                    return found
                params["cursor"] = page["next_cursor"]

    world.cluster.wait_for(lambda: wanted <= set(recorded()), timeout=20)
    rows = recorded()
    assert all(rows[action] == (401, "unauthorized") for action in wanted), rows
