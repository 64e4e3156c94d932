"""The healing commands (nodes states and actions, jobs, health, scrub, worker-settings) without a gateway.

Every request goes to ``httpx.MockTransport``; the tests check what is sent
(method, path, query, body) and what is printed, in tables and --plain lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from cargohold.cli import client
from cargohold.cli.api_client import GatewayClient
from cargohold.cli.healing import bandwidth_text, parse_bandwidth, verdict
from cargohold.cli.jobs import job_kinds, progress_text, rate_text
from cargohold.cli.main import app
from cargohold.cli.nodes import fill_bar

runner = CliRunner()
Reply = Callable[[httpx.Request], httpx.Response]


class Gateway:
    """Answers from a table of (method, path) -> reply, and remembers every request."""

    def __init__(self, routes: dict[tuple[str, str], Reply | dict[str, Any] | int]) -> None:
        self.routes = routes
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        reply = self.routes.get((request.method, request.url.path))
        if reply is None:
            raise AssertionError(f"unexpected {request.method} {request.url}")
        if isinstance(reply, int):
            return httpx.Response(reply)
        if isinstance(reply, dict):
            return httpx.Response(200, json=reply)
        return reply(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.seen]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CARGOHOLD_URL", "CARGOHOLD_KEY", "CARGOHOLD_CLIENT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)


def _run(monkeypatch: pytest.MonkeyPatch, gateway: Gateway, *args: str) -> Any:
    def fake_client(url: str, key: str) -> GatewayClient:
        return GatewayClient(url, key, transport=httpx.MockTransport(gateway))

    monkeypatch.setattr(client, "GatewayClient", fake_client)
    return runner.invoke(app, [*args, "--url", "http://gw:1", "--key", "k1"])


def _flat(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------ nodes

NODES = [
    {"id": 1, "url": "http://n1:1", "zone": "a", "enabled": True, "active": True, "healthy": True,
     "status": "up", "state": "normal", "capacity": 1000, "used": 482, "fill": 0.482, "shares": 5},
    {"id": 2, "url": "http://n2:1", "zone": "b", "enabled": True, "active": False, "healthy": False,
     "status": "down", "state": "draining", "capacity": 1000, "used": 950, "fill": 0.95, "shares": 9},
    {"id": 3, "url": "http://n3:1", "zone": "a", "enabled": False, "active": True, "healthy": False,
     "status": "down", "state": "lost", "capacity": 0, "used": 0, "fill": None, "shares": 0},
]  # fmt: skip


@pytest.mark.parametrize(
    ("fill", "bar"),
    [
        (0.482, "█████░░░░░ 48.2%"),
        (0.0, "░░░░░░░░░░ 0.0%"),
        (1.0, "██████████ 100.0%"),
        (0.04, "░░░░░░░░░░ 4.0%"),
        (0.06, "█░░░░░░░░░ 6.0%"),
        (1.2, "██████████ 120.0%"),  # over capacity: the bar is full, the number tells
        (None, "-"),
        (True, "-"),
    ],
)
def test_fill_bar(fill: object, bar: str) -> None:
    assert fill_bar(fill) == bar


def test_nodes_plain_has_status_state_and_use_as_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(monkeypatch, Gateway({("GET", "/api/v1/nodes"): {"nodes": NODES}}), "nodes", "--plain")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "1\thttp://n1:1\ta\tup\tnormal\ton\tactive\t1000\t482\t0.482\t5",
        "2\thttp://n2:1\tb\tdown\tdraining\ton\tinactive\t1000\t950\t0.95\t9",
        "3\thttp://n3:1\ta\tdown\tlost\toff\tactive\t0\t0\t-\t0",
    ]


def test_nodes_table_shows_states_and_fill_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(monkeypatch, Gateway({("GET", "/api/v1/nodes"): {"nodes": NODES}}), "nodes")
    assert result.exit_code == 0, result.output
    lines = [_flat(line) for line in result.stdout.splitlines()]
    assert lines[0] == "id url zone status state capacity used fill shares"
    assert lines[1] == "1 http://n1:1 a up normal 1.0 kB 482 bytes █████░░░░░ 48.2% 5"
    assert lines[2] == "2 http://n2:1 b down draining inactive 1.0 kB 950 bytes ██████████ 95.0% 9"
    assert lines[3] == "3 http://n3:1 a down lost off 0 bytes 0 bytes - 0"


@pytest.mark.parametrize(
    ("args", "state", "said"),
    [
        (["nodes", "drain", "2"], "draining", "node 2 is draining"),
        (["nodes", "drain", "2", "--cancel"], "normal", None),
        (["nodes", "lost", "2"], "lost", "node 2 is lost: its shares are being rebuilt"),
    ],
)
def test_node_state_changes_are_patches(
    monkeypatch: pytest.MonkeyPatch, args: list[str], state: str, said: str | None
) -> None:
    gateway = Gateway(
        {("PATCH", "/api/v1/nodes/2"): lambda r: httpx.Response(200, json={**NODES[1], "state": state})}
    )
    result = _run(monkeypatch, gateway, *args)
    assert result.exit_code == 0, result.output
    assert gateway.bodies() == [{"state": state}]
    assert f" {state} " in _flat(result.stdout)
    if said:
        assert said in result.stdout
    else:
        assert len(result.stdout.splitlines()) == 2  # the table alone


def test_nodes_rm_deletes_and_reports_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = Gateway({("DELETE", "/api/v1/nodes/3"): 204})
    result = _run(monkeypatch, gone, "nodes", "rm", "3")
    assert (result.exit_code, result.stdout) == (0, "removed node 3\n")
    problem = {
        "code": "node_not_empty",
        "detail": "node 2 still holds 9 shares: drain it first",
        "status": 409,
    }
    refused = Gateway({("DELETE", "/api/v1/nodes/2"): lambda r: httpx.Response(409, json=problem)})
    result = _run(monkeypatch, refused, "nodes", "rm", "2")
    assert result.exit_code == 1
    assert result.stderr == "error: node_not_empty: node 2 still holds 9 shares: drain it first\n"


# ------------------------------------------------------------------ jobs

JOB = {
    "id": 42,
    "kind": "repair_part",
    "state": "running",
    "payload": {"part_id": "p1"},
    "attempts": 1,
    "priority": 2,
    "progress_bytes": 12_300_000,
    "total_bytes": 50_000_000,
    "rate": 1_000_000.0,
    "errors": 0,
    "last_error": None,
    "created_at": "2026-01-02T03:04:05+00:00",
    "started_at": "2026-01-02T03:04:06+00:00",
    "finished_at": None,
}
FAILED = {
    **JOB, "id": 41, "kind": "scrub_node", "state": "failed", "payload": {"node_id": 3},
    "progress_bytes": 0, "total_bytes": None, "rate": None, "errors": 2,
    "last_error": "node 3 unreachable:\n connection refused", "finished_at": "2026-01-02T03:05:00+00:00",
}  # fmt: skip


@pytest.mark.parametrize(
    ("done", "total", "text"),
    [
        (12_300_000, 50_000_000, "12.3 MB / 50.0 MB (24.6%)"),
        (5, 5, "5 bytes / 5 bytes (100.0%)"),
        (7, 5, "7 bytes / 5 bytes (100.0%)"),
        (1000, None, "1.0 kB"),
        (0, None, "-"),
        (0, 0, "0 bytes / 0 bytes"),
        (None, 10, "-"),
    ],
)
def test_progress_text(done: object, total: object, text: str) -> None:
    assert progress_text(done, total) == text


def test_rate_text() -> None:
    assert (rate_text(1_500_000.0), rate_text(None), rate_text(0)) == ("1.5 MB/s", "-", "-")


def test_kind_groups_expand_to_job_kinds() -> None:
    assert job_kinds(["repair", "repair_part", "gc"]) == [
        "lost_node",
        "repair_part",
        "delete_part",
        "orphan_sweep",
    ]


def test_jobs_table(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = Gateway({("GET", "/api/v1/jobs"): {"jobs": [JOB, FAILED], "next_cursor": None}})
    result = _run(monkeypatch, gateway, "jobs")
    assert result.exit_code == 0, result.output
    lines = [_flat(line) for line in result.stdout.splitlines()]
    assert lines[0] == "id kind target state progress rate errors started finished"
    assert lines[1] == (
        "42 repair_part part p1 running 12.3 MB / 50.0 MB (24.6%) 1.0 MB/s 0 2026-01-02 03:04:06 -"
    )
    assert lines[2] == (
        "41 scrub_node node 3 failed - - 2 node 3 unreachable: connection refused "
        "2026-01-02 03:04:06 2026-01-02 03:05:00"
    )
    assert dict(gateway.seen[0].url.params) == {"limit": "50"}


def test_jobs_plain_and_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = Gateway({("GET", "/api/v1/jobs"): {"jobs": [FAILED], "next_cursor": None}})
    result = _run(
        monkeypatch, gateway, "jobs", "--kind", "scrub", "--kind", "repair", "--state", "failed", "--plain"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "41\tscrub_node\tnode 3\tfailed\t0\t-\t-\t2\t2026-01-02T03:04:06+00:00\t"
        "2026-01-02T03:05:00+00:00\tnode 3 unreachable: connection refused\n"
    )
    assert dict(gateway.seen[0].url.params) == {
        "limit": "50",
        "kind": "scrub_node,lost_node,repair_part",
        "state": "failed",
    }


def test_jobs_follow_the_cursor_up_to_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        before = int(request.url.params.get("before", "100"))
        limit = int(request.url.params["limit"])
        jobs = [{**JOB, "id": i} for i in range(before - 1, before - 1 - limit, -1)]
        return httpx.Response(200, json={"jobs": jobs, "next_cursor": str(jobs[-1]["id"])})

    gateway = Gateway({("GET", "/api/v1/jobs"): page})
    result = _run(monkeypatch, gateway, "jobs", "--limit", "1500", "--plain")
    assert result.exit_code == 0, result.output
    ids = [int(line.split("\t")[0]) for line in result.stdout.splitlines()]
    assert ids == list(range(99, 99 - 1500, -1))
    assert [dict(r.url.params) for r in gateway.seen] == [
        {"limit": "1000"},
        {"limit": "500", "before": "-900"},
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jobs", "--kind", "heal"], "'heal' is not a kind of job"),
        (["jobs", "--state", "stuck"], "'stuck' is not a job state"),
        (["jobs", "--limit", "0"], "greater than or equal to 1"),
        (["worker-settings", "--repair-bandwidth", "fast"], "expected bytes per second"),
        (["worker-settings", "--concurrency", "0"], "greater than or equal to 1"),
    ],
)
def test_bad_arguments_fail_before_any_request(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in _flat(re.sub(r"[│╭╮╰╯─]", " ", result.output))


# ------------------------------------------------------------------ health

HEALTH = {
    "objects": {"total": 1204, "healthy": 1200, "degraded": 3, "unreadable": 1},
    "parts": {
        "total": 1310,
        "healthy": 1305,
        "degraded": {"1": 3, "2": 1},
        "unreadable": 1,
        "not_zone_safe": 2,
    },
    "repair_waiting_bytes": 12_300_000,
    "nodes": {"up": 7, "down": 1, "lost": 0, "draining": 0, "retired": 0},
    "fill_spread": 3.25,
    "jobs": {"queued": 4, "running": 1, "failed": 0},
}


def test_health_table(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(monkeypatch, Gateway({("GET", "/api/v1/health"): HEALTH}), "health")
    assert result.exit_code == 0, result.output
    assert [_flat(line) for line in result.stdout.splitlines()] == [
        "unreadable: 1 object(s) or part(s) cannot be read until nodes return",
        "objects 1,204 total · 1,200 healthy · 3 degraded · 1 unreadable",
        "parts 1,310 total · 1,305 healthy · 4 degraded (3 missing 1 share, 1 missing 2 shares) · "
        "1 unreadable · 2 not zone-safe",
        "repair 12.3 MB waiting",
        "nodes 7 up · 1 down · 0 lost · 0 draining · 0 retired",
        "fill spread 3.2 points",
        "jobs 4 queued · 1 running · 0 failed",
    ]


def test_health_plain_is_one_line_per_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(monkeypatch, Gateway({("GET", "/api/v1/health"): HEALTH}), "health", "--plain")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == ["objects.total\t1204", "objects.healthy\t1200", "objects.degraded\t3"]
    assert "parts.degraded.1\t3" in lines and "parts.degraded.2\t1" in lines
    assert "repair_waiting_bytes\t12300000" in lines and "fill_spread\t3.25" in lines
    assert "parts.not_zone_safe\t2" in lines
    assert len(lines) == 20


def test_verdict_names_the_worst_news_first() -> None:
    healthy = {**HEALTH, "objects": {"total": 2, "healthy": 2, "degraded": 0, "unreadable": 0},
               "parts": {"total": 2, "healthy": 2, "degraded": {}, "unreadable": 0}}  # fmt: skip
    degraded = {**healthy, "parts": {**healthy["parts"], "degraded": {"1": 2}}}
    assert verdict(healthy) == "[green]healthy: every object has all its shares[/]"
    assert verdict(degraded) == "[yellow]degraded: 2 object(s) miss shares; repair rebuilds them[/]"
    assert verdict(HEALTH).startswith("[red]unreadable: 1 ")


# ------------------------------------------------------------------ scrub, rebalance


def test_scrub_now_starts_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = Gateway({("POST", "/api/v1/scrub"): lambda r: httpx.Response(202, json={"queued": 8})})
    result = _run(monkeypatch, gateway, "scrub", "--now")
    assert result.exit_code == 0, result.output
    assert result.stdout == "scrub started: 8 job(s) queued (`cargohold jobs --kind scrub` shows progress)\n"


def test_rebalance_without_now_shows_its_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = Gateway({("GET", "/api/v1/jobs"): {"jobs": [], "next_cursor": None}})
    result = _run(monkeypatch, gateway, "rebalance")
    assert (result.exit_code, result.stdout) == (0, "no jobs\n")
    assert dict(gateway.seen[0].url.params) == {"limit": "20", "kind": "rebalance"}


# ------------------------------------------------------------------ worker settings

SETTINGS = {
    "repair_bandwidth": 128 << 20,
    "rebalance_bandwidth": 0,
    "scrub_bandwidth": 1500,
    "concurrency": 4,
}


@pytest.mark.parametrize(
    ("text", "value"),
    [("50MiB", 50 << 20), ("50MiB/s", 50 << 20), ("200MB/s", 200_000_000), ("0", 0), ("unlimited", 0),
     ("1048576", 1 << 20), (" 2 GiB / s ", 2 << 30)],
)  # fmt: skip
def test_parse_bandwidth(text: str, value: int) -> None:
    assert parse_bandwidth(text) == value


@pytest.mark.parametrize("text", ["fast", "-5MiB", "5 parsecs", "MiB"])
def test_parse_bandwidth_rejects(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_bandwidth(text)


def test_bandwidth_text() -> None:
    assert [bandwidth_text(v) for v in (0, 128 << 20, 1536, 1 << 30, 999, None)] == [
        "unlimited", "128 MiB/s", "1.5 KiB/s", "1 GiB/s", "999 B/s", "-",
    ]  # fmt: skip


def test_worker_settings_shows_without_options(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = Gateway({("GET", "/api/v1/worker/settings"): SETTINGS})
    result = _run(monkeypatch, gateway, "worker-settings")
    assert result.exit_code == 0, result.output
    assert [_flat(line) for line in result.stdout.splitlines()] == [
        "setting value",
        "repair bandwidth 128 MiB/s",
        "rebalance bandwidth unlimited",
        "scrub bandwidth 1.46 KiB/s",
        "concurrency 4 jobs at once",
    ]


def test_worker_settings_sends_only_the_options_given(monkeypatch: pytest.MonkeyPatch) -> None:
    def patch(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**SETTINGS, **json.loads(request.content)})

    gateway = Gateway({("PATCH", "/api/v1/worker/settings"): patch})
    args = ("worker-settings", "--repair-bandwidth", "50MiB", "--scrub-bandwidth", "0", "--concurrency", "8")
    result = _run(monkeypatch, gateway, *args, "--plain")
    assert result.exit_code == 0, result.output
    assert gateway.bodies() == [{"repair_bandwidth": 50 << 20, "scrub_bandwidth": 0, "concurrency": 8}]
    assert result.stdout == (
        "repair_bandwidth\t52428800\nrebalance_bandwidth\t0\nscrub_bandwidth\t0\nconcurrency\t8\n"
    )
