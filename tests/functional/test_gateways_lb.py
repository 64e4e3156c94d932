"""Two gateways over one PostgreSQL behind a real HAProxy; one dies in the middle of uploads.

tus uploads and the CLI's put keep their state in the metadata store, so
the gateway that takes over continues where the dead one stopped: the
objects arrive whole, with the right SHA-256, and no transfer fails.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tusclient.client import TusClient

from cargohold.testing.cluster import ADMIN_KEY, Cluster
from cargohold.testing.console import CLI, ConsoleScript
from cargohold.testing.data import sample
from cargohold.testing.debian import PackageUnavailable
from cargohold.testing.haproxy import HAProxy, haproxy_binary
from tests.conftest import store_url

MiB = 1024 * 1024
pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def two_gateways(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, subprocess.Popen[bytes], str]]:
    try:
        haproxy_binary()
    except PackageUnavailable as exc:
        pytest.skip(f"haproxy: {exc}")
    with (
        store_url(request, "postgres") as url,
        Cluster(tmp_path_factory.mktemp("lb"), node_count=4, layout="ec:2+1", db_url=url) as cluster,
    ):
        second, second_url = cluster.spawn_gateway()
        try:
            yield cluster, second, second_url
        finally:
            if second.poll() is None:
                second.terminate()
                second.wait(15)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_uploads_finish_through_the_other_gateway(
    two_gateways: tuple[Cluster, subprocess.Popen[bytes], str], tmp_path: Path
) -> None:
    cluster, second, second_url = two_gateways
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with HAProxy(tmp_path, [cluster.url, second_url]) as lb:
        assert httpx.put(lb + "/api/v1/buckets/lbtest", headers=auth).status_code == 201
        tus_data = sample(6 * MiB + 321, seed=71)
        uploader = TusClient(lb + "/tus/", headers=auth).uploader(
            file_stream=io.BytesIO(tus_data),
            chunk_size=512 * 1024,
            metadata={"bucket": "lbtest", "filename": "tus.bin"},
        )
        big = tmp_path / "cli.bin"
        cli_data = sample(24 * MiB + 5, seed=72)
        big.write_bytes(cli_data)
        (tmp_path / "home").mkdir()
        cli = ConsoleScript(cluster, tmp_path / "home")
        cli.env["CARGOHOLD_URL"] = lb
        put = subprocess.Popen(
            [
                str(CLI),
                "put",
                str(big),
                "lbtest/cli.bin",
                "--part-size",
                "1MiB",
                "--multipart-threshold",
                "1MiB",
            ],
            env=cli.env,
            cwd=cli.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3):
            uploader.upload_chunk()
        # Kill the second gateway while both uploads are under way.
        cluster.wait_for(lambda: _parts_stored(cluster) >= 2, timeout=60)
        second.kill()
        second.wait(10)
        while uploader.offset < len(tus_data):
            uploader.upload_chunk()
        out, err = put.communicate(timeout=300)
        assert put.returncode == 0, (out, err)
        with httpx.Client(base_url=lb, headers=auth, timeout=60) as api:
            assert _sha(api.get("/api/v1/buckets/lbtest/objects/tus.bin").content) == _sha(tus_data)
            assert _sha(api.get("/api/v1/buckets/lbtest/objects/cli.bin").content) == _sha(cli_data)


def _parts_stored(cluster: Cluster) -> int:
    return int(cluster.query("SELECT count(*) FROM parts WHERE upload_id IS NOT NULL")[0][0])
