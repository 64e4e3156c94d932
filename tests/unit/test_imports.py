"""Background imports without sockets: the pure rules, and the import job against fakes.

The job (``workers/imports.py``) runs here against :class:`FakeSource` and
in-memory stand-ins for the services it calls, so the paths a real source
rarely takes on cue (a file replaced between two connections, a source that
keeps breaking) are played exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cargohold.config import Settings
from cargohold.domain import uploads as sm
from cargohold.domain.imports import (
    Answer,
    Import,
    InvalidSource,
    Plan,
    Progress,
    parse_source,
    part_size_for,
    plan_reconnection,
    refused_addresses,
    stored_content_type,
)
from cargohold.domain.model import Bucket, Job, ObjectRecord, PartRecord, User
from cargohold.domain.uploads import Upload
from cargohold.service.checksums import ExpectedDigests
from cargohold.testing.sources import FakeSource
from cargohold.workers.imports import ImportRunner
from cargohold.workers.jobs import JobContext

MIB = 1 << 20
NOW = datetime(2026, 12, 1, tzinfo=UTC)

# -- rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/f",
        "HTTPS://example.com:8443/a/b?c=d#e",
        "http://[2001:db8::1]/x",
        "http://1.2.3.4",
    ],
)
def test_http_and_https_urls_with_a_host_are_sources(url: str) -> None:
    assert parse_source(url).url == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/f", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http:///path", "names no host"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://exa mple.com/", "spaces"),
        ("http://" + "a" * 2050, "longer than"),
        ("http://example.com/\u00a0", "spaces or control"),
        ("http://example.com/\x9b", "spaces or control"),
        (f"http://{'a' * 64}.example.com/", "not a valid host name"),
        ("http://a..example.com/", "not a valid host name"),
        ("http://" + ".".join(["a" * 60] * 5) + "/", "longer than 253"),
    ],
)
def test_other_urls_are_refused_saying_why(url: str, says: str) -> None:
    with pytest.raises(InvalidSource, match=says):
        parse_source(url)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # shared address space
        ("0.0.0.0", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("224.0.0.1", False),
        ("not an address", False),
    ],
)
def test_only_global_unicast_addresses_are_allowed(address: str, allowed: bool) -> None:
    assert refused_addresses([address]) == ([] if allowed else [address])


def _answer(status: int, start: int, total: int | None, validator: str | None) -> Answer:
    return Answer(status, start, total, validator)


@pytest.mark.parametrize(
    ("offset", "validator", "total", "answer", "plan"),
    [
        (0, None, None, _answer(200, 0, 10, '"a"'), Plan.CONTINUE),
        (4, '"a"', 10, _answer(206, 4, 10, '"a"'), Plan.CONTINUE),
        (4, '"a"', 10, _answer(206, 5, 10, '"a"'), Plan.RESTART),  # not the range asked for
        (4, '"a"', 10, _answer(206, 4, 12, '"a"'), Plan.RESTART),  # another size
        (4, '"a"', 10, _answer(206, 4, 10, '"b"'), Plan.RESTART),  # another file
        (4, '"a"', 10, _answer(200, 0, 10, '"a"'), Plan.SKIP),  # no ranges, same file
        (4, '"a"', 10, _answer(200, 0, 10, '"b"'), Plan.RESTART),
        (4, None, 10, _answer(200, 0, 10, None), Plan.RESTART),  # nothing proves it the same
        (4, '"a"', None, _answer(200, 0, None, '"a"'), Plan.SKIP),
    ],
)
def test_a_reconnection_continues_only_the_same_file_at_the_same_byte(
    offset: int, validator: str | None, total: int | None, answer: Answer, plan: Plan
) -> None:
    assert plan_reconnection(offset, validator, total, answer) is plan


def test_progress_never_goes_backwards_and_rate_is_over_the_window() -> None:
    progress = Progress()
    progress.durable, progress.inflight = 4 * MIB, MIB
    assert progress.current() == 5 * MIB
    progress.inflight = 0  # the part in flight broke off
    assert progress.current() == 5 * MIB
    progress.inflight = 2 * MIB
    assert progress.current() == 6 * MIB
    rate = Progress(window=5.0)
    assert rate.rate(0.0) is None
    rate.durable = 10 * MIB
    assert rate.rate(2.0) == 5 * MIB


def test_parts_grow_only_when_a_file_needs_more_than_ten_thousand() -> None:
    assert part_size_for(None, 64 * MIB) == 64 * MIB
    assert part_size_for(10 * MIB, 64 * MIB) == 64 * MIB
    assert part_size_for(10_000 * 64 * MIB + 1, 64 * MIB) == 64 * MIB + 1


def test_the_object_gets_the_asked_for_or_the_source_media_type() -> None:
    assert stored_content_type("text/plain", "image/png") == "text/plain"
    assert stored_content_type(None, "image/png") == "image/png"
    assert stored_content_type(None, "bad\x00type") == "application/octet-stream"
    assert stored_content_type(None, None) == "application/octet-stream"


# -- the job against fakes ---------------------------------------------------------------------


@dataclass
class FakeImports:
    current: Import
    allowed: bool = True
    reports: list[dict[str, Any]] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    cancelled: bool = False

    async def begin(self, import_id: str, fence: int) -> Import | None:
        self.current = replace(self.current, status=sm.LOADING, fence=fence)
        return self.current

    async def record(self, import_id: str, fence: int, *, announce: bool = False, **values: Any) -> bool:
        if self.cancelled or self.current.status != sm.LOADING:
            return False
        self.reports.append(values)
        self.current = replace(self.current, **values)
        return True

    async def fail(self, record: Import, fence: int, code: str, message: str) -> bool:
        self.current = replace(self.current, status=sm.FAILED, error_code=code, error_message=message)
        return True

    def uploaded(self, record: Import, fence: int, size: int) -> Any:
        async def uploaded(conn: Any, version: ObjectRecord) -> None:
            self.current = replace(self.current, status=sm.UPLOADED, version_id=version.version_id)

        return uploaded

    async def allow_private(self) -> bool:
        return self.allowed

    async def discard_parts(self, upload_id: str) -> None:
        self.discarded.append(upload_id)

    async def drop_upload(self, upload_id: str) -> None:
        raise AssertionError("not cancelled in these tests")


@dataclass
class FakeUploads:
    """Parts in memory, as ``UploadService`` keeps them: written whole or not at all."""

    expected_md5: str | None = None
    expected_sha256: str | None = None
    upload: Upload | None = None
    parts: dict[int, bytes] = field(default_factory=dict)
    stored: bytes | None = None

    async def create(self, who: Any, bucket: str, key: str, **kwargs: Any) -> Upload:
        self.upload = Upload(
            id="u1", bucket_id=1, bucket=bucket, key=key, status=sm.PENDING, protocol=kwargs["protocol"],
            content_type=kwargs["content_type"], total_size=None, part_size=None, expected_md5=None,
            expected_sha256=None, created_at=NOW, updated_at=NOW, expires_at=NOW + timedelta(days=1),
        )  # fmt: skip
        return self.upload

    async def load(self, upload_id: str, *, with_parts: bool = True) -> Upload | None:
        assert self.upload is not None
        records = tuple(
            PartRecord(f"p{n}", n, 0, len(data), "ec:2+1", MIB, "etag")
            for n, data in sorted(self.parts.items())
        )
        return replace(self.upload, parts=records, expires_at=datetime.now(UTC) + timedelta(days=1))

    async def write_part(
        self, upload: Upload, number: int, body: Any, length: int | None, _: Any, actor_id: int
    ) -> PartRecord:
        data = b"".join([chunk async for chunk in body])
        assert length is None or len(data) == length
        self.parts[number] = data
        return PartRecord(f"p{number}", number, 0, len(data), "ec:2+1", MIB, "etag")

    def discard(self) -> None:
        self.parts.clear()

    async def finish(
        self, upload: Upload, actor_id: int, *, digests: dict[str, str] | None, also: Any
    ) -> ObjectRecord:
        data = b"".join(data for _, data in sorted(self.parts.items()))
        computed = {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}
        if digests is not None:  # what the job computed on the way must be what was stored
            assert all(computed[name] == value for name, value in digests.items())
        ExpectedDigests(md5=self.expected_md5, sha256=self.expected_sha256).verify(computed)
        self.stored = data
        version = ObjectRecord(1, 1, upload.key, len(data), "etag", "x/y", NOW, version_id="v1")
        await also(None, version)
        return version


class Anyone:
    async def bucket(self, who: Any, name: str, need: Any) -> Bucket:
        return Bucket(1, name, "ec:2+1", NOW, owner_id=1)

    async def active_user(self, user_id: int) -> User:
        return User(user_id, "alice", "user", False, NOW, NOW)

    async def admit(self, bucket: Bucket, size: int | None) -> int | None:
        return None


def run_import(
    source: FakeSource, *, sha256: str | None = None, retries: int = 5
) -> tuple[FakeImports, FakeUploads]:
    record = Import(
        id="i1", user_id=1, owner="alice", bucket_id=1, bucket="b", key="k", source="http://x.example/f",
        status=sm.PENDING, created_at=NOW, updated_at=NOW, expected_sha256=sha256,
    )  # fmt: skip
    imports = FakeImports(record)
    uploads = FakeUploads(expected_sha256=sha256)
    original = imports.discard_parts

    async def discard(upload_id: str) -> None:
        await original(upload_id)
        uploads.discard()

    imports.discard_parts = discard  # type: ignore[method-assign]
    settings = Settings(import_part_size=MIB, import_retries=retries, import_retry_backoff=0)
    anyone = Anyone()
    runner = ImportRunner(imports, uploads, anyone, anyone, anyone, source, settings)  # type: ignore[arg-type]
    job = Job(id=1, kind="import", payload={"import_id": "i1"}, attempts=1)
    asyncio.run(runner.handle(JobContext(None, job)))  # type: ignore[arg-type]
    return imports, uploads


def test_drops_resume_at_the_last_stored_part_with_if_range_and_the_digest_is_computed_on_the_way() -> None:
    data = os.urandom(5 * MIB + 77)
    source = FakeSource(data, drops=[MIB + 5, 3 * MIB + 100_000])
    imports, uploads = run_import(source, sha256=hashlib.sha256(data).hexdigest())
    assert imports.current.status == sm.UPLOADED, imports.record
    assert source.opened == [(0, None), (MIB, '"v1"'), (3 * MIB, '"v1"')]
    assert uploads.stored == data
    assert (imports.current.attempts, imports.current.resumes, imports.current.restarts) == (3, 2, 0)
    assert not imports.discarded


def test_a_file_replaced_mid_way_is_fetched_again_from_zero_and_the_old_parts_freed() -> None:
    old, new = os.urandom(4 * MIB), os.urandom(3 * MIB + 5)
    source = FakeSource(old, drops=[2 * MIB + 10], changed=(new, '"v2"'))
    imports, uploads = run_import(source)
    assert imports.current.status == sm.UPLOADED
    assert source.opened == [(0, None), (2 * MIB, '"v1"')]
    assert imports.discarded == ["u1"]
    assert uploads.stored == new
    assert (imports.current.resumes, imports.current.restarts) == (0, 1)


def test_a_source_without_ranges_is_read_past_the_stored_parts_with_the_digest_still_right() -> None:
    data = os.urandom(4 * MIB)
    source = FakeSource(data, ranges=False, drops=[2 * MIB + 10])
    imports, uploads = run_import(source, sha256=hashlib.sha256(data).hexdigest())
    assert imports.current.status == sm.UPLOADED
    assert uploads.stored == data
    assert (imports.current.resumes, imports.current.restarts) == (0, 1)


def test_a_source_that_keeps_breaking_without_progress_fails_after_the_retry_limit() -> None:
    data = os.urandom(2 * MIB)
    source = FakeSource(data, drops=[100, 200, 300, 400])  # every attempt breaks inside the first part
    imports, _ = run_import(source, retries=3)
    assert imports.current.status == sm.FAILED
    assert imports.current.error_code == "source_broke_off"
    assert imports.current.error_message is not None
    assert imports.current.error_message.startswith("gave up after 4 attempts in a row:")
    assert len(source.opened) == 4


def test_a_wrong_digest_fails_as_a_checksum_mismatch() -> None:
    imports, uploads = run_import(FakeSource(os.urandom(MIB + 3)), sha256="0" * 64)
    assert imports.current.status == sm.FAILED
    assert imports.current.error_code == "checksum_mismatch"
    assert uploads.stored is None


# -- cargohold import --wait -----------------------------------------------------------------


def _gateway_with(events: int) -> tuple[Any, list[str]]:
    """A gateway (httpx.MockTransport) that answers an import, and an event stream when
    ``events`` is 200 (404: a gateway without one); records the calls."""
    import json as _json

    import httpx

    calls: list[str] = []
    final = {"id": "abc", "status": "UPLOADED", "size": 3, "bytes_done": 3, "version_id": "v9"}
    other = {"detail": {"import_id": "zzz", "status": "LOADING"}, "type": "import.progress", "size": 9}

    def event(kind: str, status: str, done: int) -> str:
        document = {
            "type": kind,
            "size": 3,
            "detail": {"import_id": "abc", "status": status, "bytes_done": done},
        }
        return f"id: 1\nevent: {kind}\ndata: {_json.dumps(document)}\n\n"

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.url.path == "/api/v1/events":
            if events != 200:
                return httpx.Response(404, json={"code": "route_not_found", "detail": "no"})
            body = "retry: 2000\nid: 0\n\n" + f"data: {_json.dumps(other)}\n\n"
            body += event("import.created", "PENDING", 0) + ": heartbeat\n\n"
            body += event("import.progress", "LOADING", 2) + event("import.completed", "UPLOADED", 3)
            return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
        if request.method == "POST":
            return httpx.Response(202, json={"id": "abc", "status": "PENDING"})
        looked = sum(call.startswith("GET /api/v1/imports/") for call in calls)
        return httpx.Response(200, json=final if looked > 1 else {**final, "status": "LOADING"})

    return handle, calls


@pytest.mark.parametrize("events", [200, 404])
def test_import_wait_follows_the_event_stream_or_polls_without_one(
    events: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from typer.testing import CliRunner

    from cargohold.cli import client, imports
    from cargohold.cli.api_client import GatewayClient
    from cargohold.cli.main import app

    handle, calls = _gateway_with(events)
    monkeypatch.setattr(
        client,
        "GatewayClient",
        lambda url, key: GatewayClient(url, key, transport=httpx.MockTransport(handle)),
    )
    monkeypatch.setattr(imports, "POLL", 0.0)
    result = CliRunner().invoke(
        app, ["import", "http://x.example/f", "b/k", "--wait", "--url", "http://gw", "--key", "k"]
    )
    assert result.exit_code == 0, result.output
    assert "imported b/k (3 bytes, version v9, import abc)" in result.output
    # The stream is opened before the import is asked for: none of its events can be missed.
    assert calls[:2] == ["GET /api/v1/events", "POST /api/v1/imports"]
    if events == 200:  # the heartbeat made it look once; the last event ends the wait
        assert calls[2:] == ["GET /api/v1/imports/abc", "GET /api/v1/imports/abc"]
    else:  # polled until it was over
        assert calls[2:] == ["GET /api/v1/imports/abc", "GET /api/v1/imports/abc"]


def test_a_resume_continues_after_the_parts_stored_without_a_gap() -> None:
    from cargohold.workers.imports import _contiguous

    def parts(*numbers: int) -> tuple[PartRecord, ...]:
        return tuple(PartRecord(f"p{n}", n, 0, MIB, "ec:2+1", MIB, "e") for n in numbers)

    # Part 4 landed while part 3 failed (two parts are in flight): the import goes on at part 3.
    assert _contiguous(parts(1, 2, 4)) == 2
    assert _contiguous(parts(2, 3)) == 0
    assert _contiguous(parts()) == 0
    assert _contiguous(parts(3, 1, 2)) == 3
