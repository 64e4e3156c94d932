"""A whole upload/download flow with PostgreSQL as the metadata store."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.testing.cluster import Cluster
from cargohold.testing.data import sample
from cargohold.testing.postgres import PostgresCluster

pytestmark = pytest.mark.postgres

BIG = 5 * (1 << 19)  # 2.5 MiB: several blocks, shares on the nodes
SMALL = 100  # inline, in the metadata store


@pytest.fixture
def pg_cluster(postgres_cluster: PostgresCluster, tmp_path: Path) -> Iterator[Cluster]:
    url = postgres_cluster.create_database()
    try:
        with Cluster(tmp_path / "cluster", db_url=url) as running:
            yield running
    finally:
        with contextlib.suppress(Exception):
            postgres_cluster.drop_database(url.rsplit("/", 1)[1])


def test_upload_download_flow(pg_cluster: Cluster) -> None:
    big, small = sample(BIG, seed=11), sample(SMALL, seed=12)
    base = "/api/v1/buckets/pgflow"
    with pg_cluster.client() as api:
        assert api.put(base).status_code == 201
        digest = hashlib.sha256(big).hexdigest()
        put_big = api.put(f"{base}/objects/media/big.bin", content=big, headers={"x-checksum-sha256": digest})
        assert put_big.status_code == 201, put_big.text
        assert put_big.json()["size"] == BIG
        assert put_big.json()["sha256"] == digest
        put_small = api.put(f"{base}/objects/media/small.txt", content=small)
        assert put_small.status_code == 201, put_small.text
        assert sum(len(n.share_files()) for n in pg_cluster.nodes) > 0

        whole = api.get(f"{base}/objects/media/big.bin")
        assert whole.status_code == 200 and whole.content == big
        assert whole.headers["etag"] == put_big.headers["etag"]
        assert api.get(f"{base}/objects/media/small.txt").content == small
        start, end = (1 << 20) - 7, 2 * (1 << 20) + 7
        part = api.get(f"{base}/objects/media/big.bin", headers={"Range": f"bytes={start}-{end}"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes {start}-{end}/{BIG}"
        assert part.content == big[start : end + 1]
        tiny = api.get(f"{base}/objects/media/small.txt", headers={"Range": "bytes=10-19"})
        assert tiny.status_code == 206 and tiny.content == small[10:20]

        listing = api.get(f"{base}/objects", params={"prefix": "media/"}).json()
        assert [(o["key"], o["size"]) for o in listing["objects"]] == [
            ("media/big.bin", BIG),
            ("media/small.txt", SMALL),
        ]
        top = api.get(f"{base}/objects", params={"delimiter": "/"}).json()
        assert top["common_prefixes"] == ["media/"] and top["objects"] == []

        assert api.put(f"{base}/objects/gone", content=b"soon deleted").status_code == 201
        assert api.delete(f"{base}/objects/gone").status_code == 204
        missing = api.get(f"{base}/objects/gone")
        assert missing.status_code == 404 and missing.json()["code"] == "no_such_key"

    pg_cluster.stop_gateway()
    pg_cluster.start_gateway()

    with pg_cluster.client() as api:
        assert [b["name"] for b in api.get("/api/v1/buckets").json()["buckets"]] == ["pgflow"]
        assert api.get(f"{base}/objects/media/big.bin").content == big
        assert api.get(f"{base}/objects/media/small.txt").content == small
        keys = [o["key"] for o in api.get(f"{base}/objects").json()["objects"]]
        assert keys == ["media/big.bin", "media/small.txt"]
        assert api.get(f"{base}/objects/gone").status_code == 404
