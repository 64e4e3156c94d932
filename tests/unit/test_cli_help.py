"""Every command documents itself, and malformed arguments fail before any request.

No test here opens a socket: the gateway client is replaced by one that fails
the test if it is ever built, or by one over ``httpx.MockTransport``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from cargohold.cli import client
from cargohold.cli.api_client import GatewayClient
from cargohold.cli.main import app

CLIENT_COMMANDS = {
    ("put",),
    ("get",),
    ("ls",),
    ("stat",),
    ("rm",),
    ("mb",),
    ("rb",),
    ("nodes",),
    ("grants",),
    ("grant",),
    ("ungrant",),
    ("mv",),
    ("versions",),
    ("restore",),
    ("versioning",),
    ("share", "create"),
    ("share", "ls"),
    ("history",),
    ("events",),
    ("webhooks", "create"),
    ("webhooks", "ls"),
    ("webhooks", "delete"),
    ("webhooks", "deliveries"),
    ("webhooks", "ping"),
    ("webhooks", "settings"),
    ("nodes", "ls"),
    ("nodes", "add"),
    ("nodes", "set"),
    ("nodes", "drain"),
    ("nodes", "lost"),
    ("nodes", "rm"),
    ("jobs",),
    ("health",),
    ("scrub",),
    ("rebalance",),
    ("worker-settings",),
    ("import",),
    ("imports", "list"),
    ("imports", "show"),
    ("imports", "cancel"),
}

runner = CliRunner()


def command_paths() -> Iterator[tuple[tuple[str, ...], object]]:
    """Every command and sub-command of the app, as (path, click command)."""

    def walk(path: tuple[str, ...], command: object) -> Iterator[tuple[tuple[str, ...], object]]:
        if path:
            yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk((*path, name), sub)

    yield from walk((), get_command(app))


ALL_PATHS = [path for path, _ in command_paths()]


def flat(text: str) -> str:
    """Output without Rich's box drawing and line wrapping, for substring checks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config from the developer's machine, and no real gateway client."""
    for name in ("CARGOHOLD_URL", "CARGOHOLD_KEY", "CARGOHOLD_CLIENT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.chdir(tmp_path)

    def no_network(*args: object, **kwargs: object) -> GatewayClient:
        raise AssertionError("a request was attempted")

    monkeypatch.setattr(client, "GatewayClient", no_network)


def test_client_commands_are_registered() -> None:
    assert set(ALL_PATHS) >= CLIENT_COMMANDS


@pytest.mark.parametrize("path", ALL_PATHS, ids=" ".join)
def test_every_command_answers_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: cargohold {' '.join(path)}" in flat(result.output)


@pytest.mark.parametrize("path", ALL_PATHS, ids=" ".join)
def test_every_command_has_help_text(path: tuple[str, ...]) -> None:
    command = dict(command_paths())[path]
    assert (getattr(command, "help", None) or "").strip(), f"{' '.join(path)} has no help text"


@pytest.mark.parametrize("path", sorted(CLIENT_COMMANDS), ids=" ".join)
def test_client_commands_take_url_and_key(path: tuple[str, ...]) -> None:
    output = flat(runner.invoke(app, [*path, "--help"]).output)
    assert "--url" in output
    assert "--key" in output


# ------------------------------------------------------------ argument parsing


@pytest.mark.parametrize(
    ("value", "bucket", "key"),
    [
        ("b/k", "b", "k"),
        ("photos/2024/cat.jpg", "photos", "2024/cat.jpg"),
        ("b/dir/", "b", "dir/"),
        ("b//double", "b", "/double"),
        ("b/a b?c#d%e", "b", "a b?c#d%e"),
    ],
)
def test_parse_object_ref_keeps_the_key_whole(value: str, bucket: str, key: str) -> None:
    assert client.parse_object_ref(value) == client.ObjectRef(bucket, key)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("bucket", "expected BUCKET/KEY"),
        ("", "expected BUCKET/KEY"),
        ("/key", "bucket name is empty"),
        ("bucket/", "key is empty"),
    ],
)
def test_parse_object_ref_rejects(value: str, message: str) -> None:
    with pytest.raises(typer.BadParameter, match=message):
        client.parse_object_ref(value)


@pytest.mark.parametrize(
    ("value", "expected"), [("0-99", "0-99"), ("100-", "100-"), ("-5", "-5"), (" 7-7 ", "7-7")]
)
def test_parse_range(value: str, expected: str) -> None:
    assert client.parse_range(value) == expected


@pytest.mark.parametrize("value", ["", "-", "abc", "1-2-3", "5-3", "bytes=0-1", "1,2"])
def test_parse_range_rejects(value: str) -> None:
    with pytest.raises(typer.BadParameter):
        client.parse_range(value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stat", "photos"], "expected BUCKET/KEY"),
        (["stat", "/cat.jpg"], "bucket name is empty"),
        (["rm", "photos/"], "key is empty"),
        (["get", "photos"], "expected BUCKET/KEY"),
        (["get", "photos/k", "--range", "9-1"], "ends before it starts"),
        (["get", "photos/k", "--range", "lots"], "expected A-B"),
        (["get", "photos/", "-"], "key is empty"),
        (["put", "f.txt", "photos"], "expected BUCKET/KEY"),
        (["put", "f.txt", "/k"], "bucket name is empty"),
        (["put", "-", "photos/"], "give the full BUCKET/KEY"),
        (["put", "-", "photos/dir/"], "give the full BUCKET/KEY"),
        (["ls", "/prefix"], "bucket name is empty"),
        (["mb", "a/b"], "without '/'"),
        (["rb", "a/b"], "without '/'"),
        (["nodes", "add", "ftp://node:1"], "not an http"),
        (["nodes", "set", "n1"], "at least one of"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    output = flat(result.output)
    assert "Invalid value" in output
    assert message in output


# ------------------------------------------------------------ error lines


def test_missing_key_is_a_one_line_error() -> None:
    result = runner.invoke(app, ["ls"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: config: no API key for http://127.0.0.1:8080")
    assert "CARGOHOLD_KEY" in result.stderr


def test_problem_json_becomes_code_and_detail(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        problem = {
            "type": "about:blank",
            "title": "No such bucket",
            "status": 404,
            "detail": "no bucket called photos",
            "code": "no_such_bucket",
        }
        return httpx.Response(404, json=problem, headers={"content-type": "application/problem+json"})

    def fake_client(url: str, key: str) -> GatewayClient:
        return GatewayClient(url, key, transport=httpx.MockTransport(gateway))

    monkeypatch.setattr(client, "GatewayClient", fake_client)
    result = runner.invoke(app, ["rm", "photos/a/../b c", "--url", "gw:9", "--key", "k1"])
    assert result.exit_code == 1
    assert result.stderr == "error: no_such_bucket: no bucket called photos\n"
    (request,) = seen
    assert request.url.raw_path == b"/api/v1/buckets/photos/objects/a/%2E%2E/b%20c"
    assert request.url.host == "gw"
    assert request.headers["authorization"] == "Bearer k1"
