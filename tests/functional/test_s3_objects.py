"""S3 bucket and object operations through boto3 against a real cluster: exact answers and error codes."""

from __future__ import annotations

import base64
import hashlib
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.exceptions
import pytest

from cargohold.testing.cluster import Cluster
from tests.functional.s3kit import refused, s3_for

MIB = 1024 * 1024
BIG = bytes(range(256)) * (3 * MIB // 256 + 17)  # ~3 MiB: stored as shares, not inline


@pytest.fixture(scope="module")
def s3(cluster: Cluster) -> Iterator[Any]:
    with cluster.client() as admin:
        yield s3_for(cluster, admin)


@pytest.fixture
def name(s3: Any, request: pytest.FixtureRequest) -> str:
    bucket = "s3-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    s3.create_bucket(Bucket=bucket)
    return bucket


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# -- buckets ----------------------------------------------------------------------


def test_bucket_lifecycle(s3: Any) -> None:
    made = s3.create_bucket(Bucket="s3-life")
    assert made["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert made["Location"] == "/s3-life"
    assert (
        s3.head_bucket(Bucket="s3-life")["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"]
        == "us-east-1"
    )
    assert s3.get_bucket_location(Bucket="s3-life")["LocationConstraint"] is None
    assert refused(s3.create_bucket, Bucket="s3-life") == ("BucketAlreadyOwnedByYou", 409)
    s3.put_object(Bucket="s3-life", Key="k", Body=b"x")
    assert refused(s3.delete_bucket, Bucket="s3-life") == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket="s3-life", Key="k")
    assert s3.delete_bucket(Bucket="s3-life")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert refused(s3.head_bucket, Bucket="s3-life") == ("404", 404)
    assert refused(s3.delete_bucket, Bucket="s3-life") == ("NoSuchBucket", 404)
    assert refused(s3.get_bucket_location, Bucket="s3-life") == ("NoSuchBucket", 404)


def test_bucket_names_and_locations_are_checked(s3: Any) -> None:
    assert refused(s3.create_bucket, Bucket="Bad_Name") == ("InvalidBucketName", 400)
    assert refused(s3.create_bucket, Bucket="ab") == ("InvalidBucketName", 400)
    elsewhere = {"LocationConstraint": "eu-west-1"}
    code = refused(s3.create_bucket, Bucket="s3-elsewhere", CreateBucketConfiguration=elsewhere)
    assert code == ("InvalidLocationConstraint", 400)
    here = s3.create_bucket(Bucket="s3-here", CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    assert here["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_another_users_bucket_name_is_taken(cluster: Cluster, s3: Any) -> None:
    with cluster.client() as admin:
        assert (
            admin.post("/api/v1/users", json={"name": "s3-other", "password": "pw-s3-other-1"}).status_code
            == 201
        )
        other = s3_for(cluster, admin, "s3-other")
    other.create_bucket(Bucket="s3-taken")
    assert refused(s3.create_bucket, Bucket="s3-taken") == (
        "BucketAlreadyExists",
        409,
    )  # an admin, not the owner
    assert refused(other.create_bucket, Bucket="s3-taken") == ("BucketAlreadyOwnedByYou", 409)


def test_versioning_configuration(s3: Any, name: str) -> None:
    assert "Status" not in s3.get_bucket_versioning(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Suspended"
    bad = {"Status": "Sometimes"}
    assert refused(s3.put_bucket_versioning, Bucket=name, VersioningConfiguration=bad) == (
        "MalformedXML",
        400,
    )


# -- put, get, head ------------------------------------------------------------------


def test_put_get_round_trip_with_md5_etag_and_stored_headers(s3: Any, name: str) -> None:
    put = s3.put_object(
        Bucket=name,
        Key="docs/report.pdf",
        Body=BIG,
        ContentType="application/pdf",
        ContentDisposition='attachment; filename="report.pdf"',
        ContentEncoding="identity",
        CacheControl="max-age=60",
        Expires=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        Metadata={"project": "cargo", "owner-name": "ada"},
        ACL="private",
    )
    assert put["ETag"] == f'"{md5(BIG)}"'
    got = s3.get_object(Bucket=name, Key="docs/report.pdf")
    assert got["Body"].read() == BIG
    assert got["ETag"] == f'"{md5(BIG)}"'
    assert got["ContentLength"] == len(BIG)
    assert got["ContentType"] == "application/pdf"
    assert got["ContentDisposition"] == 'attachment; filename="report.pdf"'
    assert got["ContentEncoding"] == "identity"
    assert got["CacheControl"] == "max-age=60"
    assert got["Expires"] == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert got["Metadata"] == {"project": "cargo", "owner-name": "ada"}
    head = s3.head_object(Bucket=name, Key="docs/report.pdf")
    assert head["ContentLength"] == len(BIG)
    assert head["Metadata"] == {"project": "cargo", "owner-name": "ada"}
    assert head["ETag"] == f'"{md5(BIG)}"'


def test_small_objects_and_empty_ones(s3: Any, name: str) -> None:
    assert s3.put_object(Bucket=name, Key="small", Body=b"hello")["ETag"] == f'"{md5(b"hello")}"'
    assert s3.get_object(Bucket=name, Key="small")["Body"].read() == b"hello"
    assert s3.put_object(Bucket=name, Key="empty", Body=b"")["ETag"] == f'"{md5(b"")}"'
    got = s3.get_object(Bucket=name, Key="empty")
    assert got["Body"].read() == b"" and got["ContentLength"] == 0


def test_checksums_are_stored_and_returned(s3: Any, name: str) -> None:
    crc = base64.b64encode(zlib.crc32(b"checked").to_bytes(4, "big")).decode()
    s3.put_object(Bucket=name, Key="c", Body=b"checked", ChecksumAlgorithm="CRC32")
    got = s3.get_object(Bucket=name, Key="c", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == crc
    assert got["Body"].read() == b"checked"


def test_a_checksum_header_is_checked(s3: Any, name: str) -> None:
    """boto3 sends x-amz-checksum-crc32 as a header over plain HTTP; one that lies is BadDigest."""

    def lie(request: Any, **_: Any) -> None:
        del request.headers["x-amz-checksum-crc32"]
        request.headers["x-amz-checksum-crc32"] = base64.b64encode(
            zlib.crc32(b"else").to_bytes(4, "big")
        ).decode()

    s3.meta.events.register("before-sign.s3.PutObject", lie)
    try:
        code = refused(s3.put_object, Bucket=name, Key="lied", Body=b"payload", ChecksumAlgorithm="CRC32")
    finally:
        s3.meta.events.unregister("before-sign.s3.PutObject", lie)
    assert code == ("BadDigest", 400)
    assert refused(s3.head_object, Bucket=name, Key="lied") == ("404", 404)


def test_content_md5_is_checked(s3: Any, name: str) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    assert refused(s3.put_object, Bucket=name, Key="k", Body=b"data", ContentMD5=wrong) == ("BadDigest", 400)
    assert refused(s3.head_object, Bucket=name, Key="k") == ("404", 404)
    right = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    assert s3.put_object(Bucket=name, Key="k", Body=b"data", ContentMD5=right)["ETag"] == f'"{md5(b"data")}"'
    assert refused(s3.put_object, Bucket=name, Key="k", Body=b"x", ContentMD5="not-base64!") == (
        "InvalidDigest",
        400,
    )


def test_ranges_and_part_numbers(s3: Any, name: str) -> None:
    s3.put_object(Bucket=name, Key="r", Body=BIG)
    got = s3.get_object(Bucket=name, Key="r", Range="bytes=100-1099")
    assert got["Body"].read() == BIG[100:1100]
    assert got["ContentRange"] == f"bytes 100-1099/{len(BIG)}"
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=name, Key="r", Range="bytes=-10")["Body"].read() == BIG[-10:]
    assert refused(s3.get_object, Bucket=name, Key="r", Range=f"bytes={len(BIG)}-") == ("InvalidRange", 416)
    part = s3.get_object(Bucket=name, Key="r", PartNumber=1)
    assert part["Body"].read() == BIG and part["PartsCount"] == 1
    assert refused(s3.get_object, Bucket=name, Key="r", PartNumber=2) == ("InvalidPartNumber", 416)


def test_conditional_reads(s3: Any, name: str) -> None:
    etag = s3.put_object(Bucket=name, Key="c", Body=b"conditional")["ETag"]
    modified = s3.head_object(Bucket=name, Key="c")["LastModified"]
    assert s3.get_object(Bucket=name, Key="c", IfMatch=etag)["Body"].read() == b"conditional"
    assert refused(s3.get_object, Bucket=name, Key="c", IfMatch='"nope"') == ("PreconditionFailed", 412)
    assert refused(s3.get_object, Bucket=name, Key="c", IfNoneMatch=etag) == ("304", 304)
    assert refused(s3.head_object, Bucket=name, Key="c", IfNoneMatch=etag) == ("304", 304)
    assert refused(s3.get_object, Bucket=name, Key="c", IfModifiedSince=modified) == ("304", 304)
    earlier = modified - timedelta(hours=1)
    assert s3.get_object(Bucket=name, Key="c", IfModifiedSince=earlier)["ETag"] == etag
    code = refused(s3.get_object, Bucket=name, Key="c", IfUnmodifiedSince=earlier)
    assert code == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=name, Key="c", IfUnmodifiedSince=modified)["ETag"] == etag


def test_response_overrides(s3: Any, name: str) -> None:
    s3.put_object(Bucket=name, Key="o", Body=b"x", ContentType="text/plain")
    got = s3.get_object(
        Bucket=name,
        Key="o",
        ResponseContentType="application/json",
        ResponseContentDisposition="inline",
        ResponseCacheControl="no-cache",
        ResponseContentLanguage="en",
    )
    assert got["ContentType"] == "application/json"
    assert got["ContentDisposition"] == "inline"
    assert got["CacheControl"] == "no-cache"
    assert got["ContentLanguage"] == "en"


def test_conditional_writes(s3: Any, name: str) -> None:
    first = s3.put_object(Bucket=name, Key="w", Body=b"one", IfNoneMatch="*")["ETag"]
    assert refused(s3.put_object, Bucket=name, Key="w", Body=b"two", IfNoneMatch="*") == (
        "PreconditionFailed",
        412,
    )
    assert refused(s3.put_object, Bucket=name, Key="w", Body=b"two", IfMatch='"abc"') == (
        "PreconditionFailed",
        412,
    )
    s3.put_object(Bucket=name, Key="w", Body=b"three", IfMatch=first)
    assert s3.get_object(Bucket=name, Key="w")["Body"].read() == b"three"
    assert refused(s3.put_object, Bucket=name, Key="absent", Body=b"x", IfMatch=first) == ("NoSuchKey", 404)


def test_parallel_create_only_writes_have_one_winner(cluster: Cluster, name: str) -> None:
    """Eight clients race to create one key with If-None-Match: *; the check holds under the key's lock."""
    with cluster.client() as admin:
        clients = [s3_for(cluster, admin) for _ in range(8)]
    barrier = threading.Barrier(len(clients))

    def race(pair: tuple[int, Any]) -> str:
        number, client = pair
        barrier.wait()
        try:
            client.put_object(Bucket=name, Key="race", Body=BIG[: MIB + number], IfNoneMatch="*")
        except botocore.exceptions.ClientError as error:
            return str(error.response["Error"]["Code"])
        return f"won {number}"

    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(race, enumerate(clients)))
    winners = [r for r in results if r.startswith("won")]
    assert len(winners) == 1 and results.count("PreconditionFailed") == len(clients) - 1, results
    stored = clients[0].head_object(Bucket=name, Key="race")["ContentLength"]
    assert stored == MIB + int(winners[0].split()[1])


def test_missing_things(s3: Any, name: str) -> None:
    assert refused(s3.get_object, Bucket=name, Key="nothing") == ("NoSuchKey", 404)
    assert refused(s3.get_object, Bucket="s3-no-such-bucket", Key="k") == ("NoSuchBucket", 404)
    assert refused(s3.put_object, Bucket="s3-no-such-bucket", Key="k", Body=b"") == ("NoSuchBucket", 404)
    code = refused(s3.get_object, Bucket=name, Key="nothing", VersionId="0" * 32)
    assert code == ("NoSuchVersion", 404)
    assert refused(s3.get_object, Bucket=name, Key="nothing", VersionId="bad") == ("InvalidArgument", 400)
    assert refused(s3.put_object, Bucket=name, Key="a/../b", Body=b"") == ("InvalidArgument", 400)
    assert refused(s3.put_object, Bucket=name, Key="k", Body=b"", ACL="everyone") == ("InvalidArgument", 400)


# -- delete and versions -------------------------------------------------------------------


def test_delete_object_without_versioning(s3: Any, name: str) -> None:
    s3.put_object(Bucket=name, Key="d", Body=b"x")
    gone = s3.delete_object(Bucket=name, Key="d")
    assert gone["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert "DeleteMarker" not in gone and "VersionId" not in gone
    assert refused(s3.get_object, Bucket=name, Key="d") == ("NoSuchKey", 404)
    again = s3.delete_object(Bucket=name, Key="d")  # S3: deleting nothing is done
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_versions_and_delete_markers(s3: Any, name: str) -> None:
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=name, Key="v", Body=b"first")["VersionId"]
    v2 = s3.put_object(Bucket=name, Key="v", Body=b"second")["VersionId"]
    assert len({v1, v2}) == 2
    assert s3.get_object(Bucket=name, Key="v")["Body"].read() == b"second"
    old = s3.get_object(Bucket=name, Key="v", VersionId=v1)
    assert old["Body"].read() == b"first" and old["VersionId"] == v1
    marked = s3.delete_object(Bucket=name, Key="v")
    assert marked["DeleteMarker"] is True
    marker = marked["VersionId"]
    with pytest.raises(botocore.exceptions.ClientError) as hidden:
        s3.get_object(Bucket=name, Key="v")
    answer = hidden.value.response
    assert (answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]) == ("NoSuchKey", 404)
    assert answer["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    assert answer["ResponseMetadata"]["HTTPHeaders"]["x-amz-version-id"] == marker
    assert s3.get_object(Bucket=name, Key="v", VersionId=v2)["Body"].read() == b"second"
    listed = s3.list_object_versions(Bucket=name)
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [(v2, False), (v1, False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [(marker, True)]
    removed = s3.delete_object(Bucket=name, Key="v", VersionId=marker)
    assert removed["DeleteMarker"] is True and removed["VersionId"] == marker
    assert s3.get_object(Bucket=name, Key="v")["Body"].read() == b"second"
    s3.delete_object(Bucket=name, Key="v", VersionId=v2)
    assert s3.get_object(Bucket=name, Key="v")["Body"].read() == b"first"


def test_delete_objects(s3: Any, name: str) -> None:
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=name, Key=key, Body=key.encode())
    listed = [{"Key": "a"}, {"Key": "b"}, {"Key": "never"}, {"Key": "c", "VersionId": "bad"}]
    answer = s3.delete_objects(Bucket=name, Delete={"Objects": listed})
    assert sorted(d["Key"] for d in answer["Deleted"]) == ["a", "b", "never"]
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("c", "InvalidArgument")]
    quiet = s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "c"}], "Quiet": True})
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0
    missing = {"Objects": [{"Key": "a"}]}
    assert refused(s3.delete_objects, Bucket="s3-no-such-bucket", Delete=missing) == ("NoSuchBucket", 404)
    too_many = [{"Key": f"k{i}"} for i in range(1001)]
    assert refused(s3.delete_objects, Bucket=name, Delete={"Objects": too_many}) == ("MalformedXML", 400)


def test_delete_objects_refuses_malformed_xml(s3: Any, name: str) -> None:
    """The body is swapped for a broken one just before boto3 signs it (so the signature holds)."""
    broken = b"<Delete><Object><Key>a</Key></Object"

    def swap(request: Any, **_: Any) -> None:
        request.data = broken
        request.headers["Content-MD5"] = base64.b64encode(hashlib.md5(broken).digest()).decode()
        if "x-amz-checksum-crc32" in request.headers:
            del request.headers["x-amz-checksum-crc32"]

    s3.meta.events.register("before-sign.s3.DeleteObjects", swap)
    try:
        assert refused(s3.delete_objects, Bucket=name, Delete={"Objects": [{"Key": "a"}]}) == (
            "MalformedXML",
            400,
        )
    finally:
        s3.meta.events.unregister("before-sign.s3.DeleteObjects", swap)


# -- copy ------------------------------------------------------------------------------


def test_copy_object_keeps_or_replaces_metadata(s3: Any, name: str) -> None:
    s3.put_object(Bucket=name, Key="src", Body=BIG, ContentType="image/png", Metadata={"a": "1"})
    copied = s3.copy_object(Bucket=name, Key="dst", CopySource={"Bucket": name, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{md5(BIG)}"'
    got = s3.get_object(Bucket=name, Key="dst")
    assert got["Body"].read() == BIG
    assert got["ContentType"] == "image/png" and got["Metadata"] == {"a": "1"}
    s3.copy_object(
        Bucket=name,
        Key="dst2",
        CopySource=f"{name}/src",
        MetadataDirective="REPLACE",
        ContentType="text/plain",
        Metadata={"b": "2"},
    )
    replaced = s3.head_object(Bucket=name, Key="dst2")
    assert replaced["ContentType"] == "text/plain" and replaced["Metadata"] == {"b": "2"}
    same = {"Bucket": name, "Key": "src"}
    assert refused(s3.copy_object, Bucket=name, Key="src", CopySource=same) == ("InvalidRequest", 400)
    s3.copy_object(Bucket=name, Key="src", CopySource=same, MetadataDirective="REPLACE", Metadata={"c": "3"})
    assert s3.head_object(Bucket=name, Key="src")["Metadata"] == {"c": "3"}


def _shares_of(cluster: Cluster, bucket: str, key: str) -> list[str]:
    """Share files on the nodes of the parts a key's latest version uses (owned or linked)."""
    version = (
        "JOIN objects o ON {col} = o.id JOIN buckets b ON o.bucket_id = b.id"
        f" WHERE b.name = '{bucket}' AND o.key = '{key}' AND o.is_latest"
    )
    owned = "SELECT p.id FROM parts p " + version.format(col="p.object_id")
    linked = "SELECT l.part_id FROM part_links l " + version.format(col="l.object_id")
    part_ids = {row[0] for row in cluster.query(f"{owned} UNION {linked}")}
    return sorted(f.name for n in cluster.nodes for f in n.share_files() if f.name.split(".")[0] in part_ids)


def test_copy_moves_no_bytes_and_outlives_its_source(cluster: Cluster, s3: Any, name: str) -> None:
    s3.put_object(Bucket=name, Key="orig", Body=BIG)
    shares = _shares_of(cluster, name, "orig")
    assert len(shares) == 7  # one part, ec:5+2
    s3.copy_object(Bucket=name, Key="twin", CopySource={"Bucket": name, "Key": "orig"})
    assert _shares_of(cluster, name, "twin") == shares  # the same share files: no byte moved
    s3.delete_object(Bucket=name, Key="orig")
    cluster.run_worker_once("gc")
    assert _shares_of(cluster, name, "twin") == shares
    assert s3.get_object(Bucket=name, Key="twin")["Body"].read() == BIG
    s3.delete_object(Bucket=name, Key="twin")  # the last reference: now the shares go
    cluster.run_worker_once("gc")
    left = {f.name for n in cluster.nodes for f in n.share_files()}
    assert left.isdisjoint(shares)


def test_copy_onto_itself_replaces_metadata_and_keeps_the_shares(
    cluster: Cluster, s3: Any, name: str
) -> None:
    s3.put_object(Bucket=name, Key="self", Body=BIG, Metadata={"v": "1"})
    shares = _shares_of(cluster, name, "self")
    source = {"Bucket": name, "Key": "self"}
    s3.copy_object(
        Bucket=name, Key="self", CopySource=source, MetadataDirective="REPLACE", Metadata={"v": "2"}
    )
    cluster.run_worker_once("gc")
    got = s3.get_object(Bucket=name, Key="self")
    assert got["Metadata"] == {"v": "2"} and got["Body"].read() == BIG
    assert _shares_of(cluster, name, "self") == shares


def test_copy_source_conditions_and_versions(s3: Any, name: str) -> None:
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=name, Key="s", Body=b"one")
    s3.put_object(Bucket=name, Key="s", Body=b"two")
    source = {"Bucket": name, "Key": "s", "VersionId": v1["VersionId"]}
    copied = s3.copy_object(Bucket=name, Key="t", CopySource=source)
    assert copied["CopySourceVersionId"] == v1["VersionId"]
    assert s3.get_object(Bucket=name, Key="t")["Body"].read() == b"one"
    code = refused(s3.copy_object, Bucket=name, Key="t", CopySource=source, CopySourceIfMatch='"x"')
    assert code == ("PreconditionFailed", 412)
    code = refused(s3.copy_object, Bucket=name, Key="t", CopySource=source, CopySourceIfNoneMatch=v1["ETag"])
    assert code == ("PreconditionFailed", 412)
    s3.copy_object(Bucket=name, Key="t2", CopySource=source, CopySourceIfMatch=v1["ETag"])
    assert refused(s3.copy_object, Bucket=name, Key="t", CopySource={"Bucket": name, "Key": "none"}) == (
        "NoSuchKey",
        404,
    )
