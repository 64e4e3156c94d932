"""Buckets as namespaces: grants over the API and the CLI, and what each level allows.

The full 404/403 matrix over every route is ``test_permissions.py``; this
module follows grants through their life (grant, replace, revoke) and the
differences between read, write and admin, as users would meet them.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster
from cargohold.testing.console import ConsoleScript

BUCKET = "team-docs"
GRANTS = f"/api/v1/buckets/{BUCKET}/grants"
USERS = ("gr-owner", "gr-reader", "gr-writer", "gr-admin", "gr-other")


@pytest.fixture(scope="module")
def keys(cluster: Cluster) -> dict[str, str]:
    with cluster.client() as admin:
        keys = {name: make_user(admin, name) for name in USERS}
    with cluster.client(keys["gr-owner"]) as owner:
        assert owner.put(f"/api/v1/buckets/{BUCKET}").status_code == 201
        assert owner.put(f"/api/v1/buckets/{BUCKET}/objects/readme", content=b"hi").status_code == 201
    return keys


@pytest.fixture
def as_user(cluster: Cluster, keys: dict[str, str]) -> Iterator[dict[str, httpx.Client]]:
    clients = {name: cluster.client(key) for name, key in keys.items()}
    yield clients
    for client in clients.values():
        client.close()


def _grant(client: httpx.Client, user: str, level: str) -> httpx.Response:
    return client.post(GRANTS, json={"user": user, "level": level})


def test_grant_replace_and_revoke(as_user: dict[str, httpx.Client]) -> None:
    owner, reader = as_user["gr-owner"], as_user["gr-reader"]
    assert owner.get(GRANTS).json() == {"bucket": BUCKET, "owner": "gr-owner", "grants": []}
    assert reader.get(f"/api/v1/buckets/{BUCKET}").status_code == 404

    made = _grant(owner, "gr-reader", "read")
    assert made.status_code == 201, made.text
    assert {k: made.json()[k] for k in ("user", "level", "granted_by")} == {
        "user": "gr-reader",
        "level": "read",
        "granted_by": "gr-owner",
    }
    info = reader.get(f"/api/v1/buckets/{BUCKET}").json()
    assert {k: info[k] for k in ("name", "owner", "level", "versioning")} == {
        "name": BUCKET,
        "owner": "gr-owner",
        "level": "read",
        "versioning": "off",
    }
    assert reader.get(f"/api/v1/buckets/{BUCKET}/objects/readme").content == b"hi"
    assert BUCKET in [b["name"] for b in reader.get("/api/v1/buckets").json()["buckets"]]

    # A second grant replaces the first: one level per user and bucket.
    assert _grant(owner, "gr-reader", "write").status_code == 201
    assert [(g["user"], g["level"]) for g in owner.get(GRANTS).json()["grants"]] == [("gr-reader", "write")]
    assert reader.get(f"/api/v1/buckets/{BUCKET}").json()["level"] == "write"
    assert reader.put(f"/api/v1/buckets/{BUCKET}/objects/by-reader", content=b"w").status_code == 201
    assert reader.delete(f"/api/v1/buckets/{BUCKET}/objects/by-reader").status_code == 204

    assert owner.delete(f"{GRANTS}/gr-reader").status_code == 204
    gone = owner.delete(f"{GRANTS}/gr-reader")
    assert (gone.status_code, gone.json()["code"]) == (404, "no_such_grant")
    # Revoked at once: the bucket is invisible again, and absent from the listing.
    assert reader.get(f"/api/v1/buckets/{BUCKET}").json()["code"] == "no_such_bucket"
    assert BUCKET not in [b["name"] for b in reader.get("/api/v1/buckets").json()["buckets"]]


def test_revoke_on_the_collection_path(as_user: dict[str, httpx.Client]) -> None:
    """DELETE …/grants names the user in a JSON body, as DELETE …/grants/{user} does by path."""
    owner = as_user["gr-owner"]
    assert _grant(owner, "gr-writer", "read").status_code == 201
    assert owner.request("DELETE", GRANTS, json={"user": "gr-writer"}).status_code == 204
    assert "gr-writer" not in [g["user"] for g in owner.get(GRANTS).json()["grants"]]
    # The body is where the user is named: without it, or without "user" in it, nobody is.
    for nameless in (owner.delete(GRANTS), owner.request("DELETE", GRANTS, json={})):
        problem = nameless.json()
        assert (nameless.status_code, problem["code"], problem["field"]) == (400, "invalid_argument", "user")
    assert _grant(owner, "gr-writer", "read").status_code == 201
    by_query = owner.delete(GRANTS, params={"user": "gr-writer"})
    assert (by_query.status_code, by_query.json()["code"]) == (400, "invalid_argument")
    assert "gr-writer" in [g["user"] for g in owner.get(GRANTS).json()["grants"]]
    assert owner.delete(f"{GRANTS}/gr-writer").status_code == 204


def test_what_each_level_may_do(as_user: dict[str, httpx.Client]) -> None:
    owner = as_user["gr-owner"]
    for user, level in (("gr-reader", "read"), ("gr-writer", "write"), ("gr-admin", "admin")):
        assert _grant(owner, user, level).status_code == 201
    reader, writer, admin = as_user["gr-reader"], as_user["gr-writer"], as_user["gr-admin"]

    denied = reader.put(f"/api/v1/buckets/{BUCKET}/objects/x", content=b"x")
    assert (denied.status_code, denied.json()["code"]) == (403, "access_denied")
    assert denied.json()["needed"] == "write" and denied.json()["held"] == "read"
    assert writer.put(f"/api/v1/buckets/{BUCKET}/objects/x", content=b"x").status_code == 201
    # Grants, versioning and removing the bucket need admin.
    for client in (reader, writer):
        assert client.get(GRANTS).status_code == 403
        assert _grant(client, "gr-other", "read").status_code == 403
        assert client.delete(f"{GRANTS}/gr-reader").status_code == 403
        assert (
            client.put(f"/api/v1/buckets/{BUCKET}/versioning", json={"status": "enabled"}).status_code == 403
        )
        assert client.delete(f"/api/v1/buckets/{BUCKET}").status_code == 403
    # An admin grant manages grants like the owner does, but cannot take the owner's access.
    assert [g["user"] for g in admin.get(GRANTS).json()["grants"]] == ["gr-admin", "gr-reader", "gr-writer"]
    assert _grant(admin, "gr-other", "read").json()["granted_by"] == "gr-admin"
    assert as_user["gr-other"].get(f"/api/v1/buckets/{BUCKET}/objects/x").content == b"x"
    assert admin.delete(f"{GRANTS}/gr-other").status_code == 204
    refused = _grant(admin, "gr-owner", "read")
    assert (refused.status_code, refused.json()["code"], refused.json()["field"]) == (
        409,
        "owner_grant",
        "user",
    )
    assert admin.delete(f"{GRANTS}/gr-owner").json()["code"] == "no_such_grant"
    assert owner.get(f"/api/v1/buckets/{BUCKET}").json()["level"] == "admin"
    assert writer.delete(f"/api/v1/buckets/{BUCKET}/objects/x").status_code == 204


def test_bad_grants_say_why(cluster: Cluster, as_user: dict[str, httpx.Client]) -> None:
    owner = as_user["gr-owner"]
    bad = _grant(owner, "gr-other", "owner")
    assert (bad.status_code, bad.json()["code"], bad.json()["field"]) == (400, "invalid_argument", "level")
    nobody = _grant(owner, "nobody-here", "read")
    assert (nobody.status_code, nobody.json()["code"]) == (404, "no_such_user")
    no_user = owner.post(GRANTS, json={"level": "read"})
    assert (no_user.status_code, no_user.json()["field"]) == (400, "user")
    # A system admin holds admin on every bucket.
    with cluster.client() as system:
        assert system.get(f"/api/v1/buckets/{BUCKET}").json()["level"] == "admin"
        assert system.get(GRANTS).json()["owner"] == "gr-owner"


def test_bucket_paths_answer_get_put_and_delete(cluster: Cluster, as_user: dict[str, httpx.Client]) -> None:
    """GET (namespaces.py) and PUT/DELETE (native.py) share one path without shadowing each other."""
    other = as_user["gr-other"]
    assert other.put("/api/v1/buckets/gr-paths").status_code == 201
    assert other.get("/api/v1/buckets/gr-paths").json()["owner"] == "gr-other"
    assert other.patch("/api/v1/buckets/gr-paths").status_code == 405
    assert other.delete("/api/v1/buckets/gr-paths").status_code == 204
    assert other.get("/api/v1/buckets/gr-paths").status_code == 404


# -- the CLI ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli(cluster: Cluster, keys: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> ConsoleScript:
    run = ConsoleScript(cluster, tmp_path_factory.mktemp("home"))
    run.env["CARGOHOLD_KEY"] = keys["gr-owner"]
    assert "created bucket gr-cli" in run.ok("mb", "gr-cli")
    return run


def test_cli_grant_list_and_ungrant(cli: ConsoleScript, keys: dict[str, str]) -> None:
    assert cli.ok("grant", "gr-cli", "gr-reader", "read").strip() == "granted read on gr-cli to gr-reader"
    cli.ok("grant", "gr-cli", "gr-writer", "WRITE")
    rows = [line.split("\t") for line in cli.ok("grants", "--plain", "gr-cli").splitlines()]
    assert [row[:3] for row in rows] == [
        ["gr-owner", "owner", "-"],
        ["gr-reader", "read", "gr-owner"],
        ["gr-writer", "write", "gr-owner"],
    ]
    table = cli.ok("grants", "gr-cli")
    assert "gr-reader" in table and "granted by" in table
    assert "revoked gr-reader's grant on gr-cli" in cli.ok("ungrant", "gr-cli", "gr-reader")
    assert [line.split("\t")[0] for line in cli.ok("grants", "--plain", "gr-cli").splitlines()] == [
        "gr-owner",
        "gr-writer",
    ]

    again = cli("ungrant", "gr-cli", "gr-reader")
    assert again.returncode == 1 and again.stderr.startswith("error: no_such_grant: ")
    bad = cli("grant", "gr-cli", "gr-reader", "owner")
    assert bad.returncode == 2 and "LEVEL" in bad.stderr
    as_writer = cli("grants", "gr-cli", "--key", keys["gr-writer"])
    assert as_writer.returncode == 1 and as_writer.stderr.startswith("error: access_denied: ")
    hidden = cli("grants", "gr-cli", "--key", keys["gr-other"])
    assert hidden.returncode == 1 and hidden.stderr.startswith("error: no_such_bucket: ")
