"""Over TLS current boto3 sends aws-chunked bodies with a trailing checksum: stored and returned."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from pathlib import Path

from cargohold.testing.cluster import Cluster
from cargohold.testing.tls import ThrowawayCA
from tests.functional.s3kit import s3_for

MIB = 1024 * 1024


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_trailing_checksums_over_tls(tmp_path: Path) -> None:
    server = ThrowawayCA(tmp_path / "pki").issue("server")
    with Cluster(tmp_path / "cluster", node_count=3, layout="ec:2+1", tls=server) as cluster:
        with cluster.client() as admin:
            s3 = s3_for(cluster, admin, request_checksum_calculation="when_supported")
        seen: list[str] = []
        s3.meta.events.register(
            "before-send.s3.PutObject", lambda request, **_: seen.append(request.headers["x-amz-trailer"])
        )
        s3.create_bucket(Bucket="s3-tls")
        data = os.urandom(2 * MIB + 5)
        put = s3.put_object(Bucket="s3-tls", Key="blob", Body=data)
        assert seen == [b"x-amz-checksum-crc32"]  # the trailer path, not a header
        assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        got = s3.get_object(Bucket="s3-tls", Key="blob", ChecksumMode="ENABLED")
        assert got["ChecksumCRC32"] == _crc32(data)
        assert got["Body"].read() == data
        ranged = s3.get_object(Bucket="s3-tls", Key="blob", ChecksumMode="ENABLED", Range="bytes=0-9")
        assert "ChecksumCRC32" not in ranged  # a checksum covers the whole object only
