"""The S3 programs people use, unchanged, against a real cluster: aws cli, rclone and s3cmd.

Each one round-trips a 100 MiB file (checked by sha256) and a tree of 200
small files, lists and deletes, exactly as a user would run it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.testing.cluster import Cluster
from cargohold.testing.s3 import create_s3_key
from cargohold.testing.s3_clients import S3Clients

pytestmark = pytest.mark.slow

BIG = 100 * 1024 * 1024
TREE_FILES = 200


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def tree_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # Each client writes hundreds of MiB in bursts; a node's fsync may then stall for
    # seconds on a busy disk, which this test does not measure: nodes get 30 s, not 5.
    env = {"CARGOHOLD_NODE_TIMEOUT": "30"}
    with Cluster(tmp_path_factory.mktemp("s3-clients"), node_count=4, layout="ec:2+1", env=env) as running:
        yield running


@pytest.fixture(scope="module")
def clients(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> S3Clients:
    with cluster.client() as api:
        access_key, secret = create_s3_key(api)
    return S3Clients(cluster.url, access_key, secret, tmp_path_factory.mktemp("client-home"))


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    with path.open("wb") as f:
        for _ in range(BIG // (1 << 20)):
            f.write(os.urandom(1 << 20))
    return path


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 files from 0 bytes to ~40 KiB in nested folders, some names with spaces and unicode."""
    root = tmp_path_factory.mktemp("tree")
    for i in range(TREE_FILES):
        folder = root / f"d{i % 7}" / ("deep é" if i % 3 == 0 else "flat")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file {i:03d}.txt").write_bytes(os.urandom((i * 197) % 40_000))
    return root


def test_aws_cli_copies_syncs_lists_and_removes(
    clients: S3Clients, big: Path, tree: Path, tmp_path: Path
) -> None:
    clients.aws("s3", "mb", "s3://aws-cli")
    clients.aws("s3", "cp", str(big), "s3://aws-cli/big.bin")  # multipart: 8 MiB parts, 10 at once
    clients.aws("s3", "cp", "s3://aws-cli/big.bin", str(tmp_path / "big.out"))
    assert sha256(tmp_path / "big.out") == sha256(big)
    head = clients.aws("s3api", "head-object", "--bucket", "aws-cli", "--key", "big.bin")
    assert f'"ContentLength": {BIG}' in head.stdout

    clients.aws("s3", "sync", str(tree), "s3://aws-cli/tree")
    listed = clients.aws("s3", "ls", "--recursive", "s3://aws-cli/tree/").stdout.splitlines()
    assert len(listed) == TREE_FILES
    clients.aws("s3", "sync", "s3://aws-cli/tree", str(tmp_path / "tree"))
    assert tree_digests(tmp_path / "tree") == tree_digests(tree)
    # A second sync both ways has nothing to do.
    assert clients.aws("s3", "sync", str(tree), "s3://aws-cli/tree").stdout == ""
    assert clients.aws("s3", "sync", "s3://aws-cli/tree", str(tmp_path / "tree")).stdout == ""

    clients.aws("s3", "rm", "--recursive", "s3://aws-cli/")
    listing = clients.aws(
        "s3api", "list-objects-v2", "--no-paginate", "--bucket", "aws-cli", "--query", "KeyCount"
    )
    assert listing.stdout.strip() == "0"
    clients.aws("s3", "rb", "s3://aws-cli")
    assert "aws-cli" not in clients.aws("s3", "ls").stdout


def test_rclone_copies_syncs_checks_and_deletes(
    clients: S3Clients, big: Path, tree: Path, tmp_path: Path
) -> None:
    clients.rclone("mkdir", "ch:rclone")
    clients.rclone("copyto", str(big), "ch:rclone/big.bin")
    clients.rclone("copyto", "ch:rclone/big.bin", str(tmp_path / "big.out"))
    assert sha256(tmp_path / "big.out") == sha256(big)
    # Above its cutoff rclone uploads in parts, 4 at once.
    clients.rclone(
        "copyto", "--s3-upload-cutoff", "16M", "--s3-chunk-size", "16M", str(big), "ch:rclone/big2.bin"
    )
    clients.rclone("copyto", "ch:rclone/big2.bin", str(tmp_path / "big2.out"))
    assert sha256(tmp_path / "big2.out") == sha256(big)

    clients.rclone("sync", str(tree), "ch:rclone/tree")
    clients.rclone("check", str(tree), "ch:rclone/tree")  # sizes and md5 ETags
    listed = clients.rclone("lsf", "-R", "--files-only", "ch:rclone/tree").stdout.splitlines()
    assert len(listed) == TREE_FILES
    clients.rclone("sync", "ch:rclone/tree", str(tmp_path / "tree"))
    assert tree_digests(tmp_path / "tree") == tree_digests(tree)

    clients.rclone("purge", "ch:rclone")
    assert "rclone" not in clients.rclone("lsd", "ch:").stdout


def test_s3cmd_puts_gets_lists_and_deletes(clients: S3Clients, big: Path, tree: Path, tmp_path: Path) -> None:
    clients.s3cmd("mb", "s3://s3cmd")
    clients.s3cmd("put", "--multipart-chunk-size-mb=15", str(big), "s3://s3cmd/big.bin")
    clients.s3cmd("get", "s3://s3cmd/big.bin", str(tmp_path / "big.out"))
    assert sha256(tmp_path / "big.out") == sha256(big)
    info = clients.s3cmd("info", "s3://s3cmd/big.bin").stdout
    assert f"File size: {BIG}" in info

    clients.s3cmd("put", "--recursive", f"{tree}/", "s3://s3cmd/tree/")
    listed = clients.s3cmd("ls", "--recursive", "s3://s3cmd/tree/").stdout.splitlines()
    assert len(listed) == TREE_FILES
    (tmp_path / "tree").mkdir()
    clients.s3cmd("get", "--recursive", "s3://s3cmd/tree/", f"{tmp_path / 'tree'}/")
    assert tree_digests(tmp_path / "tree") == tree_digests(tree)

    clients.s3cmd("del", "--recursive", "--force", "s3://s3cmd/")
    assert clients.s3cmd("ls", "--recursive", "s3://s3cmd/").stdout.strip() == ""
    clients.s3cmd("rb", "s3://s3cmd")


def test_objects_written_natively_pass_the_clients_md5_checks(
    cluster: Cluster, clients: S3Clients, tmp_path: Path
) -> None:
    """A native PUT computes no md5; its ETag must not pass for one, or clients report a mismatch."""
    local = tmp_path / "local"
    local.mkdir()
    with cluster.client() as api:
        api.put("/api/v1/buckets/native-written").raise_for_status()
        for i in range(3):
            data = os.urandom(1000 + 70_000 * i)
            (local / f"f{i}.bin").write_bytes(data)
            api.put(f"/api/v1/buckets/native-written/objects/f{i}.bin", content=data).raise_for_status()
    clients.rclone("check", str(local), "ch:native-written")  # exits 1 on an md5 difference
    got = clients.s3cmd("get", "s3://native-written/f2.bin", str(tmp_path / "f2.out"))
    assert "MD5" not in got.stderr
    assert (tmp_path / "f2.out").read_bytes() == (local / "f2.bin").read_bytes()
