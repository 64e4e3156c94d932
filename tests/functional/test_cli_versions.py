"""``cargohold mv``, ``versions``, ``restore``, ``versioning`` and --version-id, as a user runs them."""

from __future__ import annotations

import pytest

from cargohold.testing.cluster import Cluster
from cargohold.testing.console import ConsoleScript
from cargohold.testing.data import sample

BUCKET = "cli-versions"
OTHER = "cli-versions-to"


@pytest.fixture(scope="module")
def cli(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> ConsoleScript:
    run = ConsoleScript(cluster, tmp_path_factory.mktemp("home"))
    run.ok("mb", BUCKET)
    run.ok("mb", OTHER)
    return run


def _versions(cli: ConsoleScript, *args: str) -> list[list[str]]:
    return [line.split("\t") for line in cli.ok("versions", "--plain", *args).splitlines()]


def test_versioning_switch(cli: ConsoleScript) -> None:
    assert cli.ok("versioning", OTHER).strip() == f"{OTHER}: versioning off"
    assert cli.ok("versioning", OTHER, "on").strip() == f"{OTHER}: versioning enabled"
    assert cli.ok("versioning", OTHER, "status").strip() == f"{OTHER}: versioning enabled"
    assert cli.ok("versioning", OTHER, "off").strip() == f"{OTHER}: versioning suspended"
    bad = cli("versioning", OTHER, "maybe")
    assert bad.returncode == 2 and "expected on, off or status" in bad.stderr


def test_versions_get_stat_rm_restore(cli: ConsoleScript) -> None:
    cli.ok("versioning", BUCKET, "on")
    first, second = sample(200_000, seed=41), b"second version\n"
    (cli.cwd / "first.bin").write_bytes(first)
    cli.ok("put", str(cli.cwd / "first.bin"), f"{BUCKET}/doc.bin")
    cli.ok("put", "-", f"{BUCKET}/doc.bin", input=second)
    rows = _versions(cli, f"{BUCKET}/doc.bin", "--exact")
    assert [(r[0], r[2], r[4]) for r in rows] == [
        ("doc.bin", str(len(second)), "latest"),
        ("doc.bin", str(len(first)), "-"),
    ]
    v2, v1 = rows[0][1], rows[1][1]
    assert len(v1) == 32 and v1 != v2

    out = cli.cwd / "old.bin"
    cli.ok("get", "--version-id", v1, f"{BUCKET}/doc.bin", str(out))
    assert out.read_bytes() == first
    piece = cli.cwd / "piece.bin"
    cli.ok("get", "--version-id", v1, "--range", "150000-150019", f"{BUCKET}/doc.bin", str(piece))
    assert piece.read_bytes() == first[150000:150020]
    stat = cli.ok("stat", "--version-id", v1, f"{BUCKET}/doc.bin")
    assert f"size:          {len(first)} " in stat and f"version-id:    {v1}" in stat
    assert f"version-id:    {v2}" in cli.ok("stat", f"{BUCKET}/doc.bin")
    unknown = cli("stat", "--version-id", "0" * 32, f"{BUCKET}/doc.bin")
    assert unknown.returncode == 1 and "error: no_such_version" in unknown.stderr

    removed = cli.ok("rm", f"{BUCKET}/doc.bin")
    assert "delete marker" in removed
    gone = cli("get", f"{BUCKET}/doc.bin", "-")
    assert gone.returncode == 1 and "error: no_such_key" in gone.stderr
    rows = _versions(cli, f"{BUCKET}/doc.bin", "--exact")
    assert rows[0][4] == "latest,delete-marker" and [r[1] for r in rows[1:]] == [v2, v1]
    marker = rows[0][1]
    refused = cli("restore", f"{BUCKET}/doc.bin", marker)
    assert refused.returncode == 1 and "delete_marker_not_restorable" in refused.stderr
    assert cli.ok("restore", f"{BUCKET}/doc.bin", v1).strip() == f"restored {BUCKET}/doc.bin to version {v1}"
    cli.ok("get", f"{BUCKET}/doc.bin", str(out))
    assert out.read_bytes() == first
    assert f"removed version {v2}" in cli.ok("rm", "--version-id", v2, f"{BUCKET}/doc.bin")
    assert [r[1] for r in _versions(cli, f"{BUCKET}/doc.bin", "--exact")] == [v1, marker]
    table = cli.ok("versions", BUCKET)
    assert v1 in table and marker in table and "marker" in table


def test_versions_by_prefix(cli: ConsoleScript) -> None:
    for key in ("p/a", "p/b", "q"):
        cli.ok("put", "-", f"{BUCKET}/{key}", input=key.encode())
    assert [r[0] for r in _versions(cli, f"{BUCKET}/p/")] == ["p/a", "p/b"]
    empty = cli.run_ok("versions", f"{BUCKET}/nothing-here")
    assert empty.stdout == "" and "no versions" in empty.stderr


def test_mv(cli: ConsoleScript) -> None:
    cli.ok("put", "-", f"{BUCKET}/mv/src.txt", input=b"moving")
    cli.ok("put", "-", f"{BUCKET}/mv/taken.txt", input=b"taken")
    out = cli.ok("mv", f"{BUCKET}/mv/src.txt", f"{BUCKET}/mv/dst.txt")
    assert out.startswith(f"renamed {BUCKET}/mv/src.txt -> {BUCKET}/mv/dst.txt")
    assert cli.ok("get", f"{BUCKET}/mv/dst.txt", "-") == "moving"
    assert cli("get", f"{BUCKET}/mv/src.txt", "-").returncode == 1
    refused = cli("mv", f"{BUCKET}/mv/dst.txt", f"{BUCKET}/mv/taken.txt")
    assert refused.returncode == 1 and "error: key_exists" in refused.stderr
    cli.ok("mv", "--overwrite", f"{BUCKET}/mv/dst.txt", f"{BUCKET}/mv/taken.txt")
    assert cli.ok("get", f"{BUCKET}/mv/taken.txt", "-") == "moving"
    # BUCKET/ (or BUCKET/dir/) as the destination keeps the source's name.
    cli.ok("mv", f"{BUCKET}/mv/taken.txt", f"{OTHER}/inbox/")
    assert cli.ok("get", f"{OTHER}/inbox/taken.txt", "-") == "moving"
    missing = cli("mv", f"{BUCKET}/mv/taken.txt", f"{OTHER}/again")
    assert missing.returncode == 1 and "error: no_such_key" in missing.stderr
