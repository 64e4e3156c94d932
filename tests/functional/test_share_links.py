"""Share links against a real cluster: creating, downloading without an account, limits, passwords.

Public requests go through a client without any API key; browsers are
played by an httpx client that asks for HTML and keeps cookies.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster
from cargohold.testing.data import sample
from tests.functional.conftest import burst, tally

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
BIG = 300 * 1024  # past the inline threshold: streamed from the nodes
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def bob(cluster: Cluster) -> str:
    """A second user's API key (made once per cluster)."""
    with cluster.client() as admin:
        return make_user(admin, "bob")


@pytest.fixture
def public(cluster: Cluster) -> Iterator[httpx.Client]:
    """Someone without an account."""
    with cluster.client(key=None) as client:
        yield client


def _put(api: httpx.Client, bucket: str, key: str, data: bytes) -> None:
    reply = api.put(f"/api/v1/buckets/{bucket}/objects/{quote(key)}", content=data)
    assert reply.status_code == 201, reply.text


def _share(api: httpx.Client, **body: object) -> dict:
    reply = api.post("/api/v1/shares", json=body)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def _code(reply: httpx.Response) -> str:
    assert reply.headers["content-type"].startswith("application/problem+json"), reply.text
    return str(reply.json()["code"])


def _link(api: httpx.Client, link_id: str) -> dict:
    reply = api.get(f"/api/v1/shares/{link_id}")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_key_share_downloads_without_an_account(
    cluster: Cluster, api: httpx.Client, public: httpx.Client, bucket: str
) -> None:
    data = sample(BIG, seed=3)
    _put(api, bucket, "docs/Résumé final.pdf", data)
    link = _share(api, bucket=bucket, key="docs/Résumé final.pdf")
    assert link["url"] == "/s/" + link["token"] and len(link["token"]) >= 43
    assert link["absolute_url"] == cluster.url + link["url"]
    assert (link["bucket"], link["key"], link["prefix"]) == (bucket, "docs/Résumé final.pdf", None)
    assert (link["downloads"], link["max_downloads"], link["has_password"]) == (0, None, False)
    assert link["status"] == "active" and link["owner"] == "admin"

    got = public.get(link["url"])
    assert got.status_code == 200, got.text
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    assert got.headers["accept-ranges"] == "bytes" and got.headers["etag"] and got.headers["last-modified"]
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"R_sum_ final.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20final.pdf"
    )
    head = public.head(link["url"])
    assert head.status_code == 200 and head.headers["content-length"] == str(BIG)
    assert public.get(link["url"], headers={"If-None-Match": got.headers["etag"]}).status_code == 304

    shown = _link(api, link["id"])
    assert shown["downloads"] == 1  # HEAD and 304 are not downloads
    assert "token" not in shown and "url" not in shown
    listed = api.get("/api/v1/shares").json()["shares"]
    assert [s["id"] for s in listed if s["id"] == link["id"]] == [link["id"]]
    assert all("token" not in s for s in listed)


def test_unknown_tokens_and_bad_requests(api: httpx.Client, public: httpx.Client, bucket: str) -> None:
    assert _code(public.get("/s/" + "A" * 43)) == "no_such_link"
    assert public.get("/s/" + "A" * 43).status_code == 404
    _put(api, bucket, "f", b"x")
    for body, code in [
        ({"bucket": bucket, "key": "missing"}, "no_such_key"),
        ({"bucket": "no-such-bucket-here", "key": "f"}, "no_such_bucket"),
        ({"bucket": bucket}, "invalid_argument"),
        ({"bucket": bucket, "key": "f", "prefix": "x/"}, "invalid_argument"),
        ({"bucket": bucket, "key": "f", "max_downloads": 0}, "invalid_argument"),
        ({"bucket": bucket, "key": "f", "expires_in": -5}, "invalid_argument"),
        ({"bucket": bucket, "key": "f", "expires_in": 5, "expires_at": "2099-01-01T00:00:00+00:00"}, None),
        ({"bucket": bucket, "key": "f", "expires_at": "2001-01-01T00:00:00+00:00"}, "invalid_argument"),
        ({"bucket": bucket, "key": "f", "password": "short"}, "invalid_argument"),
        ({"bucket": bucket, "prefix": "p/", "version_id": "abc"}, "invalid_argument"),
    ]:
        reply = api.post("/api/v1/shares", json=body)
        assert reply.status_code in (400, 404), (body, reply.text)
        assert code is None or _code(reply) == code, (body, reply.text)
        expected = 404 if code and code.startswith("no_such") else 400
        assert reply.status_code == expected, (body, reply.text)
    assert (
        api.post(
            "/api/v1/shares", json={"bucket": bucket, "key": "f"}, headers={"Authorization": ""}
        ).status_code
        == 401
    )
    with httpx.Client(base_url=str(api.base_url)) as anonymous:
        assert anonymous.get("/api/v1/shares").status_code == 401


def test_range_on_a_share(api: httpx.Client, public: httpx.Client, bucket: str) -> None:
    data = sample(BIG, seed=4)
    _put(api, bucket, "big.bin", data)
    link = _share(api, bucket=bucket, key="big.bin")
    part = public.get(link["url"], headers={"Range": "bytes=1000-200999"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 1000-200999/{BIG}"
    assert part.content == data[1000:201000]
    tail = public.get(link["url"], headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    beyond = public.get(link["url"], headers={"Range": f"bytes={BIG}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{BIG}"
    assert _link(api, link["id"])["downloads"] == 0  # none of these started at byte 0


def test_download_limit_counts_full_downloads_only(
    api: httpx.Client, public: httpx.Client, bucket: str
) -> None:
    data = sample(BIG, seed=5)
    _put(api, bucket, "limited.bin", data)
    link = _share(api, bucket=bucket, key="limited.bin", max_downloads=2)
    assert public.get(link["url"]).content == data  # 1
    resumed = public.get(link["url"], headers={"Range": "bytes=5000-"})  # a resume: not counted
    assert resumed.status_code == 206 and resumed.content == data[5000:]
    assert public.head(link["url"]).status_code == 200  # not counted
    assert _link(api, link["id"])["downloads"] == 1
    first = public.get(link["url"], headers={"Range": "bytes=0-99"})  # starts at 0: counted, 2
    assert first.status_code == 206 and first.content == data[:100]
    assert _link(api, link["id"])["downloads"] == 2
    for headers in ({}, {"Range": "bytes=100-"}):
        gone = public.get(link["url"], headers=headers)
        assert gone.status_code == 410 and _code(gone) == "link_exhausted"
    assert public.head(link["url"]).status_code == 410
    shown = _link(api, link["id"])
    assert (shown["downloads"], shown["status"]) == (2, "exhausted")


@pytest.mark.parametrize("size", [100, BIG], ids=["inline", "streamed"])
def test_concurrent_downloads_never_pass_the_limit(
    cluster: Cluster, api: httpx.Client, bucket: str, size: int
) -> None:
    data = sample(size, seed=6)
    _put(api, bucket, "popular.bin", data)
    link = _share(api, bucket=bucket, key="popular.bin", max_downloads=3)

    def fetch(_: int) -> tuple[int, bytes]:
        with cluster.client(key=None) as own:
            reply = own.get(link["url"])
            return reply.status_code, reply.content

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(fetch, range(12)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 3 + [410] * 9
    assert all(body == data for status, body in results if status == 200)
    assert _link(api, link["id"])["downloads"] == 3


def test_expiry(cluster: Cluster, api: httpx.Client, public: httpx.Client, bucket: str) -> None:
    _put(api, bucket, "soon-gone", b"temporary")
    link = _share(api, bucket=bucket, key="soon-gone", expires_in=1)
    expires_at = datetime.fromisoformat(link["expires_at"])
    assert timedelta(0) < expires_at - datetime.now(UTC) <= timedelta(seconds=2)
    cluster.wait_for(lambda: public.get(link["url"]).status_code == 410, timeout=10)
    assert _code(public.get(link["url"])) == "link_expired"
    assert _link(api, link["id"])["status"] == "expired"
    later = _share(api, bucket=bucket, key="soon-gone", expires_at="2099-01-01T00:00:00+00:00")
    assert later["expires_at"].startswith("2099-01-01")
    assert public.get(later["url"]).content == b"temporary"


def test_revocation(api: httpx.Client, public: httpx.Client, bucket: str) -> None:
    _put(api, bucket, "revocable", b"for now")
    link = _share(api, bucket=bucket, key="revocable")
    assert public.get(link["url"]).status_code == 200
    revoked = api.delete(f"/api/v1/shares/{link['id']}")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    when = revoked.json()["revoked_at"]
    gone = public.get(link["url"])
    assert gone.status_code == 410 and _code(gone) == "link_revoked"
    # A listing parameter out of range is judged before the link: 400, whatever the link is.
    bad = public.get(link["url"], params={"limit": 1001})
    assert (bad.status_code, _code(bad)) == (400, "invalid_argument")
    shown = api.get(f"/api/v1/shares/{link['id']}")
    assert shown.status_code == 410 and _code(shown) == "link_revoked"
    listed = api.get("/api/v1/shares").json()["shares"]
    assert [s["status"] for s in listed if s["id"] == link["id"]] == ["revoked"]
    again = api.delete(f"/api/v1/shares/{link['id']}")
    assert again.status_code == 200 and again.json()["revoked_at"] == when
    assert api.delete("/api/v1/shares/0000000000000000").status_code == 404


def test_password_for_tools(api: httpx.Client, public: httpx.Client, bucket: str) -> None:
    _put(api, bucket, "secret.txt", b"the secret")
    link = _share(api, bucket=bucket, key="secret.txt", password=PASSWORD)
    assert link["has_password"] is True
    asked = public.get(link["url"])
    assert asked.status_code == 401 and _code(asked) == "password_required"
    assert asked.headers["www-authenticate"] == 'Basic realm="share"'
    wrong = public.get(link["url"], headers={"X-Share-Password": "not it at all"})
    assert wrong.status_code == 401 and _code(wrong) == "wrong_password"
    assert public.get(link["url"], headers={"X-Share-Password": PASSWORD}).content == b"the secret"
    assert public.get(link["url"], auth=("anyone", PASSWORD)).content == b"the secret"
    assert public.get(link["url"], auth=("", PASSWORD)).content == b"the secret"
    assert public.head(link["url"]).status_code == 401
    assert _link(api, link["id"])["downloads"] == 3


def test_password_form_and_cookie_in_a_browser(cluster: Cluster, api: httpx.Client, bucket: str) -> None:
    _put(api, bucket, "report.txt", b"quarterly numbers")
    link = _share(api, bucket=bucket, key="report.txt", password=PASSWORD)
    with httpx.Client(
        base_url=cluster.url, headers={"Accept": BROWSER_ACCEPT}, follow_redirects=True
    ) as browser:
        page = browser.get(link["url"])
        assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
        assert not page.headers["www-authenticate"].startswith("Basic")  # our form, not the browser's
        assert '<form method="post"' in page.text and 'name="password"' in page.text
        assert "<script" not in page.text
        wrong = browser.post(link["url"], data={"password": "wrong guess"})
        assert wrong.status_code == 401 and "Wrong password" in wrong.text
        unlocked = browser.post(link["url"], data={"password": PASSWORD})
        # A person sees the file's name and size and a download button; the button gets the bytes.
        assert unlocked.status_code == 200 and unlocked.headers["content-type"].startswith("text/html")
        assert "report.txt" in unlocked.text and "17 B" in unlocked.text
        assert f'href="{link["url"]}?download=1"' in unlocked.text
        (redirect,) = unlocked.history
        assert redirect.status_code == 303 and redirect.headers["location"] == link["url"]
        cookie = redirect.headers["set-cookie"]
        for attribute in ("HttpOnly", "SameSite=Strict", f"Path={link['url']}", "Max-Age="):
            assert attribute in cookie, cookie
        again = browser.get(link["url"] + "?download=1")  # the cookie opens it from now on
        assert again.status_code == 200 and again.content == b"quarterly numbers"
        forged = cookie.split(";")[0].split("=", 1)[1][:-4] + "0000"
        browser.cookies.clear()
        browser.cookies.set("cargohold_share", forged, path=link["url"])
        assert browser.get(link["url"]).status_code == 401
    other = _share(api, bucket=bucket, key="report.txt", password=PASSWORD)
    with httpx.Client(base_url=cluster.url) as tool:  # a cookie of one link opens no other
        tool.cookies.set("cargohold_share", cookie.split(";")[0].split("=", 1)[1], path=other["url"])
        assert tool.get(other["url"]).status_code == 401


def test_error_pages_escape_what_they_show(cluster: Cluster) -> None:
    with httpx.Client(base_url=cluster.url, headers={"Accept": BROWSER_ACCEPT}) as browser:
        page = browser.get("/s/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_wrong_passwords_are_throttled(api: httpx.Client, public: httpx.Client, bucket: str) -> None:
    _put(api, bucket, "guarded", b"guarded")
    link = _share(api, bucket=bucket, key="guarded", password=PASSWORD)
    for attempt in range(5):
        reply = public.get(link["url"], headers={"X-Share-Password": f"guess {attempt}"})
        assert reply.status_code == 401 and _code(reply) == "wrong_password"
    blocked = public.get(link["url"], headers={"X-Share-Password": PASSWORD})  # even the right one, for now
    assert blocked.status_code == 429 and _code(blocked) == "too_many_attempts"
    assert int(blocked.headers["retry-after"]) >= 1
    other = _share(api, bucket=bucket, key="guarded", password=PASSWORD)  # per link: others unaffected
    assert public.get(other["url"], headers={"X-Share-Password": PASSWORD}).status_code == 200


def test_parallel_wrong_link_passwords(cluster: Cluster, api: httpx.Client, bucket: str) -> None:
    """50 wrong passwords at once: 5 checked from one address, 20 across addresses; no 500."""
    _put(api, bucket, "burst", b"burst")
    link = _share(api, bucket=bucket, key="burst", password=PASSWORD)

    def guess(client: httpx.Client) -> httpx.Response:
        return client.get(link["url"], headers={"X-Share-Password": "wrong guess"})

    answers = burst(cluster.url, ["127.0.6.1"] * 50, guess)
    assert tally(answers) == {(401, "wrong_password"): 5, (429, "too_many_attempts"): 45}
    with httpx.Client(
        base_url=cluster.url, transport=httpx.HTTPTransport(local_address="127.0.6.2")
    ) as owner:
        assert owner.get(link["url"], headers={"X-Share-Password": PASSWORD}).content == b"burst"

    answers = burst(cluster.url, [f"127.0.7.{n % 25 + 1}" for n in range(50)], guess)
    # The link had 5 failures (the right password took only itself back): 15 more are checked.
    assert tally(answers) == {(401, "wrong_password"): 15, (429, "too_many_attempts"): 35}
    assert {a.retry_after for a in answers if a.status == 429} <= set(range(1, 31))


def test_prefix_share_lists_and_downloads(
    cluster: Cluster, api: httpx.Client, public: httpx.Client, bucket: str
) -> None:
    files = {"album/one.jpg": b"1" * 10, "album/sub/two & three.jpg": b"2" * 20, "private/x": b"no"}
    for key, data in files.items():
        _put(api, bucket, key, data)
    link = _share(api, bucket=bucket, prefix="album/")
    assert (link["key"], link["prefix"]) == (None, "album/")
    listing = public.get(link["url"])
    assert listing.status_code == 200, listing.text
    entries = listing.json()["objects"]
    assert [(e["name"], e["size"]) for e in entries] == [("one.jpg", 10), ("sub/two & three.jpg", 20)]
    assert listing.json()["truncated"] is False
    for entry in entries:
        got = public.get(entry["url"])
        assert got.status_code == 200 and got.content == files["album/" + entry["name"]]
    paged = public.get(link["url"], params={"limit": 1})
    assert paged.json()["truncated"] is True and len(paged.json()["objects"]) == 1
    rest = public.get(link["url"], params={"limit": 1, "cursor": paged.json()["next_cursor"]})
    assert [e["name"] for e in rest.json()["objects"]] == ["sub/two & three.jpg"]

    for escape in ("/%2E%2E/private/x", "/..%2Fprivate%2Fx", "/../private/x"):
        reply = public.get(link["url"] + escape)
        assert reply.status_code in (400, 404) and reply.content != b"no", (escape, reply.text)
    assert _code(public.get(link["url"] + "/missing.jpg")) == "no_such_key"
    with httpx.Client(base_url=cluster.url, headers={"Accept": BROWSER_ACCEPT}) as browser:
        page = browser.get(link["url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (
        "sub/two &amp; three.jpg" in page.text
        and 'href="' + link["url"] + '/sub/two%20%26%20three.jpg"' in page.text
    )
    key_link = _share(api, bucket=bucket, key="album/one.jpg")
    assert public.get(key_link["url"] + "/anything").status_code == 404


def test_a_prefix_link_judges_its_query_and_names(
    api: httpx.Client, public: httpx.Client, bucket: str
) -> None:
    """The link's listing takes ``limit`` and ``cursor`` on GET and HEAD alike; under the link a
    name that no key could have is not there (404): the URL alone cannot tell its length."""
    _put(api, bucket, "deep/a", b"a")
    _put(api, bucket, "deep/b", b"b")
    link = _share(api, bucket=bucket, prefix="deep/")
    for method in ("GET", "HEAD"):
        refused = public.request(method, link["url"], params={"limit": "0"})
        assert refused.status_code == 400 and refused.headers["content-type"].startswith(
            "application/problem+json"
        )
    refused = public.get(link["url"], params={"cursor": "deep/a\x01"})
    assert refused.status_code == 400 and _code(refused) == "invalid_cursor"
    after = public.get(link["url"], params={"cursor": "deep/a"})
    assert [e["name"] for e in after.json()["objects"]] == ["b"]
    # A query the object under the link does not take is ignored, as on every route.
    assert public.get(link["url"] + "/a", params={"limit": "0", "cursor": "\x01"}).content == b"a"
    long_link = _share(api, bucket=bucket, prefix="deep/" + "p" * 1000 + "/")
    # 1006 bytes of prefix and 100 two-byte characters: longer than any key.
    beyond = public.get(long_link["url"] + "/" + quote("\u00e9" * 100))
    assert beyond.status_code == 404 and _code(beyond) == "no_such_key"


def test_users_share_only_what_they_can_read(
    cluster: Cluster, api: httpx.Client, public: httpx.Client, bucket: str, bob: str
) -> None:
    _put(api, bucket, "team.txt", b"team data")
    admins = _share(api, bucket=bucket, key="team.txt")
    with cluster.client(bob) as as_bob:
        refused = as_bob.post("/api/v1/shares", json={"bucket": bucket, "key": "team.txt"})
        assert refused.status_code == 404 and _code(refused) == "no_such_bucket"
        assert _code(as_bob.get(f"/api/v1/shares/{admins['id']}")) == "no_such_link"
        assert _code(as_bob.delete(f"/api/v1/shares/{admins['id']}")) == "no_such_link"
        assert as_bob.get("/api/v1/shares", params={"all": "true"}).status_code == 403
        assert as_bob.get("/api/v1/shares", params={"bucket": bucket}).status_code == 404

        granted = api.post(f"/api/v1/buckets/{bucket}/grants", json={"user": "bob", "level": "read"})
        assert granted.status_code == 201, granted.text
        bobs = _share(as_bob, bucket=bucket, key="team.txt")
        assert bobs["owner"] == "bob"
        assert [s["id"] for s in as_bob.get("/api/v1/shares").json()["shares"]] == [bobs["id"]]
        assert _code(as_bob.delete(f"/api/v1/shares/{admins['id']}")) == "no_such_link"  # read is not admin
    assert public.get(bobs["url"]).content == b"team data"
    on_bucket = {s["id"] for s in api.get("/api/v1/shares", params={"bucket": bucket}).json()["shares"]}
    assert {admins["id"], bobs["id"]} <= on_bucket
    everyone = {s["id"] for s in api.get("/api/v1/shares", params={"all": "true"}).json()["shares"]}
    assert {admins["id"], bobs["id"]} <= everyone
    assert _link(api, bobs["id"])["owner"] == "bob"  # the bucket's owner sees bob's link

    # The link never grants more than its creator holds now.
    assert api.delete(f"/api/v1/buckets/{bucket}/grants/bob").status_code == 204
    cluster.wait_for(lambda: public.get(bobs["url"]).status_code == 410)
    assert _code(public.get(bobs["url"])) == "link_revoked"
    assert public.get(admins["url"]).status_code == 200


def test_disabled_creator_revokes_their_links(
    cluster: Cluster, api: httpx.Client, public: httpx.Client
) -> None:
    carol = make_user(api, "carol")
    with cluster.client(carol) as as_carol:
        assert as_carol.put("/api/v1/buckets/carols").status_code == 201
        _put(as_carol, "carols", "mine", b"carol's")
        link = _share(as_carol, bucket="carols", key="mine")
    assert public.get(link["url"]).content == b"carol's"
    disabled = api.patch("/api/v1/users/carol", json={"disabled": True})
    assert disabled.status_code == 200, disabled.text
    cluster.wait_for(lambda: public.get(link["url"]).status_code == 410)
    assert _code(public.get(link["url"])) == "link_revoked"
    assert api.patch("/api/v1/users/carol", json={"disabled": False}).status_code == 200
    cluster.wait_for(lambda: public.get(link["url"]).status_code == 200)


def test_curl_downloads_with_a_password(
    cluster: Cluster, api: httpx.Client, bucket: str, tmp_path: Path
) -> None:
    data = sample(BIG, seed=7)
    _put(api, bucket, "for-curl.bin", data)
    link = _share(api, bucket=bucket, key="for-curl.bin", password=PASSWORD)
    for name, auth in (
        ("basic", ["-u", f":{PASSWORD}"]),
        ("header", ["-H", f"X-Share-Password: {PASSWORD}"]),
    ):
        out = tmp_path / name
        done = subprocess.run(
            ["curl", "-sS", "--fail", "-o", str(out), *auth, link["absolute_url"]],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == data
    refused = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", link["absolute_url"]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.stdout == "401"
    assert _link(api, link["id"])["downloads"] == 2


def test_history_records_share_actions(
    cluster: Cluster, api: httpx.Client, public: httpx.Client, bucket: str
) -> None:
    _put(api, bucket, "audited", b"audited")
    link = _share(api, bucket=bucket, key="audited")
    assert public.get(link["url"]).status_code == 200
    assert public.get(link["url"], headers={"X-Share-Password": "x"}).status_code == 200

    def rows(action: str) -> list[dict]:
        reply = api.get("/api/v1/history", params={"action": action, "bucket": bucket})
        assert reply.status_code == 200, reply.text
        return [e for e in reply.json()["events"] if (e.get("detail") or {}).get("link") == link["id"]]

    cluster.wait_for(lambda: len(rows("share.download")) == 2 and len(rows("share.create")) == 1)
    download = rows("share.download")[0]
    assert download["key"] == "audited" and download["bucket"] == bucket and download["result"] == "ok"
    assert download["size"] == len(b"audited") and download["user"] is None  # nobody signed in


def test_refused_link_attempts_are_recorded_on_the_bucket(
    cluster: Cluster, api: httpx.Client, public: httpx.Client, bucket: str
) -> None:
    """The owner sees wrong passwords and downloads past the limit in the bucket's history."""
    _put(api, bucket, "guarded", b"guarded")
    link = _share(api, bucket=bucket, key="guarded", password="right password", max_downloads=1)
    assert public.get(link["url"], headers={"X-Share-Password": "wrong"}).status_code == 401
    assert public.get(link["url"], headers={"X-Share-Password": "right password"}).status_code == 200
    assert public.get(link["url"], headers={"X-Share-Password": "right password"}).status_code == 410

    def results() -> list[tuple[int, str]]:
        reply = api.get("/api/v1/history", params={"action": "share.download", "bucket": bucket})
        events = [e for e in reply.json()["events"] if (e.get("detail") or {}).get("link") == link["id"]]
        return sorted((e["status"], e["result"]) for e in events)

    cluster.wait_for(lambda: len(results()) == 3)
    assert results() == [(200, "ok"), (401, "wrong_password"), (410, "link_exhausted")]
