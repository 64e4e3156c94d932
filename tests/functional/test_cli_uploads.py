"""``cargohold put`` in parallel parts, its resume, and ``cargohold uploads``, on a real cluster.

Small parts (1 MiB) and a 1 MiB threshold make files of a few MiB go through
upload sessions quickly. An interruption is staged the way a killed run leaves
things: a session holding some of the parts, and the state file that run wrote.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import httpx
import pytest
import xxhash

from cargohold.cli import transfer
from cargohold.testing.cluster import Cluster
from cargohold.testing.console import ConsoleScript
from cargohold.testing.data import sample

CLI = Path(sys.executable).parent / "cargohold"
MIB = 1 << 20
BUCKET = "cli-uploads"
PARTS = ("--part-size", "1MiB", "--multipart-threshold", "1MiB")


class Run(ConsoleScript):
    """The console script with a private resume-state folder to inspect."""

    def __init__(self, cluster: Cluster, home: Path) -> None:
        super().__init__(cluster, home)
        self.states = transfer.state_dir(self.env)

    def state_files(self) -> list[Path]:
        return sorted(self.states.glob("*.json")) if self.states.is_dir() else []


@pytest.fixture(scope="module")
def cli(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = Run(cluster, tmp_path_factory.mktemp("home"))
    run.ok("mb", BUCKET)
    return run


def _file(cli: Run, name: str, size: int, seed: int) -> tuple[Path, bytes]:
    data = sample(size, seed=seed)
    path = cli.cwd / name
    path.write_bytes(data)
    return path, data


def _stored_sha256(api: httpx.Client, key: str) -> str:
    reply = api.get(f"/api/v1/buckets/{BUCKET}/objects/{key}")
    assert reply.status_code == 200, reply.text
    return hashlib.sha256(reply.content).hexdigest()


def _stage_interrupted_put(cli: Run, api: httpx.Client, path: Path, key: str, send: dict[int, bytes]) -> str:
    """What a run killed mid-way leaves: an open session with parts ``send``, and its state file."""
    st = path.stat()
    created = api.post(
        "/api/v1/uploads",
        json={"bucket": BUCKET, "key": key, "size": st.st_size, "part_size": MIB},
    )
    assert created.status_code == 201, created.text
    upload_id = created.json()["id"]
    for number, body in send.items():
        reply = api.put(f"/api/v1/uploads/{upload_id}/parts/{number}", content=body)
        assert reply.status_code == 200, reply.text
    ident = transfer.state_key(cli.env["CARGOHOLD_URL"], BUCKET, key, path, st.st_size, st.st_mtime_ns)
    transfer.save_state(
        cli.states / f"{ident}.json",
        transfer.UploadState(
            upload_id, MIB, cli.env["CARGOHOLD_URL"], BUCKET, key, str(path), st.st_size, st.st_mtime_ns
        ),
    )
    return upload_id


def test_parallel_put_round_trip(cli: Run, api: httpx.Client) -> None:
    path, data = _file(cli, "seven.bin", 7 * MIB + 12345, seed=21)
    done = cli.run_ok("put", *PARTS, "--parallel", "3", str(path), f"{BUCKET}/big/")
    dest, size, etag = done.stdout.strip().split("\t")
    assert dest == f"{BUCKET}/big/seven.bin" and size == "7.4 MB"
    assert etag.startswith("etag ") and etag.endswith("-8")  # joined from 8 parts
    assert _stored_sha256(api, "big/seven.bin") == hashlib.sha256(data).hexdigest()
    assert cli.state_files() == []
    assert "resuming" not in done.stderr


def _listed(api: httpx.Client, key: str) -> dict[str, object]:
    listed = api.get(f"/api/v1/buckets/{BUCKET}/objects", params={"prefix": key}).json()
    (obj,) = [o for o in listed["objects"] if o["key"] == key]
    return dict(obj)


def test_put_verify_has_the_gateway_check_the_whole_file(cli: Run, api: httpx.Client) -> None:
    path, data = _file(cli, "five.bin", 5 * MIB + 1, seed=22)
    cli.run_ok("put", *PARTS, str(path), f"{BUCKET}/unverified.bin")
    assert _listed(api, "unverified.bin")["sha256"] is None  # joined by metadata only
    cli.run_ok("put", *PARTS, "--verify", str(path), f"{BUCKET}/five.bin")
    obj = _listed(api, "five.bin")
    assert obj["size"] == len(data)
    assert obj["md5"] == hashlib.md5(data).hexdigest()  # checked by the gateway on completion
    assert obj["sha256"] == hashlib.sha256(data).hexdigest()
    assert _stored_sha256(api, "five.bin") == obj["sha256"]


def test_below_the_threshold_is_one_put(cli: Run, api: httpx.Client) -> None:
    path, data = _file(cli, "small.bin", 2 * MIB, seed=23)
    done = cli.run_ok("put", "--part-size", "1MiB", str(path), f"{BUCKET}/small.bin")  # 64 MiB threshold
    # One PUT: the native ETag (xxh3-128, one part), not one joined from parts' md5s.
    assert done.stdout.split("etag ")[1].strip() == xxhash.xxh3_128_hexdigest(data) + "-1"
    assert _stored_sha256(api, "small.bin") == hashlib.sha256(data).hexdigest()


def test_resume_sends_only_the_missing_parts(cli: Run, api: httpx.Client) -> None:
    path, data = _file(cli, "resume.bin", 6 * MIB + 999, seed=24)
    chunk = [data[i : i + MIB] for i in range(0, len(data), MIB)]
    stale = bytes(b ^ 0xFF for b in chunk[4])  # same size, other bytes: must be sent again
    upload_id = _stage_interrupted_put(
        cli, api, path, "resume.bin", {1: chunk[0], 2: chunk[1], 4: chunk[3], 5: stale}
    )
    before = api.get(f"/api/v1/uploads/{upload_id}").json()
    assert [p["part_number"] for p in before["parts"]] == [1, 2, 4, 5]
    done = cli.run_ok("put", *PARTS, str(path), f"{BUCKET}/resume.bin")
    assert (
        f"resuming upload {upload_id}: 3/7 parts already stored (1 differ from the file and are sent again)"
        in done.stderr
    )
    assert f"completed upload {upload_id}: sent 4 parts, kept 3" in done.stderr
    after = api.get(f"/api/v1/uploads/{upload_id}").json()
    assert after["status"] == "UPLOADED"
    assert _stored_sha256(api, "resume.bin") == hashlib.sha256(data).hexdigest()
    assert cli.state_files() == []


def test_a_session_gone_since_starts_over(cli: Run, api: httpx.Client) -> None:
    path, data = _file(cli, "restart.bin", 3 * MIB + 5, seed=25)
    chunk = [data[i : i + MIB] for i in range(0, len(data), MIB)]
    upload_id = _stage_interrupted_put(cli, api, path, "restart.bin", {1: chunk[0]})
    assert api.delete(f"/api/v1/uploads/{upload_id}").status_code == 200
    done = cli.run_ok("put", *PARTS, str(path), f"{BUCKET}/restart.bin")
    assert f"starting over: upload {upload_id} cannot be resumed (it is DELETED)" in done.stderr
    assert "resuming" not in done.stderr
    assert _stored_sha256(api, "restart.bin") == hashlib.sha256(data).hexdigest()
    assert cli.state_files() == []


def test_uploads_ls_show_abort(cli: Run, api: httpx.Client) -> None:
    path, data = _file(cli, "open.bin", 4 * MIB, seed=26)
    upload_id = _stage_interrupted_put(
        cli, api, path, "open.bin", {1: data[:MIB], 3: data[2 * MIB : 3 * MIB]}
    )
    assert len(cli.state_files()) == 1

    rows = [line.split("\t") for line in cli.run_ok("uploads", "ls", "--plain", BUCKET).stdout.splitlines()]
    row = next(r for r in rows if r[0] == upload_id)
    assert row[1:5] == [f"{BUCKET}/open.bin", "LOADING", "50.0", str(4 * MIB)]
    table = cli.run_ok("uploads", "ls").stdout
    line = next(text for text in table.splitlines() if upload_id in text)
    assert re.search(rf"{BUCKET}/open\.bin\s+LOADING\s+50\.0%\s+4\.2 MB\s+\d{{4}}-", line), line
    assert upload_id in cli.run_ok("uploads").stdout  # the group alone lists too

    show = cli.run_ok("uploads", "show", upload_id).stdout
    assert f"upload:       {upload_id}" in show
    assert "status:       LOADING" in show
    assert f"received:     {2 * MIB} (2.1 MB), 50.0%" in show
    assert "parts:        2 (1, 3), 2.1 MB" in show
    assert re.search(r"expires:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", show), show

    aborted = cli.run_ok("uploads", "abort", upload_id)
    assert f"aborted upload {upload_id} ({BUCKET}/open.bin)" in aborted.stdout
    assert cli.state_files() == []  # the local state of an aborted upload goes too
    assert upload_id not in cli.run_ok("uploads", "ls", "--plain", BUCKET).stdout
    assert "status:       DELETED" in cli.run_ok("uploads", "show", upload_id).stdout

    again = cli("uploads", "abort", upload_id)
    assert again.returncode == 1
    assert again.stderr.startswith("error: upload_not_open: ")
    missing = cli("uploads", "show", "no-such-upload")
    assert missing.returncode == 1 and missing.stderr.startswith("error: no_such_upload: ")
    nobucket = cli("uploads", "ls", "no-such-bucket")
    assert nobucket.returncode == 1 and nobucket.stderr.startswith("error: no_such_bucket: ")


def test_put_errors_are_one_line(cli: Run) -> None:
    path, _ = _file(cli, "nowhere.bin", 2 * MIB, seed=27)
    done = cli("put", *PARTS, str(path), "no-such-bucket/x.bin")
    assert done.returncode == 1
    assert done.stderr.startswith("error: no_such_bucket: ") and done.stderr.count("\n") == 1
    assert cli.state_files() == []
    bad = cli("put", "--part-size", "0", str(path), f"{BUCKET}/x.bin")
    assert bad.returncode == 2 and "1 byte to 5 GiB" in bad.stderr
