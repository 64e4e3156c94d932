"""``cargohold share`` on a real cluster: the printed URL works for anyone, ls shows it, revoke ends it."""

from __future__ import annotations

import httpx
import pytest

from cargohold.testing.cluster import Cluster
from cargohold.testing.console import ConsoleScript

BUCKET = "cli-share"


@pytest.fixture(scope="module")
def cli(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> ConsoleScript:
    run = ConsoleScript(cluster, tmp_path_factory.mktemp("home"))
    run.ok("mb", BUCKET)
    for key, data in (("notes.txt", b"my notes"), ("pics/a.jpg", b"A"), ("pics/b.jpg", b"BB")):
        run.ok("put", "-", f"{BUCKET}/{key}", input=data)
    return run


def _get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=30)


def test_share_prints_a_url_anyone_can_use(cli: ConsoleScript, cluster: Cluster) -> None:
    done = cli.run_ok("share", f"{BUCKET}/notes.txt", "--max-downloads", "1", "--expires", "2h")
    url = done.stdout.strip()
    assert url.startswith(cluster.url + "/s/") and "\n" not in url
    assert "1 downloads" in done.stderr and "expires" in done.stderr
    assert _get(url).content == b"my notes"
    gone = _get(url)
    assert gone.status_code == 410 and gone.json()["code"] == "link_exhausted"


def test_share_a_folder_with_a_password(cli: ConsoleScript) -> None:
    url = cli.ok(
        "share", "--prefix", f"{BUCKET}/pics/", "--password-stdin", input=b"folder password\n"
    ).strip()
    assert _get(url).status_code == 401
    assert _get(url, **{"X-Share-Password": "not it"}).status_code == 401
    listing = _get(url, **{"X-Share-Password": "folder password"}).json()
    assert [o["name"] for o in listing["objects"]] == ["a.jpg", "b.jpg"]
    assert _get(url + "/b.jpg", **{"X-Share-Password": "folder password"}).content == b"BB"


def test_ls_and_revoke(cli: ConsoleScript) -> None:
    url = cli.ok("share", f"{BUCKET}/pics/a.jpg").strip()
    rows = [line.split("\t") for line in cli.ok("share", "ls", "--plain").splitlines()]
    mine = [r for r in rows if r[1] == f"{BUCKET}/pics/a.jpg"]
    assert len(mine) == 1 and mine[0][2] == "active"
    link_id = mine[0][0]
    assert url.rsplit("/", 1)[1] not in "".join("".join(r) for r in rows)  # tokens are shown once
    assert _get(url).content == b"A"  # it works until revoked
    assert f"revoked share link {link_id}" in cli.ok("share", "revoke", link_id)
    assert _get(url).json()["code"] == "link_revoked"
    table = cli.ok("share", "ls")
    assert any(link_id in line and "revoked" in line for line in table.splitlines()), table


def test_errors_are_one_line(cli: ConsoleScript) -> None:
    missing = cli("share", f"{BUCKET}/nothing-here")
    assert missing.returncode == 1 and missing.stderr.startswith("error: no_such_key:")
    unknown = cli("share", "revoke", "0000000000000000")
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: no_such_link:")
