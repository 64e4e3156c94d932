"""The history's pure parts: query parsing, cursors, results, the route table's actions, the queue."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cargohold.api.auth import is_public
from cargohold.api.history import _result, route_index
from cargohold.api.routes import ALL_ROUTES
from cargohold.cli import client
from cargohold.cli.api_client import GatewayClient
from cargohold.cli.history import parse_when
from cargohold.cli.main import app
from cargohold.domain.history import (
    CURSOR_PATTERN,
    DEFAULT_LIMIT,
    HistoryEvent,
    decode_cursor,
    encode_cursor,
    parse_query,
)
from cargohold.errors import InvalidArgument
from cargohold.metadata.tables import history
from cargohold.s3 import routing as s3_routing
from cargohold.service.history import HistoryService


def test_query_parameters_become_a_query() -> None:
    query = parse_query(
        {
            "user": "alice",
            "bucket": "photos",
            "prefix": "2026/",
            "action": "object",
            "since": "2026-01-01",
            "until": "2026-02-01T00:00:00+01:00",
            "limit": "7",
            "cursor": encode_cursor(42),
        }
    )
    assert (query.user, query.bucket, query.prefix, query.action) == ("alice", "photos", "2026/", "object")
    assert query.action_is_prefix
    assert query.since == datetime(2026, 1, 1, tzinfo=UTC)
    assert query.until == datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
    assert (query.limit, query.before_id) == (7, 42)
    absent = parse_query({})
    assert (absent.user, absent.limit, absent.before_id) == (None, DEFAULT_LIMIT, None)
    unfiltered = parse_query({"bucket": "", "prefix": ""})  # an empty prefix matches every key
    assert (unfiltered.bucket, unfiltered.prefix) == (None, None)
    assert not parse_query({"action": "object.read"}).action_is_prefix


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"action": "Object.Read"}, "action"),
        ({"action": "object.read.more"}, "action"),
        ({"action": "object%"}, "action"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": encode_cursor(1) + "!"}, "cursor"),
        ({"cursor": "0"}, "cursor"),
        ({"cursor": "01"}, "cursor"),
        ({"user": "-bob"}, "user"),
        ({"user": "b" * 65}, "user"),
        # Given empty is given: "?user=" names nobody, it does not lift the filter.
        ({"user": ""}, "user"),
        ({"action": ""}, "action"),
        ({"since": ""}, "since"),
        ({"until": ""}, "until"),
        ({"limit": ""}, "limit"),
        ({"cursor": ""}, "cursor"),
        ({"bucket": "b" * 64}, "bucket"),
        ({"prefix": "p" * 1025}, "prefix"),
        ({"action": "a" * 65}, "action"),
    ],
)
def test_bad_query_parameters_are_invalid_arguments(params: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_query(params)
    assert raised.value.extra["field"] == field


def test_cursors_round_trip_and_match_the_documented_pattern() -> None:
    for last_id in (1, 99, 2**40, 10**18 - 1):
        cursor = encode_cursor(last_id)
        assert re.fullmatch(CURSOR_PATTERN, cursor)
        assert decode_cursor(cursor) == last_id
    with pytest.raises(InvalidArgument):
        decode_cursor(encode_cursor(0))


def test_an_empty_time_range_is_a_query_not_an_error() -> None:
    """The document cannot relate since to until, so since >= until finds nothing instead."""
    query = parse_query({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"})
    assert query.since is not None and query.until is not None and query.since > query.until


def test_results_name_the_error() -> None:
    assert _result(200, None) == "ok"
    assert _result(304, None) == "ok"
    assert _result(401, "invalid_credentials") == "invalid_credentials"
    assert _result(413, None) == "payload_too_large"
    assert _result(500, None) == "internal_error"
    assert _result(499, None) == "client_closed"
    # Aborted after the first byte: the status is the 200 that started, the result the failure.
    assert _result(200, "read_unavailable", aborted=True) == "read_unavailable"
    assert _result(206, None, aborted=True) == "internal_error"


def test_every_call_that_needs_a_key_has_an_action_that_fits_the_table() -> None:
    width = history.c.action.type.length  # type: ignore[attr-defined]
    for route in ALL_ROUTES:
        if route.action_of is not None:  # decided per request: the S3 table, checked below
            continue
        for method in route.documented_methods:
            action = route.action_for(method)
            if not is_public(route.path) and method != "OPTIONS":
                assert action, f"{method} {route.path} records nothing in the history"
            if action:
                assert re.fullmatch(r"[a-z][a-z_]*\.[a-z][a-z_]*", action), action
                assert len(action) <= width, action


def test_every_s3_operation_has_an_action_that_fits_the_table() -> None:
    width = history.c.action.type.length  # type: ignore[attr-defined]
    operations = set(s3_routing.OPERATIONS.values()) | {"ListObjectsV2", "CopyObject", "UploadPartCopy"}
    assert operations == set(s3_routing.ACTIONS)
    for action in s3_routing.ACTIONS.values():
        assert re.fullmatch(r"[a-z][a-z_]*\.[a-z][a-z_]*", action) and len(action) <= width, action


def test_one_handler_and_method_means_one_action() -> None:
    index = route_index(ALL_ROUTES)
    for route in ALL_ROUTES:
        assert index[(route.handler, route.method)].action == route.action, route.path


class _DownDatabase:
    """A metadata store that is unreachable: every write fails."""

    def __init__(self) -> None:
        self.attempts = 0

    async def write(self, fn: Any) -> Any:
        self.attempts += 1
        raise OSError("connection refused")


def _event(key: str) -> HistoryEvent:
    return HistoryEvent(action="object.read", at=datetime.now(UTC), status=200, result="ok", key=key)


def test_a_failed_flush_keeps_events_in_order_within_the_bound() -> None:
    async def main() -> None:
        db = _DownDatabase()
        service = HistoryService(db, max_queued=4, batch_rows=2)  # type: ignore[arg-type]
        for key in "abc":
            service.record(_event(key))
        with pytest.raises(OSError):
            await service.flush()
        assert service.pending == 3 and service.dropped == 0
        for key in "de":
            service.record(_event(key))
        assert service.dropped == 1  # "a", the oldest
        with pytest.raises(OSError):
            await service.flush()
        assert [e.key for e in service._queue] == ["b", "c", "d", "e"]
        service.start()
        await service.stop()  # logs the loss instead of raising at shutdown
        assert db.attempts >= 3 and service.pending == 4

    asyncio.run(main())


# ------------------------------------------------------------ the CLI


def test_cli_ages_become_times_and_bad_times_are_usage_errors() -> None:
    before = datetime.now(UTC)
    when = datetime.fromisoformat(parse_when("2h"))
    assert timedelta(hours=2) - timedelta(seconds=2) <= before - when <= timedelta(hours=2, seconds=2)
    assert parse_when("2026-01-31T12:00:00Z") == "2026-01-31T12:00:00Z"
    result = CliRunner().invoke(app, ["history", "--since", "last tuesday", "--key", "k"])
    assert result.exit_code == 2 and "ISO 8601" in result.output


def test_cli_follows_the_cursor_up_to_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[dict[str, str]] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        asked.append(params)
        start = int(params.get("cursor", "0"))
        count = int(params["limit"])
        events = [
            {"id": 1000 - i, "at": "2026-03-01T12:00:00+00:00", "user": "alice", "action": "object.read",
             "bucket": "b", "key": f"k{i}", "result": "ok" if i % 2 else "no_such_key",
             "status": 200 if i % 2 else 404, "size": 5, "client": "127.0.0.1"}
            for i in range(start, start + count)
        ]  # fmt: skip
        return httpx.Response(200, json={"events": events, "next_cursor": str(start + count)})

    def fake_client(url: str, key: str) -> GatewayClient:
        return GatewayClient(url, key, transport=httpx.MockTransport(gateway))

    monkeypatch.setattr(client, "GatewayClient", fake_client)
    monkeypatch.setenv("COLUMNS", "200")
    shown = CliRunner().invoke(
        app, ["history", "--limit", "1500", "--action", "object", "--json", "--url", "gw:1", "--key", "k"]
    )
    assert shown.exit_code == 0, shown.output
    assert [e["key"] for e in json.loads(shown.stdout)] == [f"k{i}" for i in range(1500)]
    assert [(a["limit"], a.get("cursor"), a["action"]) for a in asked] == [
        ("1000", None, "object"),
        ("500", "1000", "object"),
    ]
    table = CliRunner().invoke(app, ["history", "--limit", "2", "--url", "gw:1", "--key", "k"])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert "time (UTC)" in lines[0] and len(lines) == 3
    assert "2026-03-01 12:00:00" in lines[1] and "b/k0" in lines[1] and "404 no_such_key" in lines[1]
    assert "200 ok" in lines[2] and "127.0.0.1" in lines[2]
