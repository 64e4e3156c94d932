"""Share links without sockets: who counts as a browser, file names, expiry arguments, the CLI's requests."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from cargohold.api.object_responses import content_disposition
from cargohold.api.share_links import prefers_html
from cargohold.cli import client
from cargohold.cli.api_client import GatewayClient
from cargohold.cli.main import app
from cargohold.cli.share import parse_expiry

runner = CliRunner()


@pytest.mark.parametrize(
    ("accept", "browser"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),  # Firefox, Chrome
        ("text/html", True),
        ("*/*", False),  # curl, httpx
        (None, False),
        ("", False),
        ("application/json", False),
        ("application/json, text/html;q=0.9", False),
        ("text/html;q=0.5, */*", False),
        ("text/html;q=0", False),
        ("text/html;q=nonsense", False),
    ],
)
def test_prefers_html(accept: str | None, browser: bool) -> None:
    assert prefers_html(accept) is browser


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("report.pdf", "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
        ("Résumé.txt", "attachment; filename=\"R_sum_.txt\"; filename*=UTF-8''R%C3%A9sum%C3%A9.txt"),
        (
            'a "quoted"\\name',
            "attachment; filename=\"a _quoted__name\"; filename*=UTF-8''a%20%22quoted%22%5Cname",
        ),
        ("日本.txt", "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"),
        (
            "semi;colon,comma",
            "attachment; filename=\"semi;colon,comma\"; filename*=UTF-8''semi%3Bcolon%2Ccomma",
        ),
    ],
)
def test_content_disposition(name: str, header: str) -> None:
    assert content_disposition(name) == header


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("45s", 45),
        ("30m", 1800),
        ("1h", 3600),
        ("2d", 172800),
        ("1w", 604800),
        ("1d12h", 129600),
        ("1H", 3600),
    ],
)
def test_parse_expiry_durations(text: str, seconds: int) -> None:
    assert parse_expiry(text) == {"expires_in": seconds}


def test_parse_expiry_times() -> None:
    later = datetime.now(UTC) + timedelta(days=3)
    assert parse_expiry(later.isoformat()) == {"expires_at": later.isoformat()}
    local = parse_expiry((datetime.now() + timedelta(days=1)).replace(microsecond=0).isoformat())
    assert datetime.fromisoformat(local["expires_at"]).tzinfo is not None  # a zone-less time is local time


@pytest.mark.parametrize("text", ["0s", "soon", "1x", "", "-1h", "2001-01-01T00:00:00+00:00"])
def test_parse_expiry_rejects(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_expiry(text)


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """A fake gateway that records requests and answers as the real one would."""
    for name in ("CARGOHOLD_URL", "CARGOHOLD_KEY", "CARGOHOLD_CLIENT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    seen: list[httpx.Request] = []
    link = {
        "id": "0123abcd0123abcd",
        "bucket": "b",
        "key": "k",
        "prefix": None,
        "status": "active",
        "downloads": 0,
        "max_downloads": None,
        "has_password": True,
        "expires_at": None,
        "owner": "me",
    }

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(201, json={**link, "token": "TOKEN", "url": "/s/TOKEN"})
        if request.method == "GET":
            return httpx.Response(200, json={"shares": [link]})
        return httpx.Response(200, json={**link, "status": "revoked"})

    def fake_client(url: str, key: str) -> GatewayClient:
        return GatewayClient(url, key, transport=httpx.MockTransport(answer))

    monkeypatch.setattr(client, "GatewayClient", fake_client)
    return seen


GW = ["--url", "http://gw:9", "--key", "k1"]


def test_share_asks_for_the_password_twice(gateway: list[httpx.Request]) -> None:
    result = runner.invoke(
        app,
        ["share", "b/k", "--password-prompt", "--max-downloads", "3", *GW],
        input="pass word\npass word\n",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("http://gw:9/s/TOKEN")
    (request,) = gateway
    assert (request.method, request.url.path) == ("POST", "/api/v1/shares")
    assert json.loads(request.content) == {
        "bucket": "b",
        "key": "k",
        "max_downloads": 3,
        "password": "pass word",
    }


def test_share_a_prefix_with_an_expiry(gateway: list[httpx.Request]) -> None:
    result = runner.invoke(app, ["share", "--prefix", "b/dir/", "--expires", "2d", *GW])
    assert result.exit_code == 0, result.output
    assert json.loads(gateway[0].content) == {"bucket": "b", "prefix": "dir/", "expires_in": 172800}


def test_share_ls_and_revoke_call_the_api(gateway: list[httpx.Request]) -> None:
    listed = runner.invoke(app, ["share", "ls", "--all", "--plain", *GW])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.split("\t")[:3] == ["0123abcd0123abcd", "b/k", "active"]
    revoked = runner.invoke(app, ["share", "revoke", "0123abcd0123abcd", *GW])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked share link 0123abcd0123abcd (b/k)" in revoked.stdout
    assert [(r.method, r.url.path, r.url.query) for r in gateway] == [
        ("GET", "/api/v1/shares", b"all=true"),
        ("DELETE", "/api/v1/shares/0123abcd0123abcd", b""),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["share", "b"], "expected BUCKET/KEY"),
        (["share", "b/"], "key is empty"),
        (["share", "b/k", "--expires", "soonish"], "expected a duration"),
        (["share", "b/k", "--max-downloads", "0"], "greater than or equal to 1"),
        (["share", "b/k", "--password-prompt", "--password-stdin"], "not both"),
        (["share", "revoke", "../x"], "not a link id"),
    ],
)
def test_bad_arguments_fail_before_any_request(
    gateway: list[httpx.Request], args: list[str], message: str
) -> None:
    result = runner.invoke(app, [*args, *GW])
    assert result.exit_code == 2, result.output
    assert message in " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())
    assert gateway == []
