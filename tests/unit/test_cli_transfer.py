"""The pure rules of a parallel put: sizes, part plans, resume decisions, the state file."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from cargohold.cli import client
from cargohold.cli import transfer as t
from cargohold.cli.api_client import ApiError, ClientError, TransportError
from cargohold.cli.main import app

MIB = 1 << 20


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", MIB),
        ("0", 0),
        ("512KiB", 512 * 1024),
        ("16M", 16 * MIB),
        ("16MiB", 16 * MIB),
        ("16mib", 16 * MIB),
        ("16MB", 16_000_000),
        ("1.5GiB", 3 * (1 << 29)),
        (" 8 m ", 8 * MIB),
        ("100b", 100),
        (7, 7),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert t.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "-1", "1TiB", "ten", "1 2", "0x10"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size"):
        t.parse_size(text)


@given(size=st.integers(0, 1 << 44), part_size=st.integers(1, 1 << 33))
def test_plan_covers_the_file_in_order(size: int, part_size: int) -> None:
    fitted = t.fit_part_size(size, part_size)
    assert fitted >= part_size
    parts = t.plan_parts(size, fitted)
    assert len(parts) <= t.MAX_PARTS
    assert [p.number for p in parts] == list(range(1, len(parts) + 1))
    offset = 0
    for part in parts:
        assert part.offset == offset
        assert 0 < part.size <= fitted
        offset += part.size
    assert offset == size
    assert all(p.size == fitted for p in parts[:-1])


def test_plan_examples() -> None:
    assert t.plan_parts(0, MIB) == []
    assert t.plan_parts(5, 2) == [t.PartPlan(1, 0, 2), t.PartPlan(2, 2, 2), t.PartPlan(3, 4, 1)]
    assert t.plan_parts(4, 2) == [t.PartPlan(1, 0, 2), t.PartPlan(2, 2, 2)]
    with pytest.raises(ValueError):
        t.plan_parts(4, 0)


def test_fit_part_size_grows_only_past_ten_thousand_parts() -> None:
    assert t.fit_part_size(10_000 * MIB, MIB) == MIB
    assert t.fit_part_size(10_000 * MIB + 1, MIB) == 2 * MIB
    assert t.fit_part_size(1 << 40, 16 * MIB) == 105 * MIB  # 1 TiB / 10,000, rounded up to a MiB


def test_resume_plan_checks_same_size_parts_and_sends_the_rest() -> None:
    parts = t.plan_parts(5 * MIB + 10, MIB)
    stored = t.stored_parts(
        {
            "parts": [
                {"part_number": 1, "size": MIB, "md5": "A" * 32},
                {"part_number": 2, "size": MIB - 1, "md5": "b" * 32},  # short: resend
                {"part_number": 4, "size": MIB, "md5": None},  # no md5: cannot check
                {"part_number": 6, "size": 10, "md5": "c" * 32},
                {"part_number": 9, "size": 3, "md5": "d" * 32},  # not in the plan: ignored
                {"part_number": "x", "size": 3},
            ]
        }
    )
    todo = t.resume_plan(parts, stored)
    assert [(p.number, md5) for p, md5 in todo.check] == [(1, "a" * 32), (6, "c" * 32)]
    assert [p.number for p in todo.send] == [2, 3, 4, 5]
    assert todo.stored_bytes == MIB + 10


NOW = datetime(2026, 1, 1, tzinfo=UTC)
GOOD = {
    "status": "LOADING",
    "bucket": "b",
    "key": "k",
    "size": 100,
    "part_size": 10,
    "expires_at": (NOW + timedelta(hours=1)).isoformat(),
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({}, None),
        ({"status": "PENDING", "part_size": None}, None),
        ({"status": "UPLOADED"}, "it is UPLOADED"),
        ({"status": "DELETED"}, "it is DELETED"),
        ({"expires_at": (NOW - timedelta(seconds=1)).isoformat()}, "it expired"),
        ({"expires_at": "2025-12-31T23:00:00"}, "it expired"),  # naive means UTC
        ({"key": "other"}, "another object"),
        ({"size": 99}, "another size"),
        ({"part_size": 20}, "parts of another size"),
    ],
)
def test_session_problem(change: dict[str, object], problem: str | None) -> None:
    found = t.session_problem({**GOOD, **change}, size=100, part_size=10, bucket="b", key="k", now=NOW)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (TransportError("timeout", "slow"), True),
        (ApiError("unavailable", "x", 503), True),
        (ApiError("write_quorum_failed", "x", 500), True),
        (ApiError("too_many_requests", "x", 429), True),
        (ApiError("bad_response", "x", None), True),
        (ClientError("part_mismatch", "x"), True),
        (ApiError("upload_not_open", "x", 409), False),
        (ApiError("no_such_upload", "x", 404), False),
        (ApiError("part_too_large", "x", 413), False),
        (ClientError("source_changed", "x"), False),
        (ValueError("x"), False),
    ],
)
def test_is_retryable(error: BaseException, retry: bool) -> None:
    assert t.is_retryable(error) is retry


def test_backoff_doubles_up_to_a_cap() -> None:
    assert t.backoff_delays() == [0.5, 1.0, 2.0]
    assert t.backoff_delays(6, base=1.0, cap=8.0) == [1, 2, 4, 8, 8, 8]


def test_multipart_etag_is_s3s() -> None:
    one = "0" * 32
    assert t.multipart_etag([one]) == one
    # md5 of the two 16-byte binary digests (32 zero bytes), then the part count
    assert t.multipart_etag([one, one]) == hashlib.md5(bytes(32)).hexdigest() + "-2"


# ---------------------------------------------------------------- state file


def test_state_dir_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert t.state_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "cargohold" / "uploads"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert t.state_dir({}) == tmp_path / "home" / ".local" / "state" / "cargohold" / "uploads"


def test_state_key_names_one_file_version_for_one_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    base = ("http://gw:8080", "b", "k/x.bin", tmp_path / "x.bin", 100, 5)
    key = t.state_key(*base)
    assert len(key) == 64 and int(key, 16) >= 0
    assert t.state_key(*base) == key
    assert t.state_key("http://gw:8080/", *base[1:]) == key  # a trailing slash is the same gateway
    assert t.state_key(*base[:3], "x.bin", *base[4:]) == key  # relative to the cwd = absolute
    variants = [
        ("http://other:8080", *base[1:]),
        (base[0], "b2", *base[2:]),
        (*base[:2], "k/y.bin", *base[3:]),
        (*base[:3], tmp_path / "y.bin", *base[4:]),
        (*base[:4], 101, base[5]),
        (*base[:5], 6),
    ]
    assert len({t.state_key(*v) for v in variants} | {key}) == len(variants) + 1
    # bucket/key is one field: ("a", "b/c") and ("a/b", "c") are the same object path on purpose
    assert t.state_key(base[0], "a", "b/c", *base[3:]) == t.state_key(base[0], "a/b", "c", *base[3:])


def _state(upload_id: str = "u1") -> t.UploadState:
    return t.UploadState(upload_id, MIB, "http://gw", "b", "k", "/x", 10, 5)


def test_state_file_round_trip_and_forget(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "uploads"
    t.save_state(directory / "one.json", _state("u1"))
    t.save_state(directory / "two.json", _state("u2"))
    assert t.load_state(directory / "one.json") == _state("u1")
    assert (directory.stat().st_mode & 0o777) == 0o700
    assert sorted(p.name for p in directory.iterdir()) == ["one.json", "two.json"]  # no temporaries
    assert t.forget_upload(directory, "u1") == [directory / "one.json"]
    assert not (directory / "one.json").exists() and (directory / "two.json").exists()
    assert t.forget_upload(tmp_path / "missing", "u2") == []


@pytest.mark.parametrize("text", ["", "{", "[]", "{}", json.dumps({"upload_id": "u"}), "null"])
def test_broken_state_files_are_ignored(tmp_path: Path, text: str) -> None:
    file = tmp_path / "s.json"
    file.write_text(text)
    assert t.load_state(file) is None
    assert t.load_state(tmp_path / "missing.json") is None


def test_state_of_another_version_is_ignored(tmp_path: Path) -> None:
    file = tmp_path / "s.json"
    t.save_state(file, _state())
    data = json.loads(file.read_text())
    file.write_text(json.dumps({**data, "version": 99}))
    assert t.load_state(file) is None


def test_part_ranges() -> None:
    assert t.part_ranges([]) == "-"
    assert t.part_ranges([3, 1, 2, 5, 7, 8, 8]) == "1-3, 5, 7-8"
    assert t.part_ranges([4]) == "4"


# ---------------------------------------------------------------- options (no request is made)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["put", "--part-size", "0", "f", "b/k"], "1 byte to 5 GiB"),
        (["put", "--part-size", "6GiB", "f", "b/k"], "1 byte to 5 GiB"),
        (["put", "--part-size", "lots", "f", "b/k"], "expected a size"),
        (["put", "--multipart-threshold", "1TB", "f", "b/k"], "expected a size"),
        (["put", "--parallel", "0", "f", "b/k"], "--parallel"),
        (["put", "--parallel", "33", "f", "b/k"], "--parallel"),
        (["uploads", "ls", "a/b"], "without '/'"),
        (["uploads", "show"], "Missing argument"),
        (["uploads", "abort"], "Missing argument"),
    ],
)
def test_bad_options_are_usage_errors(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a request was attempted")

    monkeypatch.setattr(client, "GatewayClient", no_network)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
