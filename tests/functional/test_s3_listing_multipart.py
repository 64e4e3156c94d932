"""S3 listings (v1, v2, versions) and multipart uploads through boto3 against a real cluster."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from cargohold.testing.cluster import Cluster
from tests.functional.s3kit import refused, s3_for

MIB = 1024 * 1024
KEYS = ["a.txt", "b/1", "b/2", "b/c/3", "c d+e", "d/x", "zz"]


@pytest.fixture(scope="module")
def s3(cluster: Cluster) -> Iterator[Any]:
    with cluster.client() as admin:
        yield s3_for(cluster, admin)


@pytest.fixture(scope="module")
def filled(s3: Any) -> str:
    s3.create_bucket(Bucket="s3-list")
    for key in KEYS:
        s3.put_object(Bucket="s3-list", Key=key, Body=key.encode())
    return "s3-list"


@pytest.fixture
def name(s3: Any, request: pytest.FixtureRequest) -> str:
    bucket = "s3-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    s3.create_bucket(Bucket=bucket)
    return bucket


# -- listings --------------------------------------------------------------------------


def test_list_v2_whole_and_by_delimiter(s3: Any, filled: str) -> None:
    page = s3.list_objects_v2(Bucket=filled)
    assert [o["Key"] for o in page["Contents"]] == KEYS
    assert page["KeyCount"] == len(KEYS) and page["IsTruncated"] is False
    first = page["Contents"][0]
    assert first["Size"] == len(b"a.txt") and first["ETag"] == f'"{hashlib.md5(b"a.txt").hexdigest()}"'
    assert "Owner" not in first
    top = s3.list_objects_v2(Bucket=filled, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a.txt", "c d+e", "zz"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["b/", "d/"]
    inside = s3.list_objects_v2(Bucket=filled, Prefix="b/", Delimiter="/")
    assert [o["Key"] for o in inside["Contents"]] == ["b/1", "b/2"]
    assert [p["Prefix"] for p in inside["CommonPrefixes"]] == ["b/c/"]
    long_delimiter = s3.list_objects_v2(Bucket=filled, Delimiter="/c/")
    assert [p["Prefix"] for p in long_delimiter["CommonPrefixes"]] == ["b/c/"]


def test_list_v2_pages_start_after_and_owner(s3: Any, filled: str) -> None:
    seen, token = [], None
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=filled, MaxKeys=2, FetchOwner=True, **kwargs)
        seen += [o["Key"] for o in page["Contents"]]
        assert page["Contents"][0]["Owner"]["DisplayName"] == "admin"
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == KEYS
    after = s3.list_objects_v2(Bucket=filled, StartAfter="b/c/3")
    assert [o["Key"] for o in after["Contents"]] == ["c d+e", "d/x", "zz"]
    assert s3.list_objects_v2(Bucket=filled, MaxKeys=0)["KeyCount"] == 0
    code = refused(s3.list_objects_v2, Bucket=filled, ContinuationToken="!!!")
    assert code == ("InvalidArgument", 400)


def test_list_v1_with_markers(s3: Any, filled: str) -> None:
    page = s3.list_objects(Bucket=filled, MaxKeys=3)
    assert [o["Key"] for o in page["Contents"]] == KEYS[:3]
    assert page["IsTruncated"] is True and page["NextMarker"] == "b/2"
    rest = s3.list_objects(Bucket=filled, Marker="b/2")
    assert [o["Key"] for o in rest["Contents"]] == KEYS[3:]
    grouped = s3.list_objects(Bucket=filled, Delimiter="/", MaxKeys=2)
    assert [o["Key"] for o in grouped["Contents"]] == ["a.txt"]
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["b/"]
    after_group = s3.list_objects(Bucket=filled, Delimiter="/", Marker=grouped["NextMarker"])
    assert [o["Key"] for o in after_group["Contents"]] == ["c d+e", "zz"]
    assert [p["Prefix"] for p in after_group["CommonPrefixes"]] == ["d/"]
    assert s3.list_objects(Bucket=filled)["Contents"][0]["Owner"]["ID"] == "admin"


def test_url_encoded_listing(s3: Any, filled: str) -> None:
    """boto3 asks for encoding-type=url and decodes, so keys with spaces and '+' come back intact."""
    page = s3.list_objects_v2(Bucket=filled, Prefix="c ")
    assert [o["Key"] for o in page["Contents"]] == ["c d+e"]
    raw = s3.list_objects_v2(Bucket=filled, Prefix="c ", EncodingType="url")
    assert raw["EncodingType"] == "url"


def test_list_object_versions_pages(s3: Any, name: str) -> None:
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    made = [s3.put_object(Bucket=name, Key=key, Body=b"x")["VersionId"] for key in ("k1", "k1", "k2")]
    marker = s3.delete_object(Bucket=name, Key="k2")["VersionId"]
    seen, kwargs = [], {}
    while True:
        page = s3.list_object_versions(Bucket=name, MaxKeys=1, **kwargs)
        seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if not page["IsTruncated"]:
            break
        kwargs = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    assert seen == [("k1", made[1]), ("k1", made[0]), ("k2", marker), ("k2", made[2])]
    after_k1 = s3.list_object_versions(Bucket=name, KeyMarker="k1")
    assert [v["VersionId"] for v in after_k1["Versions"]] == [made[2]]


def test_listing_a_missing_bucket(s3: Any) -> None:
    assert refused(s3.list_objects_v2, Bucket="s3-none-here") == ("NoSuchBucket", 404)
    assert refused(s3.list_objects, Bucket="s3-none-here") == ("NoSuchBucket", 404)


# -- multipart ------------------------------------------------------------------------------


def test_transfer_manager_uploads_parts_in_parallel(s3: Any, name: str, tmp_path: Path) -> None:
    data = os.urandom(20 * MIB + 12345)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=4)
    s3.upload_file(str(source), name, "big.bin", Config=config)
    head = s3.head_object(Bucket=name, Key="big.bin")
    digests = b"".join(hashlib.md5(data[i : i + 5 * MIB]).digest() for i in range(0, len(data), 5 * MIB))
    assert head["ETag"] == f'"{hashlib.md5(digests).hexdigest()}-5"'
    assert head["ContentLength"] == len(data)
    target = tmp_path / "back.bin"
    s3.download_file(name, "big.bin", str(target), Config=config)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    second = s3.get_object(Bucket=name, Key="big.bin", PartNumber=2)
    assert second["Body"].read() == data[5 * MIB : 10 * MIB] and second["PartsCount"] == 5


def test_multipart_by_hand(s3: Any, name: str) -> None:
    part = os.urandom(5 * MIB)
    started = s3.create_multipart_upload(
        Bucket=name, Key="mp", ContentType="video/mp4", Metadata={"take": "2"}, ContentDisposition="inline"
    )
    upload_id = started["UploadId"]
    e1 = s3.upload_part(Bucket=name, Key="mp", UploadId=upload_id, PartNumber=1, Body=part)["ETag"]
    e3 = s3.upload_part(Bucket=name, Key="mp", UploadId=upload_id, PartNumber=3, Body=b"tail")["ETag"]
    assert e1 == f'"{hashlib.md5(part).hexdigest()}"'
    parts = s3.list_parts(Bucket=name, Key="mp", UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in parts["Parts"]] == [
        (1, len(part), e1),
        (3, 4, e3),
    ]
    first = s3.list_parts(Bucket=name, Key="mp", UploadId=upload_id, MaxParts=1)
    assert first["IsTruncated"] is True and first["NextPartNumberMarker"] == 1
    uploads = s3.list_multipart_uploads(Bucket=name)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("mp", upload_id)]
    listed = [{"PartNumber": 3, "ETag": e3}, {"PartNumber": 1, "ETag": e1}]
    code = refused(
        s3.complete_multipart_upload,
        Bucket=name,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": listed},
    )
    assert code == ("InvalidPartOrder", 400)
    wrong = [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}, {"PartNumber": 3, "ETag": e3}]
    code = refused(
        s3.complete_multipart_upload,
        Bucket=name,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": wrong},
    )
    assert code == ("InvalidPart", 400)
    unknown = [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e3}]
    code = refused(
        s3.complete_multipart_upload,
        Bucket=name,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": unknown},
    )
    assert code == ("InvalidPart", 400)
    done = s3.complete_multipart_upload(
        Bucket=name, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": list(reversed(listed))}
    )
    joined = bytes.fromhex(e1.strip('"')) + bytes.fromhex(e3.strip('"'))
    assert done["ETag"] == f'"{hashlib.md5(joined).hexdigest()}-2"'
    got = s3.get_object(Bucket=name, Key="mp")
    assert got["Body"].read() == part + b"tail"
    assert got["ContentType"] == "video/mp4" and got["Metadata"] == {"take": "2"}
    assert got["ContentDisposition"] == "inline"
    assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    assert refused(s3.list_parts, Bucket=name, Key="mp", UploadId=upload_id) == ("NoSuchUpload", 404)


def test_multipart_refusals(s3: Any, name: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=name, Key="small")["UploadId"]
    e1 = s3.upload_part(Bucket=name, Key="small", UploadId=upload_id, PartNumber=1, Body=b"a" * 100)["ETag"]
    e2 = s3.upload_part(Bucket=name, Key="small", UploadId=upload_id, PartNumber=2, Body=b"b")["ETag"]
    listed = {"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}
    code = refused(
        s3.complete_multipart_upload, Bucket=name, Key="small", UploadId=upload_id, MultipartUpload=listed
    )
    assert code == ("EntityTooSmall", 400)
    code = refused(s3.upload_part, Bucket=name, Key="small", UploadId=upload_id, PartNumber=10001, Body=b"x")
    assert code == ("InvalidArgument", 400)
    code = refused(s3.upload_part, Bucket=name, Key="other", UploadId=upload_id, PartNumber=1, Body=b"x")
    assert code == ("NoSuchUpload", 404)
    assert (
        refused(
            s3.complete_multipart_upload,
            Bucket=name,
            Key="small",
            UploadId=upload_id,
            MultipartUpload={"Parts": []},
        )[0]
        == "MalformedXML"
    )
    aborted = s3.abort_multipart_upload(Bucket=name, Key="small", UploadId=upload_id)
    assert aborted["ResponseMetadata"]["HTTPStatusCode"] == 204
    code = refused(s3.upload_part, Bucket=name, Key="small", UploadId=upload_id, PartNumber=1, Body=b"x")
    assert code == ("NoSuchUpload", 404)
    assert refused(s3.abort_multipart_upload, Bucket=name, Key="small", UploadId="f" * 32) == (
        "NoSuchUpload",
        404,
    )


def test_upload_part_copy_with_ranges(s3: Any, name: str) -> None:
    data = os.urandom(6 * MIB)
    s3.put_object(Bucket=name, Key="source", Body=data)
    upload_id = s3.create_multipart_upload(Bucket=name, Key="assembled")["UploadId"]
    source = {"Bucket": name, "Key": "source"}
    first = s3.upload_part_copy(
        Bucket=name, Key="assembled", UploadId=upload_id, PartNumber=1, CopySource=source
    )
    second = s3.upload_part_copy(
        Bucket=name,
        Key="assembled",
        UploadId=upload_id,
        PartNumber=2,
        CopySource=source,
        CopySourceRange="bytes=10-1033",
    )
    assert first["CopyPartResult"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert second["CopyPartResult"]["ETag"] == f'"{hashlib.md5(data[10:1034]).hexdigest()}"'
    code = refused(
        s3.upload_part_copy,
        Bucket=name,
        Key="assembled",
        UploadId=upload_id,
        PartNumber=3,
        CopySource=source,
        CopySourceRange=f"bytes=0-{len(data)}",
    )
    assert code == ("InvalidRange", 416)
    parts = [
        {"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": second["CopyPartResult"]["ETag"]},
    ]
    s3.complete_multipart_upload(
        Bucket=name, Key="assembled", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    assert s3.get_object(Bucket=name, Key="assembled")["Body"].read() == data + data[10:1034]
