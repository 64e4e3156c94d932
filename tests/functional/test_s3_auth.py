"""S3 authentication against a real gateway with boto3: keys, SigV4, presigned URLs, refusals.

The gateway caches keys and users for 300 s here, so what must take effect
at once (a revoked key, a disabled user) is shown to do so by the gateway
dropping its cache, not by the cache running out. Runs on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.auth
import httpx
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from cargohold.testing.accounts import make_user
from cargohold.testing.cluster import Cluster
from cargohold.testing.s3 import REGION, create_s3_key, s3_client
from tests.conftest import BOTH_STORES
from tests.functional.conftest import accounts_cluster


@pytest.fixture(scope="module", params=BOTH_STORES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with accounts_cluster(request, tmp_path_factory, "s3-auth") as running:
        yield running


@pytest.fixture
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.client() as client:
        yield client


def _error(call: Any) -> tuple[str, int, dict[str, str]]:
    """The S3 code, status and headers of a call that must fail."""
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["ResponseMetadata"]["HTTPHeaders"],
    )


def _bucket_names(client: Any) -> list[str]:
    return [b["Name"] for b in client.list_buckets()["Buckets"]]


def _xml_error(reply: httpx.Response) -> dict[str, str]:
    assert reply.headers["content-type"] == "application/xml", reply.text
    return {child.tag: child.text or "" for child in ET.fromstring(reply.content)}


@contextlib.contextmanager
def _clock(at: datetime) -> Iterator[None]:
    """botocore signs as if it were ``at``."""
    saved = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: at.astimezone(UTC).replace(tzinfo=None)
    try:
        yield
    finally:
        botocore.auth.get_current_datetime = saved


def test_a_new_s3_key_lists_buckets_and_its_secret_is_shown_once(cluster: Cluster, api: httpx.Client) -> None:
    assert api.put("/api/v1/buckets/s3-auth-listed").status_code == 201
    made = api.post("/api/v1/keys", json={"kind": "s3", "name": "laptop"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["kind"] == "s3" and body["name"] == "laptop" and body["key_id"] == body["access_key_id"]
    assert len(body["access_key_id"]) == 20 and body["access_key_id"].startswith("CH")
    assert body["access_key_id"].isalnum() and body["access_key_id"].isupper()
    assert len(body["secret_access_key"]) == 40
    client = s3_client(cluster, body["access_key_id"], body["secret_access_key"])
    answer = client.list_buckets()
    assert "s3-auth-listed" in [b["Name"] for b in answer["Buckets"]]
    assert answer["Owner"]["DisplayName"] == "admin"
    assert answer["ResponseMetadata"]["RequestId"]  # x-amz-request-id, as boto3 reads it
    listed = api.get("/api/v1/keys", params={"kind": "s3"}).json()["keys"]
    mine = [k for k in listed if k["access_key_id"] == body["access_key_id"]]
    assert mine and "secret_access_key" not in mine[0] and body["secret_access_key"] not in str(listed)
    assert all(k["kind"] == "api" for k in api.get("/api/v1/keys").json()["keys"])
    # The secret is stored encrypted, not in the clear.
    stored = cluster.query(
        f"SELECT secret_ciphertext FROM s3_keys WHERE access_key_id = '{body['access_key_id']}'"
    )
    assert body["secret_access_key"].encode() not in bytes(stored[0][0])


def test_wrong_secret_is_signature_does_not_match(cluster: Cluster, api: httpx.Client) -> None:
    access_key, _ = create_s3_key(api)
    code, status, headers = _error(lambda: s3_client(cluster, access_key, "x" * 40).list_buckets())
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    assert headers["x-amz-request-id"] == headers["x-request-id"]


def test_unknown_access_key_is_invalid_access_key_id(cluster: Cluster) -> None:
    code, status, _ = _error(lambda: s3_client(cluster, "CHNOSUCHKEY000000000", "x" * 40).list_buckets())
    assert (code, status) == ("InvalidAccessKeyId", 403)


def test_a_revoked_key_stops_at_once(cluster: Cluster, api: httpx.Client) -> None:
    access_key, secret = create_s3_key(api)
    client = s3_client(cluster, access_key, secret)
    client.list_buckets()  # cached now, for 300 s
    revoked = api.delete(f"/api/v1/keys/{access_key}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["kind"] == "s3" and revoked.json()["revoked_at"]
    assert _error(client.list_buckets)[:2] == ("InvalidAccessKeyId", 403)


def test_an_expired_key_stops(cluster: Cluster, api: httpx.Client) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=2)
    access_key, secret = create_s3_key(api, expires_at=expires.isoformat())
    client = s3_client(cluster, access_key, secret)
    client.list_buckets()
    cluster.wait_for(lambda: datetime.now(UTC) > expires, timeout=10)
    assert _error(client.list_buckets)[:2] == ("InvalidAccessKeyId", 403)
    past = api.post("/api/v1/keys", json={"kind": "s3", "expires_at": "2020-01-01T00:00:00+00:00"})
    assert past.status_code == 400 and past.json()["code"] == "invalid_argument"


def test_a_disabled_users_keys_stop_at_once(cluster: Cluster, api: httpx.Client) -> None:
    token = make_user(api, "s3-dora")
    with cluster.client(token) as dora:
        access_key, secret = create_s3_key(dora)
    client = s3_client(cluster, access_key, secret)
    client.list_buckets()
    assert api.patch("/api/v1/users/s3-dora", json={"disabled": True}).status_code == 200
    assert _error(client.list_buckets)[:2] == ("InvalidAccessKeyId", 403)
    assert api.patch("/api/v1/users/s3-dora", json={"disabled": False}).status_code == 200
    client.list_buckets()


def test_a_second_users_key_sees_only_their_buckets(cluster: Cluster, api: httpx.Client) -> None:
    assert api.put("/api/v1/buckets/s3-admins-own").status_code == 201
    token = make_user(api, "s3-bob")
    with cluster.client(token) as bob:
        assert bob.put("/api/v1/buckets/s3-bobs-own").status_code == 201
        access_key, secret = create_s3_key(bob)
        assert api.post("/api/v1/keys", json={"kind": "s3", "user": "s3-bob"}).status_code == 201
        # Bob may not make keys for others, nor list theirs.
        refused = bob.post("/api/v1/keys", json={"kind": "s3", "user": "admin"})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        assert (
            bob.get("/api/v1/keys", params={"kind": "s3", "user": "admin"}).json()["code"] == "no_such_user"
        )
        assert len(bob.get("/api/v1/keys", params={"kind": "s3"}).json()["keys"]) == 2
        # Nor revoke the admin's.
        admin_key, _ = create_s3_key(api)
        assert bob.delete(f"/api/v1/keys/{admin_key}").json()["code"] == "no_such_key_id"
    assert _bucket_names(s3_client(cluster, access_key, secret)) == ["s3-bobs-own"]
    admin_key, admin_secret = create_s3_key(api)
    assert {"s3-admins-own", "s3-bobs-own"} <= set(_bucket_names(s3_client(cluster, admin_key, admin_secret)))


def test_presigned_list_buckets_valid_then_expired(cluster: Cluster, api: httpx.Client) -> None:
    assert api.put("/api/v1/buckets/s3-presigned").status_code == 201
    access_key, secret = create_s3_key(api)
    client = s3_client(cluster, access_key, secret)
    url = client.generate_presigned_url("list_buckets", ExpiresIn=300)
    reply = httpx.get(url)
    assert reply.status_code == 200, reply.text
    assert "<Name>s3-presigned</Name>" in reply.text and reply.headers["x-amz-request-id"]
    with _clock(datetime.now(UTC) - timedelta(hours=1)):
        old = client.generate_presigned_url("list_buckets", ExpiresIn=60)
    expired = httpx.get(old)
    assert expired.status_code == 403
    error = _xml_error(expired)
    assert error["Code"] == "AccessDenied" and error["Message"] == "Request has expired"
    assert error["RequestId"] == expired.headers["x-amz-request-id"]
    week = httpx.get(client.generate_presigned_url("list_buckets", ExpiresIn=7 * 24 * 3600 + 1))
    assert week.status_code == 400 and _xml_error(week)["Code"] == "AuthorizationQueryParametersError"
    tampered = httpx.get(url.replace("X-Amz-Expires=300", "X-Amz-Expires=301"))
    assert tampered.status_code == 403 and _xml_error(tampered)["Code"] == "SignatureDoesNotMatch"


def test_clock_skew_is_request_time_too_skewed(cluster: Cluster, api: httpx.Client) -> None:
    access_key, secret = create_s3_key(api)

    def signed_at(at: datetime) -> httpx.Response:
        request = AWSRequest(method="GET", url=cluster.url + "/")
        with _clock(at):
            botocore.auth.S3SigV4Auth(Credentials(access_key, secret), "s3", REGION).add_auth(request)
        return httpx.get(cluster.url + "/", headers=dict(request.headers.items()))

    assert signed_at(datetime.now(UTC) - timedelta(minutes=5)).status_code == 200
    for skew in (timedelta(minutes=20), -timedelta(minutes=20)):
        reply = signed_at(datetime.now(UTC) + skew)
        assert reply.status_code == 403
        error = _xml_error(reply)
        assert error["Code"] == "RequestTimeTooSkewed" and error["MaxAllowedSkewMilliseconds"] == "900000"


def test_s3_errors_are_xml_with_request_ids_and_the_native_api_keeps_its_own(
    cluster: Cluster, api: httpx.Client
) -> None:
    anonymous = httpx.get(cluster.url + "/some-bucket/some/key")
    assert anonymous.status_code == 403
    error = _xml_error(anonymous)
    assert error["Code"] == "AccessDenied" and error["Resource"] == "/some-bucket/some/key"
    assert error["RequestId"] == anonymous.headers["x-amz-request-id"]
    # An unsigned GET / is not S3, and the native prefixes stay native.
    root = httpx.get(cluster.url + "/")
    assert root.status_code == 404 and root.json()["code"] == "route_not_found"
    assert "x-amz-request-id" not in root.headers
    native = api.get("/api/v1/nothing-here")
    assert native.status_code == 404 and native.json()["code"] == "route_not_found"
    assert httpx.get(cluster.url + "/api/v1/buckets").json()["code"] == "unauthorized"


def test_unbuilt_sub_resource_is_not_implemented_and_bad_method_not_allowed(
    cluster: Cluster, api: httpx.Client
) -> None:
    access_key, secret = create_s3_key(api)
    client = s3_client(cluster, access_key, secret)
    code, status, _ = _error(lambda: client.get_bucket_tagging(Bucket="s3-anything"))
    assert (code, status) == ("NotImplemented", 501)
    request = AWSRequest(method="PATCH", url=cluster.url + "/s3-anything")
    botocore.auth.S3SigV4Auth(Credentials(access_key, secret), "s3", REGION).add_auth(request)
    reply = httpx.request("PATCH", cluster.url + "/s3-anything", headers=dict(request.headers.items()))
    assert reply.status_code == 405 and _xml_error(reply)["Code"] == "MethodNotAllowed"


def test_reserved_names_are_no_bucket_names(api: httpx.Client) -> None:
    for name in ("api", "tus", "docs", "openapi.json", "metrics", "healthz"):
        reply = api.put(f"/api/v1/buckets/{name}")
        assert reply.status_code == 400 and reply.json()["code"] == "invalid_bucket_name", (name, reply.text)


def test_s3_calls_are_in_the_history(cluster: Cluster, api: httpx.Client) -> None:
    token = make_user(api, "s3-hattie")
    with cluster.client(token) as hattie:
        access_key, secret = create_s3_key(hattie)
    s3_client(cluster, access_key, secret).list_buckets()
    _error(lambda: s3_client(cluster, access_key, "y" * 40).list_buckets())

    def events() -> list[dict[str, Any]]:
        found = api.get("/api/v1/history", params={"action": "bucket.list", "limit": 50}).json()["events"]
        return [e for e in found if e["user"] == "s3-hattie" or e["result"] == "signature_does_not_match"]

    # History is stored in batches: poll until both calls are there.
    cluster.wait_for(lambda: {e["result"] for e in events()} >= {"ok", "signature_does_not_match"})
    mine = [e for e in events() if e["user"] == "s3-hattie"]
    assert mine[0]["result"] == "ok" and mine[0]["status"] == 200
    failed = [e for e in events() if e["result"] == "signature_does_not_match"]
    assert failed[0]["status"] == 403 and failed[0]["user"] is None
