"""Sign-in, refresh, logout, password change and throttling against a real gateway.

Runs on SQLite and on PostgreSQL. The gateway caches sessions for 300 s, so
"stops at once" below is the gateway dropping its cache. Throttling is per
client address: tests that fail on purpose connect from their own loopback
addresses (127.0.x.y), so they neither block each other nor the rest.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster
from tests.conftest import BOTH_STORES
from tests.functional.conftest import accounts_cluster, burst, tally

PASSWORD = "a fine password"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
PASSWD = "/api/v1/auth/password"


@pytest.fixture(scope="module", params=BOTH_STORES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with accounts_cluster(request, tmp_path_factory, "auth") as running:
        yield running


def _from(cluster: Cluster, address: str, token: str | None = None) -> httpx.Client:
    """A client connecting from ``address`` (any 127.x.y.z works on loopback)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=cluster.url, headers=headers, transport=transport, timeout=30)


def _login(
    cluster: Cluster, name: str, password: str = PASSWORD, address: str = "127.0.0.1"
) -> httpx.Response:
    with _from(cluster, address) as client:
        return client.post(LOGIN, json={"name": name, "password": password})


def _session(cluster: Cluster, name: str, password: str = PASSWORD) -> dict:
    reply = _login(cluster, name, password)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _refresh(cluster: Cluster, token: str) -> httpx.Response:
    return cluster.client(None).post(REFRESH, json={"refresh_token": token})


def _code(reply: httpx.Response) -> tuple[int, str]:
    return reply.status_code, reply.json().get("code")


def _me(cluster: Cluster, token: str) -> httpx.Response:
    with cluster.client(token) as client:
        return client.get("/api/v1/me")


def test_sign_in_calls_public_and_private(cluster: Cluster, api: httpx.Client) -> None:
    make_user(api, "signer", password=PASSWORD)
    anonymous = cluster.client(None)
    assert anonymous.post(LOGIN, json={"name": "signer", "password": PASSWORD}).status_code == 200
    assert _code(anonymous.post(REFRESH, json={"refresh_token": "0" * 32 + ".x"})) == (
        401,
        "invalid_refresh_token",
    )
    for path in (LOGOUT, PASSWD):
        assert _code(anonymous.post(path, json={})) == (401, "unauthorized")


def test_login_answers(cluster: Cluster, api: httpx.Client) -> None:
    make_user(api, "answers", password=PASSWORD)
    reply = _login(cluster, "answers")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["access_token"].count(".") == 2 and body["user"]["name"] == "answers"
    token_id, secret = body["refresh_token"].split(".")
    assert len(token_id) == 32 and len(secret) >= 40 and len(body["family_id"]) == 32
    claims = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[1] + "=="))
    assert claims["sid"] == body["family_id"] and claims["typ"] == "access" and claims["name"] == "answers"
    assert claims["exp"] - claims["iat"] in (900, 901)
    me = _me(cluster, body["access_token"]).json()
    assert (me["name"], me["session"], me["key_id"]) == ("answers", body["family_id"], None)

    wrong = _login(cluster, "answers", "not the password", address="127.0.9.1")
    unknown = _login(cluster, "ghost-of-answers", PASSWORD, address="127.0.9.2")
    assert _code(wrong) == _code(unknown) == (401, "invalid_credentials")
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert _code(cluster.client(None).post(LOGIN, json={"password": PASSWORD})) == (400, "invalid_argument")

    def failed_login_recorded() -> bool:
        events = api.get("/api/v1/history", params={"action": "auth.login"}).json()["events"]
        return any(e["user"] == "ghost-of-answers" and e["result"] == "invalid_credentials" for e in events)

    cluster.wait_for(failed_login_recorded)


def test_tampered_and_malformed_tokens(cluster: Cluster, api: httpx.Client) -> None:
    make_user(api, "tamperer", password=PASSWORD)
    token = _session(cluster, "tamperer")["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "name": "admin", "sub": "1"}).encode())
    forged_token = f"{header}.{forged.rstrip(b'=').decode()}.{signature}"
    assert _code(_me(cluster, forged_token)) == (401, "invalid_token")
    assert _code(_me(cluster, "a.b.c")) == (401, "invalid_token")
    assert _me(cluster, token).status_code == 200


def test_refresh_rotation_and_reuse(cluster: Cluster, api: httpx.Client) -> None:
    make_user(api, "rotator", password=PASSWORD)
    first = _session(cluster, "rotator")
    second = _refresh(cluster, first["refresh_token"])
    assert second.status_code == 200, second.text
    second_body = second.json()
    assert second_body["family_id"] == first["family_id"]
    assert second_body["refresh_token"] != first["refresh_token"]
    assert _me(cluster, second_body["access_token"]).status_code == 200
    assert _me(cluster, first["access_token"]).status_code == 200  # same live family

    reused = _refresh(cluster, first["refresh_token"])
    assert _code(reused) == (401, "refresh_token_reused")
    assert _code(_refresh(cluster, second_body["refresh_token"])) == (401, "refresh_token_reused")
    for token in (first["access_token"], second_body["access_token"]):
        assert _code(_me(cluster, token)) == (401, "session_revoked")
    assert _session(cluster, "rotator")["family_id"] != first["family_id"]  # a fresh sign-in works


def test_logout(cluster: Cluster, api: httpx.Client) -> None:
    key = make_user(api, "leaver", password=PASSWORD)
    one, two, three = (_session(cluster, "leaver") for _ in range(3))
    for session in (one, two, three):
        assert _me(cluster, session["access_token"]).status_code == 200  # cached as live for 300 s
    with cluster.client(one["access_token"]) as by_one:
        assert by_one.post(LOGOUT, json={}).json() == {"revoked_families": 1}
        assert _code(by_one.get("/api/v1/me")) == (401, "session_revoked")
    assert _code(_refresh(cluster, one["refresh_token"])) == (401, "refresh_token_reused")
    with cluster.client(two["access_token"]) as by_two:  # end another session of mine by its token
        assert by_two.post(LOGOUT, json={"refresh_token": three["refresh_token"]}).status_code == 200
        assert _code(_me(cluster, three["access_token"])) == (401, "session_revoked")
        assert by_two.get("/api/v1/me").status_code == 200
    four = _session(cluster, "leaver")
    with cluster.client(key) as by_key:
        assert _code(by_key.post(LOGOUT, json={})) == (409, "no_session")
        assert by_key.post(LOGOUT, json={"all": True}).json() == {"revoked_families": 2}
        assert by_key.get("/api/v1/me").status_code == 200  # API keys are not sessions
    for session in (two, four):
        assert _code(_me(cluster, session["access_token"])) == (401, "session_revoked")
    stranger = make_user(api, "stranger")
    with cluster.client(stranger) as other:  # someone else's refresh token is unknown to me
        reply = other.post(LOGOUT, json={"refresh_token": _session(cluster, "leaver")["refresh_token"]})
        assert _code(reply) == (401, "invalid_refresh_token")


def test_change_own_password(cluster: Cluster, api: httpx.Client) -> None:
    make_user(api, "changer", password=PASSWORD)
    here, there = _session(cluster, "changer"), _session(cluster, "changer")
    assert _me(cluster, there["access_token"]).status_code == 200
    with _from(cluster, "127.0.8.1", here["access_token"]) as client:
        wrong = client.post(PASSWD, json={"current_password": "nope", "new_password": "a newer password"})
        assert _code(wrong) == (403, "wrong_password")
        short = client.post(PASSWD, json={"current_password": PASSWORD, "new_password": "short"})
        assert _code(short) == (400, "invalid_argument")
        done = client.post(PASSWD, json={"current_password": PASSWORD, "new_password": "a newer password"})
        assert done.status_code == 200, done.text
        assert client.get("/api/v1/me").status_code == 200  # this session stays
    assert _code(_me(cluster, there["access_token"])) == (401, "session_revoked")
    assert _code(_refresh(cluster, there["refresh_token"])) == (401, "refresh_token_reused")
    assert _code(_login(cluster, "changer", address="127.0.8.2")) == (401, "invalid_credentials")
    _session(cluster, "changer", "a newer password")


def test_parallel_wrong_passwords_from_one_address(cluster: Cluster, api: httpx.Client) -> None:
    """50 wrong passwords at once from one address: 5 are checked, 45 refused; the owner is not locked out."""
    make_user(api, "burst-target", password=PASSWORD)
    answers = burst(
        cluster.url,
        ["127.0.4.1"] * 50,
        lambda client: client.post(LOGIN, json={"name": "burst-target", "password": "wrong guess"}),
    )
    assert tally(answers) == {(401, "invalid_credentials"): 5, (429, "too_many_attempts"): 45}
    assert {a.retry_after for a in answers if a.status == 429} <= set(range(1, 31))
    assert _login(cluster, "burst-target", address="127.0.4.2").status_code == 200  # the owner, elsewhere


def test_parallel_wrong_passwords_from_many_addresses(cluster: Cluster, api: httpx.Client) -> None:
    """From 25 addresses at once: the user's own count lets 20 through and blocks for at most 30 s."""
    make_user(api, "spread-target", password=PASSWORD)
    make_user(api, "spread-bystander", password=PASSWORD)
    answers = burst(
        cluster.url,
        [f"127.0.5.{n % 25 + 1}" for n in range(50)],
        lambda client: client.post(LOGIN, json={"name": "spread-target", "password": "wrong guess"}),
    )
    over = time.monotonic()
    assert tally(answers) == {(401, "invalid_credentials"): 20, (429, "too_many_attempts"): 30}
    assert {a.retry_after for a in answers if a.status == 429} <= set(range(1, 31))
    assert _login(cluster, "spread-bystander", address="127.0.5.99").status_code == 200
    # The block began before the burst was over, and lasts 30 s at most.
    cluster.wait_for(
        lambda: _login(cluster, "spread-target", address="127.0.5.99").status_code == 200, 31, 0.5
    )
    assert time.monotonic() - over <= 31


def test_login_throttled_per_address(cluster: Cluster, api: httpx.Client) -> None:
    make_user(api, "victim-of-spray", password=PASSWORD)
    make_user(api, "cleared", password=PASSWORD)
    # A success clears the user's count but only takes itself back from the address's.
    for _ in range(4):
        assert _login(cluster, "cleared", "wrong", address="127.0.2.1").status_code == 401
    assert _login(cluster, "cleared", address="127.0.2.1").status_code == 200
    for _ in range(4):  # the user's four failures were forgotten: four more do not block
        assert _login(cluster, "cleared", "wrong", address="127.0.2.1").status_code == 401
    assert _login(cluster, "cleared", address="127.0.2.1").status_code == 200
    for n in range(12):  # names that do not even exist: 8 + 12 = 20 failures from this address
        assert _code(_login(cluster, f"spray-{n}", "wrong", address="127.0.2.1")) == (
            401,
            "invalid_credentials",
        )
    blocked = _login(cluster, "victim-of-spray", address="127.0.2.1")
    assert _code(blocked) == (429, "too_many_attempts") and int(blocked.headers["Retry-After"]) >= 1
    assert _login(cluster, "victim-of-spray", address="127.0.2.2").status_code == 200


def test_password_change_throttled(cluster: Cluster, api: httpx.Client) -> None:
    key = make_user(api, "forgetful", password=PASSWORD)
    with _from(cluster, "127.0.3.1", key) as client:
        for _ in range(5):
            reply = client.post(
                PASSWD, json={"current_password": "guess", "new_password": "a newer password"}
            )
            assert _code(reply) == (403, "wrong_password")
        reply = client.post(PASSWD, json={"current_password": PASSWORD, "new_password": "a newer password"})
        assert _code(reply) == (429, "too_many_attempts") and "Retry-After" in reply.headers
    assert _code(_login(cluster, "forgetful", address="127.0.3.1")) == (429, "too_many_attempts")
    assert _login(cluster, "forgetful", address="127.0.3.2").status_code == 200


def test_every_gateway_accepts_every_token(cluster: Cluster, api: httpx.Client) -> None:
    """A second gateway on the same store verifies tokens the first issued, and learns of logouts."""
    make_user(api, "traveller", password=PASSWORD)
    session = _session(cluster, "traveller")
    second = Cluster(cluster.root, db_url=cluster.db_url, env={"CARGOHOLD_AUTH_CACHE_SECONDS": "1"})
    second.start_gateway()
    try:
        with second.client(session["access_token"]) as elsewhere:
            assert elsewhere.get("/api/v1/me").json()["session"] == session["family_id"]
            refreshed = second.client(None).post(REFRESH, json={"refresh_token": session["refresh_token"]})
            assert refreshed.status_code == 200, refreshed.text
            assert _me(cluster, refreshed.json()["access_token"]).status_code == 200
            with cluster.client(session["access_token"]) as here:
                assert here.post(LOGOUT, json={}).status_code == 200
            second.wait_for(lambda: elsewhere.get("/api/v1/me").status_code == 401, timeout=15)
            assert elsewhere.get("/api/v1/me").json()["code"] == "session_revoked"
    finally:
        second.stop_gateway()


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Access tokens that live three seconds (the store does not matter here)."""
    env = {"CARGOHOLD_ACCESS_TOKEN_TTL": "3"}
    root: Path = tmp_path_factory.mktemp("short")
    with Cluster(root, node_count=1, layout="mirror:1", env=env) as running:
        yield running


def test_access_token_expires_and_refresh_renews(short_lived: Cluster) -> None:
    with short_lived.client() as admin:
        make_user(admin, "brief", password=PASSWORD)
    session = _session(short_lived, "brief")
    assert session["expires_in"] == 3
    with short_lived.client(session["access_token"]) as client:
        assert client.get("/api/v1/me").status_code == 200
        short_lived.wait_for(lambda: client.get("/api/v1/me").status_code == 401, timeout=15)
        assert _code(client.get("/api/v1/me")) == (401, "token_expired")
    renewed = _refresh(short_lived, session["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    assert _me(short_lived, renewed.json()["access_token"]).status_code == 200
