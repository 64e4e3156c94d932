"""The ``cargohold`` console script against a real cluster, as a user would run it."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from cargohold.testing.cluster import Cluster
from cargohold.testing.console import CLI, ConsoleScript
from cargohold.testing.data import sample

BIG = 3 * (1 << 20) + 17
BUCKET = "cli-test"


@pytest.fixture(scope="module")
def cli(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> ConsoleScript:
    run = ConsoleScript(cluster, tmp_path_factory.mktemp("home"))
    assert "created bucket cli-test" in run.ok("mb", BUCKET)
    return run


@pytest.fixture(scope="module")
def big_file(cli: ConsoleScript) -> tuple[Path, bytes]:
    data = sample(BIG, seed=7)
    path = cli.cwd / "big.bin"
    path.write_bytes(data)
    out = cli.ok("put", str(path), f"{BUCKET}/dir/")  # BUCKET/dir/ keeps the file's name
    # Not a TTY: no progress bar, but a summary of what went where.
    assert f"{BUCKET}/dir/big.bin" in out
    assert "3.1 MB" in out and "etag" in out
    return path, data


@pytest.fixture(scope="module")
def piped(cli: ConsoleScript) -> bytes:
    data = sample(5000, seed=3)
    out = cli.ok("put", "-", f"{BUCKET}/dir/sub/piped.txt", input=data)
    assert f"{BUCKET}/dir/sub/piped.txt" in out and "5.0 kB" in out
    return data


def test_stat(cli: ConsoleScript, big_file: tuple[Path, bytes], piped: bytes) -> None:
    stat = cli.ok("stat", f"{BUCKET}/dir/sub/piped.txt")
    assert "size:          5000 " in stat
    assert "text/plain" in stat
    big = cli.ok("stat", f"{BUCKET}/dir/big.bin")
    assert f"size:          {BIG} " in big
    assert f"object:        {BUCKET}/dir/big.bin" in big


def test_ls_buckets_and_prefixes(cli: ConsoleScript, big_file: tuple[Path, bytes], piped: bytes) -> None:
    cli.ok("put", "-", f"{BUCKET}/top.txt", input=b"top")
    buckets = cli.ok("ls", "--plain")
    assert any(line.split("\t")[0] == BUCKET for line in buckets.splitlines())
    top = [line.split("\t") for line in cli.ok("ls", "--plain", BUCKET).splitlines()]
    assert [row[0] for row in top] == ["dir/", "top.txt"]
    assert top[1][1] == "3"
    level = [line.split("\t") for line in cli.ok("ls", "--plain", f"{BUCKET}/dir/").splitlines()]
    assert [row[0] for row in level] == ["dir/sub/", "dir/big.bin"]
    assert level[1][1] == str(BIG)
    every = [line.split("\t")[0] for line in cli.ok("ls", "--plain", "-r", f"{BUCKET}/dir/").splitlines()]
    assert "dir/big.bin" in every and "dir/sub/piped.txt" in every
    table = cli.ok("ls", f"{BUCKET}/dir/")
    assert "dir/sub/" in table and "dir/big.bin" in table


def test_get_whole_and_range(cli: ConsoleScript, big_file: tuple[Path, bytes]) -> None:
    _, data = big_file
    target = cli.cwd / "copy.bin"
    out = cli.ok("get", f"{BUCKET}/dir/big.bin", str(target))
    assert str(target) in out
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert not target.with_name("copy.bin.part").exists()
    start, end = (1 << 20) - 10, 2 * (1 << 20) + 10
    part = cli.cwd / "part.bin"
    cli.ok("get", "--range", f"{start}-{end}", f"{BUCKET}/dir/big.bin", str(part))
    assert part.read_bytes() == data[start : end + 1]
    tail = subprocess.run(
        [str(CLI), "get", "--range", "-100", f"{BUCKET}/dir/big.bin", "-"],
        capture_output=True,
        env=cli.env,
        cwd=cli.cwd,
        timeout=60,
        check=True,
    )
    assert tail.stdout == data[-100:]


def test_rm_then_stat_fails(cli: ConsoleScript) -> None:
    cli.ok("put", "-", f"{BUCKET}/doomed", input=b"bye")
    assert f"removed {BUCKET}/doomed" in cli.ok("rm", f"{BUCKET}/doomed")
    gone = cli("stat", f"{BUCKET}/doomed")
    assert gone.returncode == 1
    assert "error: no_such_key" in gone.stderr
    missing = cli("get", f"{BUCKET}/doomed", str(cli.cwd / "doomed"))
    assert missing.returncode == 1 and "error: no_such_key" in missing.stderr
    assert not (cli.cwd / "doomed").exists()


def test_nodes_list_and_set(cli: ConsoleScript, cluster: Cluster) -> None:
    table = cli.ok("nodes")
    assert all(node.url in table for node in cluster.nodes)
    plain = [line.split("\t") for line in cli.ok("nodes", "ls", "--plain").splitlines()]
    assert len(plain) == 8
    assert all(row[3:7] == ["up", "normal", "on", "active"] for row in plain)
    node_id = plain[0][0]
    try:
        off = cli.ok("nodes", "set", node_id, "--inactive")
        assert " up normal inactive " in " ".join(off.split()) and plain[0][1] in off
    finally:
        on = cli.ok("nodes", "set", node_id, "--active")
    assert " up normal " in " ".join(on.split()) and "inactive" not in on


def test_wrong_key(cli: ConsoleScript) -> None:
    bad = cli("ls", env={"CARGOHOLD_KEY": "CHTESTADMIN0000000.not-the-right-secret-at-all"})
    assert bad.returncode == 1
    assert "invalid_credentials" in bad.stderr
    flag = cli("stat", "--key", "nonsense", f"{BUCKET}/dir/big.bin")
    assert flag.returncode == 1 and "error: invalid_credentials" in flag.stderr, flag.stderr
