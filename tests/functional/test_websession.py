"""The web page's server side without a browser: its files, the cookie sign-in, CSRF, idle timeout,
and the per-bucket tus endpoint a stock tus client uses."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from tusclient.client import TusClient

from cargohold.service.tokens import TokenSigner, signing_key
from cargohold.testing.cluster import ADMIN_KEY, ADMIN_PASSWORD, SECRET, Cluster
from cargohold.testing.data import sample

LOGIN = "/api/v1/auth/cookie/login"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("websession"), node_count=1, layout="mirror:1") as running:
        yield running


@pytest.fixture
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.client() as client:
        yield client


@pytest.fixture
def browser(cluster: Cluster) -> Iterator[httpx.Client]:
    """A client that keeps cookies as a browser does, signed in through the page's form."""
    with httpx.Client(base_url=cluster.url, timeout=60) as client:
        reply = client.post(LOGIN, json={"name": "admin", "password": ADMIN_PASSWORD})
        assert reply.status_code == 200, reply.text
        yield client


def _csrf(client: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": client.cookies["cargohold_csrf"]}


def test_the_page_is_served_with_its_own_policy(cluster: Cluster) -> None:
    with httpx.Client(base_url=cluster.url) as client:
        root = client.get("/ui")
        assert root.status_code == 308 and root.headers["location"] == "/ui/"
        page = client.get("/ui/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert '<script type="module" src="app.js">' in page.text
        script = client.get("/ui/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        again = client.get("/ui/app.js", headers={"If-None-Match": script.headers["etag"]})
        assert again.status_code == 304
        vendored = client.get("/ui/vendor/tus.min.js")
        assert vendored.status_code == 200 and len(vendored.content) > 10_000
        assert "MIT" in client.get("/ui/vendor/tus-js-client.LICENSE.txt").text
        for path, code in (
            ("/ui/nothing.js", "no_such_file"),
            ("/ui/static/share.html", "no_such_file"),
            ("/ui/..%2F..%2Fapi%2Fapp.py", "route_not_found"),  # never reaches the files
        ):
            missing = client.get(path)
            assert missing.status_code == 404, path
            assert missing.json()["code"] == code, path


def test_sign_in_sets_an_httponly_strict_cookie_and_a_csrf_cookie(cluster: Cluster) -> None:
    with httpx.Client(base_url=cluster.url) as client:
        reply = client.post(LOGIN, json={"name": "admin", "password": ADMIN_PASSWORD})
        assert reply.status_code == 200, reply.text
        cookies = reply.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("cargohold_session="))
        csrf = next(c for c in cookies if c.startswith("cargohold_csrf="))
        for attribute in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=1800"):
            assert attribute in session, session
        assert "HttpOnly" not in csrf and "SameSite=Strict" in csrf
        assert "Secure" not in session  # plain HTTP here; TLS adds it
        body = reply.json()
        assert body["user"]["name"] == "admin" and body["idle_timeout"] == 1800
        assert body["csrf_token"] == client.cookies["cargohold_csrf"]
        assert "access_token" not in body and "refresh_token" not in body
        me = client.get("/api/v1/auth/cookie")
        assert me.status_code == 200 and me.json()["csrf_token"] == body["csrf_token"]


def test_wrong_passwords_are_throttled_like_the_api(cluster: Cluster, api: httpx.Client) -> None:
    made = api.post("/api/v1/users", json={"name": "guesser-target", "password": "right-password-1"})
    assert made.status_code == 201, made.text
    with httpx.Client(base_url=cluster.url) as client:
        codes = [
            client.post(LOGIN, json={"name": "guesser-target", "password": f"wrong-{i}"}).json()["code"]
            for i in range(6)
        ]
    assert codes == ["invalid_credentials"] * 5 + ["too_many_attempts"]


def test_state_changes_need_the_csrf_token(browser: httpx.Client, api: httpx.Client) -> None:
    assert browser.get("/api/v1/buckets").status_code == 200  # reading needs none
    refused = browser.put("/api/v1/buckets/csrf-missing")
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_rejected"
    wrong = browser.put("/api/v1/buckets/csrf-missing", headers={"X-CSRF-Token": "A" * 43})
    assert wrong.status_code == 403 and wrong.json()["code"] == "csrf_rejected"
    assert api.get("/api/v1/buckets/csrf-missing").status_code == 404
    made = browser.put("/api/v1/buckets/csrf-given", headers=_csrf(browser))
    assert made.status_code == 201, made.text
    # tus through the cookie is held to the same rule, and answers in tus's terms.
    upload = browser.post(
        "/tus/csrf-given/", headers={**TUS, "Upload-Length": "1", "Upload-Metadata": "filename eC50eHQ="}
    )
    assert upload.status_code == 403 and upload.json()["code"] == "csrf_rejected"
    # A bearer key is not a cookie: no CSRF token needed, even with a cookie beside it.
    keyed = browser.put("/api/v1/buckets/csrf-bearer", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert keyed.status_code == 201, keyed.text


def test_sign_out_ends_the_session_everywhere(cluster: Cluster, browser: httpx.Client) -> None:
    cookie = browser.cookies["cargohold_session"]
    assert browser.post("/api/v1/auth/cookie/logout").json()["code"] == "csrf_rejected"
    out = browser.post("/api/v1/auth/cookie/logout", headers=_csrf(browser))
    assert out.status_code == 204
    assert "cargohold_session" not in browser.cookies
    with httpx.Client(base_url=cluster.url, cookies={"cargohold_session": cookie}) as stale:
        reply = stale.get("/api/v1/buckets")
    assert reply.status_code == 401 and reply.json()["code"] == "session_revoked"


def _forged(cookie: str, issued_ago: float, ttl: float) -> str:
    """The same session's cookie as if issued ``issued_ago`` seconds ago with lifetime ``ttl``."""
    claims = jwt.decode(cookie, options={"verify_signature": False})
    signer = TokenSigner(signing_key(None, SECRET), ttl)
    issued = datetime.now(UTC) - timedelta(seconds=issued_ago)
    return signer.issue(int(claims["sub"]), claims["name"], claims["sid"], now=issued)


def test_an_idle_cookie_lapses_and_a_used_one_is_renewed(cluster: Cluster, browser: httpx.Client) -> None:
    cookie = browser.cookies["cargohold_session"]
    with httpx.Client(base_url=cluster.url) as client:
        client.cookies.set("cargohold_session", _forged(cookie, 1900, 1800))
        lapsed = client.get("/api/v1/buckets")
        assert lapsed.status_code == 401 and lapsed.json()["code"] == "token_expired"
        client.cookies.set("cargohold_session", _forged(cookie, 120, 1800))
        used = client.get("/api/v1/buckets")
        assert used.status_code == 200
        renewed = next(c for c in used.headers.get_list("set-cookie") if c.startswith("cargohold_session="))
        fresh = jwt.decode(renewed.split(";")[0].split("=", 1)[1], options={"verify_signature": False})
        assert fresh["exp"] - datetime.now(UTC).timestamp() > 1790
        recent = browser.get("/api/v1/buckets")  # issued a moment ago: nothing to renew
        assert recent.status_code == 200 and "set-cookie" not in recent.headers


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def test_a_stock_tus_client_needs_only_the_bucket_endpoint(
    cluster: Cluster, api: httpx.Client, tmp_path: Path
) -> None:
    assert api.put("/api/v1/buckets/tus-drop").status_code == 201
    data = sample(300_000)
    client = TusClient(cluster.url + "/tus/tus-drop/", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    uploader = client.uploader(
        file_stream=io.BytesIO(data), chunk_size=100_000, metadata={"filename": "holiday.jpg"}
    )
    uploader.upload()
    assert api.get("/api/v1/buckets/tus-drop/objects/holiday.jpg").content == data

    tus = {**TUS, "Authorization": f"Bearer {ADMIN_KEY}"}
    folder = api.post(
        "/tus/tus-drop/",
        headers={
            **tus,
            "Upload-Length": "3",
            "Upload-Metadata": _meta(relativePath="a/b.txt", filename="b.txt"),
        },
    )
    assert folder.status_code == 201, folder.text
    patch = {**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    assert api.patch(folder.headers["location"], content=b"abc", headers=patch).status_code == 204
    assert api.get("/api/v1/buckets/tus-drop/objects/a/b.txt").content == b"abc"

    bare = api.post("/tus/tus-drop/", headers={**tus, "Upload-Length": "5"})
    assert bare.status_code == 201, bare.text
    upload_id = bare.headers["location"].rsplit("/", 1)[1]
    assert api.patch(bare.headers["location"], content=b"named", headers=patch).status_code == 204
    assert api.get(f"/api/v1/buckets/tus-drop/objects/{upload_id}").content == b"named"

    assert api.options("/tus/tus-drop/").status_code == 204
    missing = api.post("/tus/no-such-bucket/", headers={**tus, "Upload-Length": "1"})
    assert missing.status_code == 404 and missing.json()["code"] == "no_such_bucket"
    # The shared endpoint still wants the bucket and a name in the metadata.
    unnamed = api.post(
        "/tus/", headers={**tus, "Upload-Length": "1", "Upload-Metadata": _meta(bucket="tus-drop")}
    )
    assert unnamed.status_code == 400 and unnamed.json()["code"] == "invalid_argument"
