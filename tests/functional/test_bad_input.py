"""Every bad input gets its documented 4xx and code from a real gateway, never a 500.

One node (mirror:1) is enough: nothing here stores more than a few bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from cargohold.testing.cluster import Cluster

API = "/api/v1"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("bad-input"), node_count=1, layout="mirror:1") as running:
        yield running


@pytest.fixture(scope="module")
def bucket(cluster: Cluster) -> str:
    with cluster.client() as admin:
        assert admin.put(f"{API}/buckets/inputs").status_code == 201
    return "inputs"


def _problem(reply: httpx.Response) -> tuple[int, str]:
    assert reply.headers["content-type"].startswith("application/problem+json"), reply.text
    return reply.status_code, str(reply.json()["code"])


def _raw(client: httpx.Client, method: str, raw_path: str, **kwargs: object) -> httpx.Response:
    """Send ``raw_path`` exactly as written (percent-escapes included), not as httpx would encode it."""
    url = httpx.URL(client.base_url).copy_with(raw_path=raw_path.encode("ascii"))
    return client.request(method, url, **kwargs)  # type: ignore[arg-type]


# -- names and keys ---------------------------------------------------------------------------


def test_bucket_names_must_match_entirely(api: httpx.Client) -> None:
    assert _problem(_raw(api, "PUT", f"{API}/buckets/abc%0A")) == (400, "invalid_bucket_name")
    assert _problem(api.post(f"{API}/uploads", json={"bucket": "abc\n", "key": "k"})) == (
        400,
        "invalid_bucket_name",
    )


def test_user_names_must_match_entirely(api: httpx.Client) -> None:
    created = api.post(f"{API}/users", json={"name": "bob\n", "password": "a fine password"})
    assert _problem(created) == (400, "invalid_argument")
    assert _problem(_raw(api, "GET", f"{API}/users/bob%0A")) == (404, "no_such_user")


@pytest.mark.parametrize(
    "escaped",
    [
        "a%0Ab",  # newline: a clear 400, not the router's 404
        "a%00b",  # NUL
        "a%7Fb",  # DEL
        "a%C2%85b",  # NEL, a C1 control
        "a%C2%9Bb",  # CSI, a C1 control
        "a%E2%80%AEb",  # RIGHT-TO-LEFT OVERRIDE
        "a%E2%80%AAb",  # LEFT-TO-RIGHT EMBEDDING
        "a%E2%81%A6b",  # LEFT-TO-RIGHT ISOLATE
        "a%E2%81%A9b",  # POP DIRECTIONAL ISOLATE
        "a%FFb",  # not UTF-8
        "dir/a%C3b",  # a truncated UTF-8 sequence
    ],
)
def test_keys_in_the_path_refuse_controls_bidi_and_bad_utf8(
    api: httpx.Client, bucket: str, escaped: str
) -> None:
    path = f"{API}/buckets/{bucket}/objects/{escaped}"
    assert _problem(_raw(api, "PUT", path, content=b"x")) == (400, "invalid_key")
    assert _problem(_raw(api, "GET", path)) == (400, "invalid_key")
    listing = api.get(f"{API}/buckets/{bucket}/objects").json()
    assert [o["key"] for o in listing["objects"] if o["key"].startswith(("a", "dir/"))] == []


@pytest.mark.parametrize("key", ["a\u0085b", "a\u202eb", "a\u2068b", "a\x1bb", "a\udcffb"])
def test_keys_in_bodies_follow_the_same_rules(api: httpx.Client, bucket: str, key: str) -> None:
    body = json.dumps({"bucket": bucket, "key": key})  # a lone surrogate survives only as \\udcff
    created = api.post(f"{API}/uploads", content=body, headers={"Content-Type": "application/json"})
    assert _problem(created) == (400, "invalid_key")
    api.put(f"{API}/buckets/{bucket}/objects/src", content=b"s")
    assert _problem(api.post(f"{API}/buckets/{bucket}/rename/src", content=json.dumps({"to_key": key}))) == (
        400,
        "invalid_key",
    )


def test_percent_escaped_percent_is_an_ordinary_key(api: httpx.Client, bucket: str) -> None:
    stored = _raw(api, "PUT", f"{API}/buckets/{bucket}/objects/100%25FF", content=b"p")
    assert stored.status_code == 201 and stored.json()["key"] == "100%FF"


# -- integers and dates ---------------------------------------------------------------------------


def test_integers_beyond_their_columns(api: httpx.Client, bucket: str) -> None:
    api.put(f"{API}/buckets/{bucket}/objects/shared", content=b"s")
    too_big = [
        api.post(f"{API}/users", json={"name": "huge", "password": "a fine password", "quota_bytes": 2**63}),
        api.post(f"{API}/users", json={"name": "huge", "password": "a fine password", "quota_bytes": -1}),
        api.post(f"{API}/users", json={"name": "huge", "password": "a fine password", "quota_bytes": 1000.5}),
        api.post(f"{API}/shares", json={"bucket": bucket, "key": "shared", "max_downloads": 2**31}),
        api.post(f"{API}/uploads", json={"bucket": bucket, "key": "k", "size": 2**63}),
        api.post(f"{API}/nodes", json={"url": "http://127.0.0.1:1", "zone": "z" * 65}),
        api.get(f"{API}/buckets/{bucket}/objects", params={"limit": str(2**31)}),
        api.get(f"{API}/buckets/{bucket}/objects", params={"limit": "\u00b2"}),
        api.get(f"{API}/buckets/{bucket}/objects", params={"limit": "-1"}),
        api.get(f"{API}/history", params={"limit": "\u00b2"}),
    ]
    assert [_problem(reply) for reply in too_big] == [(400, "invalid_argument")] * len(too_big)
    for node_id in (2**31 - 1, 2**31, 10**30):  # ids the store cannot hold name no node either
        assert _problem(api.patch(f"{API}/nodes/{node_id}", json={"enabled": True})) == (404, "no_such_node")


def test_numeric_headers_beyond_64_bits(api: httpx.Client, bucket: str) -> None:
    created = api.post(
        "/tus/", headers={**TUS, "Upload-Length": str(2**64), "Upload-Metadata": "bucket aW5wdXRz,key aw=="}
    )
    assert _problem(created) == (400, "invalid_argument")  # tus errors are problem+json like the rest
    far = api.get(f"{API}/buckets/{bucket}/objects/shared", headers={"Range": "bytes=" + "9" * 5000 + "-"})
    assert _problem(far) == (416, "invalid_range")


def test_dates_are_bounded(api: httpx.Client, bucket: str) -> None:
    api.put(f"{API}/buckets/{bucket}/objects/dated", content=b"d")
    refused = [
        api.post(
            f"{API}/shares",
            json={"bucket": bucket, "key": "dated", "expires_at": "9999-12-31T23:59:59-12:00"},
        ),
        api.post(
            f"{API}/shares",
            json={"bucket": bucket, "key": "dated", "expires_at": "2500-01-01T00:00:00+00:00"},
        ),
        api.post(f"{API}/shares", json={"bucket": bucket, "key": "dated", "expires_in": 1e300}),
        api.post(f"{API}/keys", json={"expires_at": "9999-12-31T23:59:59+00:00"}),
    ]
    assert [_problem(reply) for reply in refused] == [(400, "invalid_argument")] * len(refused)
    fine = api.post(f"{API}/shares", json={"bucket": bucket, "key": "dated", "expires_in": 86400 * 365 * 50})
    assert fine.status_code == 201, fine.text


# -- bodies ------------------------------------------------------------------------------------------


def test_json_bodies_are_bounded_in_size_and_depth(cluster: Cluster, api: httpx.Client) -> None:
    big = json.dumps({"name": "x" * 70_000})
    assert _problem(api.post(f"{API}/keys", content=big)) == (413, "payload_too_large")

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"name": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    assert _problem(api.post(f"{API}/keys", content=chunked())) == (413, "payload_too_large")
    with cluster.client(None) as anonymous:
        nested = "[" * 10_000 + "]" * 10_000
        assert _problem(anonymous.post(f"{API}/auth/login", content=nested)) == (400, "invalid_argument")
        deep = '{"name": ' + "[" * 17 + "]" * 17 + ', "password": "x"}'
        assert _problem(anonymous.post(f"{API}/auth/login", content=deep)) == (400, "invalid_argument")
        brackets_in_strings = json.dumps({"name": "[" * 60, "password": "{" * 100})
        assert _problem(anonymous.post(f"{API}/auth/login", content=brackets_in_strings)) == (
            401,
            "invalid_credentials",
        )
        assert _problem(anonymous.post(f"{API}/auth/login", content='{"name": NaN}')) == (
            400,
            "invalid_argument",
        )
        assert _problem(anonymous.post(f"{API}/auth/login", content=b'{"name": "\xff"}')) == (
            400,
            "invalid_argument",
        )


def test_malformed_forms_on_share_links(cluster: Cluster, api: httpx.Client, bucket: str) -> None:
    api.put(f"{API}/buckets/{bucket}/objects/formed", content=b"f")
    link = api.post(f"{API}/shares", json={"bucket": bucket, "key": "formed", "password": "a fine password"})
    url = link.json()["url"]
    with cluster.client(None) as public:
        no_boundary = public.post(url, content=b"password=x", headers={"Content-Type": "multipart/form-data"})
        assert _problem(no_boundary) == (400, "invalid_argument")
        broken = public.post(
            url, content=b"--b\r\nnot a part", headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
        assert _problem(broken) == (400, "invalid_argument")
        wrong_type = public.post(url, content=b"password=x", headers={"Content-Type": "text/plain"})
        assert _problem(wrong_type) == (400, "invalid_argument")
        right = public.post(url, data={"password": "a fine password"})
        assert right.status_code == 303


# -- methods and routes ------------------------------------------------------------------------------


def test_method_override_is_authenticated_as_the_method_it_becomes(
    cluster: Cluster, api: httpx.Client
) -> None:
    created = api.post(
        "/tus/", headers={**TUS, "Upload-Length": "3", "Upload-Metadata": "bucket aW5wdXRz,key b3Zlcg=="}
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    override = {**TUS, "X-HTTP-Method-Override": "DELETE"}
    with cluster.client(None) as anonymous:
        refused = anonymous.options(location, headers=override)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.options(location, headers=TUS).status_code == 204  # plain OPTIONS stays public
    assert api.head(location, headers=TUS).status_code == 200  # the handler never ran
    assert api.options(location, headers=override).status_code == 204  # with credentials it deletes
    assert api.head(location, headers=TUS).status_code == 404


def test_method_override_is_ignored_outside_tus(api: httpx.Client, bucket: str) -> None:
    reply = api.post(
        f"{API}/buckets/{bucket}/objects/ignored", content=b"x", headers={"X-HTTP-Method-Override": "PUT"}
    )
    assert _problem(reply) == (405, "method_not_allowed")
    assert _problem(api.get(f"{API}/buckets/{bucket}/objects/ignored")) == (404, "no_such_key")


@pytest.mark.parametrize("url", ["http://", "http://:9100", "http://node:99999", "http://node:port"])
def test_node_urls_name_a_host_and_a_port(api: httpx.Client, url: str) -> None:
    assert _problem(api.post(f"{API}/nodes", json={"url": url})) == (400, "invalid_argument")


def test_a_long_documented_query_reaches_the_handlers(api: httpx.Client) -> None:
    """A 1024-character cursor of 4-byte characters is 12 KiB once percent-encoded."""
    reply = api.get(f"{API}/history", params={"cursor": "\U0001d4e3" * 1024})
    assert _problem(reply) == (400, "invalid_argument")
