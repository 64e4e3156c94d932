"""Users and API keys through the HTTP API of a real gateway, on SQLite and on PostgreSQL.

The gateway caches keys, users and sessions for 300 s here, so everything
that must take effect "at once" is shown to do so by the gateway dropping
its cache, not by the cache running out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster
from tests.conftest import BOTH_STORES
from tests.functional.conftest import accounts_cluster

PASSWORD = "a fine password"


@pytest.fixture(scope="module", params=BOTH_STORES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with accounts_cluster(request, tmp_path_factory, "accounts") as running:
        yield running


def _login(cluster: Cluster, name: str, password: str = PASSWORD) -> dict:
    reply = cluster.client(None).post("/api/v1/auth/login", json={"name": name, "password": password})
    assert reply.status_code == 200, reply.text
    return reply.json()


def _code(reply: httpx.Response) -> tuple[int, str]:
    return reply.status_code, reply.json().get("code")


def test_every_account_endpoint_needs_credentials(cluster: Cluster) -> None:
    calls = [
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/users/admin"),
        ("PATCH", "/api/v1/users/admin"),
        ("DELETE", "/api/v1/users/admin"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/keys"),
        ("POST", "/api/v1/keys"),
        ("DELETE", "/api/v1/keys/CH0000"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/password"),
    ]
    for token in (None, "CHNOSUCHKEY.secret", "not.a.jwt"):
        with cluster.client(token) as anonymous:
            for method, path in calls:
                reply = anonymous.request(method, path, json={})
                assert reply.status_code == 401, (token, method, path, reply.text)
                assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_users_may_not_manage_users(cluster: Cluster, api: httpx.Client) -> None:
    token = make_user(api, "plain-user", password=PASSWORD)
    make_user(api, "plain-victim")
    with cluster.client(token) as user:
        for method, path, body in [
            ("GET", "/api/v1/users", None),
            ("POST", "/api/v1/users", {"name": "sneaky", "password": PASSWORD}),
            ("PATCH", "/api/v1/users/plain-victim", {"disabled": True}),
            ("PATCH", "/api/v1/users/plain-user", {"role": "admin"}),
            ("DELETE", "/api/v1/users/plain-victim", None),
            ("POST", "/api/v1/keys", {"name": "for someone else", "user": "plain-victim"}),
        ]:
            reply = user.request(method, path, json=body)
            assert reply.status_code == 403, (method, path, reply.text)
        assert user.get("/api/v1/users/plain-victim").status_code == 404  # others do not exist for them
        assert _code(user.get("/api/v1/users/plain-victim")) == (404, "no_such_user")
        assert user.get("/api/v1/users/plain-user").json()["role"] == "user"
    assert api.get("/api/v1/users/plain-victim").status_code == 200
    assert api.get("/api/v1/users/plain-victim").json()["disabled"] is False


def test_patch_user_fields(api: httpx.Client) -> None:
    make_user(api, "patched")
    reply = api.patch("/api/v1/users/patched", json={"quota_bytes": 1_000_000})
    assert reply.status_code == 200 and reply.json()["quota_bytes"] == 1_000_000
    assert api.patch("/api/v1/users/patched", json={"quota_bytes": None}).json()["quota_bytes"] is None
    for body, code in [
        ({}, "invalid_argument"),
        ({"role": "root"}, "invalid_argument"),
        ({"quota_bytes": -1}, "invalid_argument"),
        ({"disabled": "yes"}, "invalid_argument"),
        ({"password": "short"}, "invalid_argument"),
        ({"name": "renamed"}, "invalid_argument"),
    ]:
        assert _code(api.patch("/api/v1/users/patched", json=body)) == (400, code), body
    assert _code(api.patch("/api/v1/users/nobody-here", json={"disabled": True})) == (404, "no_such_user")
    assert _code(api.delete("/api/v1/users/nobody-here")) == (404, "no_such_user")


def test_disabled_user_is_refused_with_key_and_token(cluster: Cluster, api: httpx.Client) -> None:
    key = make_user(api, "to-disable", password=PASSWORD)
    session = _login(cluster, "to-disable")
    with cluster.client(key) as by_key, cluster.client(session["access_token"]) as by_token:
        assert by_key.get("/api/v1/me").status_code == 200
        assert by_token.get("/api/v1/me").status_code == 200
        assert api.patch("/api/v1/users/to-disable", json={"disabled": True}).json()["disabled"] is True
        assert _code(by_key.get("/api/v1/me"))[0] == 401
        assert _code(by_token.get("/api/v1/me"))[0] == 401
        anonymous = cluster.client(None)
        login = anonymous.post("/api/v1/auth/login", json={"name": "to-disable", "password": PASSWORD})
        assert _code(login) == (401, "invalid_credentials")
        refresh = anonymous.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert refresh.status_code == 401
        api.patch("/api/v1/users/to-disable", json={"disabled": False})
        assert by_key.get("/api/v1/me").status_code == 200  # keys survive a disable
        assert by_token.get("/api/v1/me").status_code == 401  # sessions do not
    _login(cluster, "to-disable")


def test_role_change_and_password_reset_take_effect_at_once(cluster: Cluster, api: httpx.Client) -> None:
    key = make_user(api, "promoted", password=PASSWORD)
    session = _login(cluster, "promoted")
    with cluster.client(key) as user, cluster.client(session["access_token"]) as by_token:
        assert user.get("/api/v1/users").status_code == 403
        api.patch("/api/v1/users/promoted", json={"role": "admin"})
        try:
            assert user.get("/api/v1/users").status_code == 200
            assert by_token.get("/api/v1/me").status_code == 401  # a role change ends sessions
        finally:
            api.patch("/api/v1/users/promoted", json={"role": "user"})
        assert user.get("/api/v1/users").status_code == 403
    fresh = _login(cluster, "promoted")
    api.patch("/api/v1/users/promoted", json={"password": "reset by the admin"})
    with cluster.client(fresh["access_token"]) as by_token:
        assert by_token.get("/api/v1/me").status_code == 401
    old = cluster.client(None).post("/api/v1/auth/login", json={"name": "promoted", "password": PASSWORD})
    assert _code(old) == (401, "invalid_credentials")
    _login(cluster, "promoted", "reset by the admin")


def test_delete_user(cluster: Cluster, api: httpx.Client) -> None:
    assert _code(api.delete("/api/v1/users/admin")) == (409, "cannot_delete_self")
    key = make_user(api, "leaving", password=PASSWORD)
    with cluster.client(key) as user:
        assert user.put("/api/v1/buckets/leavers-bucket").status_code == 201
        refused = api.delete("/api/v1/users/leaving")
        assert _code(refused) == (409, "user_owns_buckets")
        assert "empty and delete them first" in refused.json()["detail"] and refused.json()["buckets"] == 1
        assert user.delete("/api/v1/buckets/leavers-bucket").status_code in (200, 204)
        assert api.delete("/api/v1/users/leaving").status_code == 204
        assert user.get("/api/v1/me").status_code == 401
    assert _code(api.get("/api/v1/users/leaving")) == (404, "no_such_user")
    gone = cluster.client(None).post("/api/v1/auth/login", json={"name": "leaving", "password": PASSWORD})
    assert _code(gone) == (401, "invalid_credentials")


def test_the_last_enabled_admin_stays(api: httpx.Client) -> None:
    admins = [u["name"] for u in api.get("/api/v1/users").json()["users"] if u["role"] == "admin"]
    assert admins == ["admin"]  # other tests leave no admin behind
    assert _code(api.patch("/api/v1/users/admin", json={"role": "user"})) == (409, "last_admin")
    assert _code(api.patch("/api/v1/users/admin", json={"disabled": True})) == (409, "last_admin")
    assert api.get("/api/v1/users").status_code == 200


def test_api_key_expiry_and_revocation(cluster: Cluster, api: httpx.Client) -> None:
    make_user(api, "key-holder", password=PASSWORD)
    session = _login(cluster, "key-holder")
    with cluster.client(session["access_token"]) as user:
        soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        short = user.post("/api/v1/keys", json={"name": "short", "expires_at": soon})
        assert short.status_code == 201, short.text
        kept = user.post("/api/v1/keys", json={"name": "kept"}).json()
        past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        assert _code(user.post("/api/v1/keys", json={"expires_at": past})) == (400, "invalid_argument")
        assert _code(user.post("/api/v1/keys", json={"expires_at": "tomorrow"})) == (400, "invalid_argument")
        listed = user.get("/api/v1/keys").json()["keys"]
        assert {k["name"] for k in listed} >= {"short", "kept"}
        assert all("token" not in k and "secret_hash" not in k for k in listed)
        assert short.json()["token"] not in user.get("/api/v1/keys").text

    with cluster.client(short.json()["token"]) as by_short, cluster.client(kept["token"]) as by_kept:
        assert by_short.get("/api/v1/me").json()["key_id"] == short.json()["key_id"]
        cluster.wait_for(lambda: by_short.get("/api/v1/me").status_code == 401, timeout=15)
        assert _code(by_short.get("/api/v1/me")) == (401, "invalid_credentials")
        assert by_kept.get("/api/v1/me").status_code == 200
        revoked = by_kept.delete(f"/api/v1/keys/{kept['key_id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert _code(by_kept.get("/api/v1/me")) == (401, "invalid_credentials")


def test_users_revoke_only_their_own_keys(cluster: Cluster, api: httpx.Client) -> None:
    mine = make_user(api, "key-owner-a")
    theirs = make_user(api, "key-owner-b")
    with cluster.client(mine) as a:
        other_id = theirs.split(".")[0]
        assert _code(a.delete(f"/api/v1/keys/{other_id}")) == (404, "no_such_key_id")
    with cluster.client(theirs) as b:
        assert b.get("/api/v1/me").status_code == 200
    assert api.delete(f"/api/v1/keys/{other_id}").status_code == 200  # admins may
    with cluster.client(theirs) as b:
        assert b.get("/api/v1/me").status_code == 401
