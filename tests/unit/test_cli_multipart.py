"""A put in parts against a tiny in-memory gateway (``httpx.MockTransport``, no sockets).

The fake speaks just enough of ``/api/v1/uploads`` and lets each test script
what happens to each part: a 5xx, a dropped connection, a wrong md5, a 409.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.progress import Progress

from cargohold.cli import transfer
from cargohold.cli.api_client import ApiError, ClientError, GatewayClient, TransportError
from cargohold.cli.multipart import MultipartPut, PartOptions
from cargohold.testing.data import sample

URL = "http://gw.test"
PART = 1000
Fault = str | Callable[[], None]


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _problem(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"status": status, "code": code, "detail": f"scripted {code}"})


class FakeGateway:
    """Upload sessions in a dict; ``faults[n]`` is consumed one item per PUT of part n."""

    def __init__(self) -> None:
        self.uploads: dict[str, dict[str, Any]] = {}
        self.objects: dict[tuple[str, str], bytes] = {}
        self.faults: dict[int, list[Fault]] = {}
        self.log: list[tuple[str, str]] = []
        self.completions: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.inflight = self.peak = self.created = 0

    def view(self, u: dict[str, Any]) -> dict[str, Any]:
        parts = [{"part_number": n, "size": len(b), "md5": _md5(b)} for n, b in sorted(u["parts"].items())]
        return {**{k: v for k, v in u.items() if k != "parts"}, "parts": parts}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        with self.lock:
            self.log.append((method, path))
        segments = path.split("/")[4:]  # after /api/v1/uploads
        if method == "POST" and not segments:
            body = json.loads(request.read())
            self.created += 1
            upload_id = f"u{self.created}"
            self.uploads[upload_id] = {
                "id": upload_id,
                "bucket": body["bucket"],
                "key": body["key"],
                "size": body["size"],
                "part_size": body.get("part_size"),
                "status": "PENDING",
                "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                "parts": {},
            }
            return httpx.Response(201, json=self.view(self.uploads[upload_id]))
        upload = self.uploads.get(segments[0]) if segments else None
        if upload is None:
            return _problem(404, "no_such_upload")
        if method == "GET":
            return httpx.Response(200, json=self.view(upload))
        if method == "DELETE":
            upload["status"], upload["parts"] = "DELETED", {}
            return httpx.Response(200, json=self.view(upload))
        if upload["status"] not in ("PENDING", "LOADING"):
            return _problem(409, "upload_not_open")
        if method == "PUT":
            return self._part(upload, int(segments[2]), request)
        return self._complete(upload, json.loads(request.read()))

    def _part(self, upload: dict[str, Any], number: int, request: httpx.Request) -> httpx.Response:
        with self.lock:
            fault = self.faults.get(number, []).pop(0) if self.faults.get(number) else None
            self.inflight += 1
            self.peak = max(self.peak, self.inflight)
        try:
            if callable(fault):
                fault()
            elif fault == "drop":
                raise httpx.ReadError("connection reset by peer")
            elif fault and fault.isdigit():
                return _problem(int(fault), "scripted")
            data = request.read()
            assert int(request.headers["content-length"]) == len(data)
            if fault == "corrupt":
                data = data[:-1] + bytes([data[-1] ^ 1])
            with self.lock:
                upload["parts"][number] = data
                upload["status"] = "LOADING"
            return httpx.Response(200, json={"part_number": number, "size": len(data), "md5": _md5(data)})
        finally:
            with self.lock:
                self.inflight -= 1

    def _complete(self, upload: dict[str, Any], body: dict[str, Any]) -> httpx.Response:
        self.completions.append(body)
        numbers = [p["part_number"] for p in body["parts"]]
        assert numbers == list(range(1, len(numbers) + 1))
        for item in body["parts"]:
            assert _md5(upload["parts"][item["part_number"]]) == item["md5"]
        data = b"".join(upload["parts"][n] for n in numbers)
        if body.get("md5") and body["md5"] != _md5(data):
            return _problem(400, "bad_digest")
        upload["status"] = "UPLOADED"
        self.objects[upload["bucket"], upload["key"]] = data
        etag = transfer.multipart_etag([p["md5"] for p in body["parts"]])
        obj = {"size": len(data), "etag": etag, "sha256": body.get("sha256"), "md5": body.get("md5")}
        return httpx.Response(200, json={"upload": self.view(upload), "object": obj})

    def part_puts(self) -> list[int]:
        return sorted(int(p.rsplit("/", 1)[1]) for m, p in self.log if m == "PUT")


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, bytes]:
    data = sample(6 * PART + 123, seed=11)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    return path, data


class Runner:
    def __init__(self, gateway: FakeGateway, states: Path) -> None:
        self.gateway, self.states = gateway, states
        self.said: list[str] = []

    def __call__(self, src: Path, key: str = "k", **options: Any) -> dict[str, Any]:
        opts = PartOptions(**{"parallel": 3, "part_size": PART, "backoff": 0.0, **options})
        with GatewayClient(URL, "key", transport=httpx.MockTransport(self.gateway)) as api:
            run = MultipartPut(
                api,
                src,
                "b",
                key,
                content_type=None,
                options=opts,
                progress=Progress(disable=True),
                say=self.said.append,
                states=self.states,
            )
            return run.run()

    def state_files(self) -> list[Path]:
        return sorted(self.states.glob("*.json")) if self.states.is_dir() else []


@pytest.fixture
def put(gateway: FakeGateway, tmp_path: Path) -> Runner:
    return Runner(gateway, tmp_path / "state")


def test_parts_go_in_parallel_and_join_in_order(put: Runner, gateway: FakeGateway, source: Any) -> None:
    path, data = source
    obj = put(path)
    assert gateway.objects["b", "k"] == data
    assert obj["size"] == len(data) and obj["etag"].endswith("-7")
    assert gateway.part_puts() == [1, 2, 3, 4, 5, 6, 7]
    assert 1 <= gateway.peak <= 3
    (done,) = gateway.completions
    assert "md5" not in done and "sha256" not in done  # only with --verify
    assert put.state_files() == [] and put.said == []


def test_verify_sends_whole_file_digests(put: Runner, gateway: FakeGateway, source: Any) -> None:
    path, data = source
    put(path, verify=True)
    (done,) = gateway.completions
    assert done["md5"] == _md5(data)
    assert done["sha256"] == hashlib.sha256(data).hexdigest()


def test_failed_parts_are_retried(put: Runner, gateway: FakeGateway, source: Any) -> None:
    path, data = source
    gateway.faults = {2: ["503", "503"], 3: ["drop"], 4: ["corrupt"], 5: ["429"]}
    put(path)
    assert gateway.objects["b", "k"] == data
    assert gateway.part_puts() == [1, 2, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7]
    retries = [line for line in put.said if "retrying" in line]
    assert len(retries) == 5
    assert any("part 4 failed (part_mismatch" in line for line in retries)


def test_retries_give_up_after_three(put: Runner, gateway: FakeGateway, source: Any) -> None:
    path, _ = source
    gateway.faults = {1: ["500"] * 10}
    with pytest.raises(ApiError, match="run the same command again to resume upload u1"):
        put(path, parallel=1)
    assert gateway.part_puts().count(1) == 4
    assert len(put.state_files()) == 1  # kept for the next run


def test_client_errors_are_not_retried(put: Runner, gateway: FakeGateway, source: Any) -> None:
    path, _ = source
    gateway.faults = {2: ["409"]}
    with pytest.raises(ApiError) as caught:
        put(path, parallel=1)
    assert caught.value.status == 409
    assert gateway.part_puts().count(2) == 1


def test_a_second_run_sends_only_missing_parts(put: Runner, gateway: FakeGateway, source: Any) -> None:
    path, data = source
    gateway.faults = {3: ["drop"] * 4}
    with pytest.raises(TransportError):
        put(path, parallel=1)  # parts 1 and 2 stored, 3 failed, the rest cancelled
    (state_file,) = put.state_files()
    state = transfer.load_state(state_file)
    assert state is not None and state.upload_id == "u1" and state.part_size == PART
    gateway.uploads["u1"]["parts"][2] = b"x" * PART  # a stored part that no longer matches the file
    gateway.log.clear()
    put(path)
    assert (
        "resuming upload u1: 1/7 parts already stored (1 differ from the file and are sent again)" in put.said
    )
    assert "completed upload u1: sent 6 parts, kept 1" in put.said
    assert gateway.part_puts() == [2, 3, 4, 5, 6, 7]
    assert gateway.objects["b", "k"] == data
    assert put.state_files() == []
    assert [m for m, _ in gateway.log if m != "PUT"] == ["GET", "POST"]  # no new session, one complete


def test_a_resumed_run_keeps_the_sessions_part_size(put: Runner, gateway: FakeGateway, source: Any) -> None:
    path, data = source
    gateway.faults = {1: ["drop"] * 4}
    with pytest.raises(TransportError):
        put(path, parallel=1)
    put(path, part_size=4 * PART)  # a different --part-size does not apply to the open session
    assert gateway.uploads["u1"]["part_size"] == PART and gateway.uploads["u1"]["status"] == "UPLOADED"
    assert gateway.objects["b", "k"] == data


@pytest.mark.parametrize("how", ["aborted", "expired", "forgotten"])
def test_a_session_that_cannot_resume_starts_over(
    put: Runner, gateway: FakeGateway, source: Any, how: str
) -> None:
    path, data = source
    gateway.faults = {1: ["drop"] * 4}
    with pytest.raises(TransportError):
        put(path, parallel=1)
    old = gateway.uploads["u1"]
    if how == "aborted":
        old["status"] = "DELETED"
    elif how == "expired":
        old["expires_at"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    else:
        del gateway.uploads["u1"]
    put(path)
    assert any(line.startswith("starting over: upload u1 cannot be resumed") for line in put.said)
    assert gateway.uploads["u2"]["status"] == "UPLOADED"
    assert gateway.objects["b", "k"] == data
    if how == "expired":
        assert old["status"] == "DELETED"  # an open but unusable session is aborted
    assert put.state_files() == []


def test_another_key_or_an_edited_file_is_another_upload(
    put: Runner, gateway: FakeGateway, source: Any
) -> None:
    path, _ = source
    gateway.faults = {1: ["drop"] * 4}
    with pytest.raises(TransportError):
        put(path, parallel=1)
    put(path, key="other")
    assert gateway.uploads["u2"]["key"] == "other"
    path.write_bytes(sample(3 * PART, seed=12))
    os.utime(path, ns=(1, 1))
    put(path)
    assert gateway.uploads["u3"]["size"] == 3 * PART
    assert not any("resuming" in line for line in put.said)
    assert len(put.state_files()) == 1  # u1's, for the original file, stays until it resumes


def test_a_file_changed_during_the_upload_fails(put: Runner, gateway: FakeGateway, source: Any) -> None:
    path, _ = source
    gateway.faults = {2: [lambda: os.utime(path, ns=(10**18, 10**18))]}
    with pytest.raises(ClientError, match="changed while it was uploaded") as caught:
        put(path)
    assert caught.value.code == "source_changed"
    assert gateway.uploads["u1"]["status"] == "DELETED"
    assert put.state_files() == []


def test_ctrl_c_keeps_the_session(put: Runner, gateway: FakeGateway, source: Any) -> None:
    path, _ = source

    def interrupt() -> None:
        raise KeyboardInterrupt

    gateway.faults = {2: [interrupt]}
    with pytest.raises(KeyboardInterrupt):
        put(path, parallel=2)
    assert "interrupted: run the same command again to resume upload u1" in put.said
    assert len(put.state_files()) == 1
