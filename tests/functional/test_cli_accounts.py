"""The account commands of the real ``cargohold`` console script against a real gateway."""

from __future__ import annotations

import socket
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.testing.cluster import Cluster
from cargohold.testing.console import ConsoleScript
from cargohold.testing.s3 import s3_client

PASSWORD = "a fine password"
NO_KEY = {"CARGOHOLD_KEY": ""}  # use the saved key, not the admin key the script is given


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("cli-accounts"), node_count=1, layout="mirror:1") as running:
        yield running


@pytest.fixture(scope="module")
def cli(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> ConsoleScript:
    return ConsoleScript(cluster, tmp_path_factory.mktemp("home"))


def _fails(done: subprocess.CompletedProcess[str], code: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.startswith(f"error: {code}:"), done.stderr


def _plain_users(cli: ConsoleScript) -> dict[str, list[str]]:
    return {line.split("\t")[0]: line.split("\t") for line in cli.ok("users", "ls", "--plain").splitlines()}


def _saved(cli: ConsoleScript) -> dict[str, str]:
    path = Path(cli.env["XDG_CONFIG_HOME"]) / "cargohold" / "client.toml"
    with path.open("rb") as fh:
        return tomllib.load(fh)


def test_admin_manages_users(cli: ConsoleScript) -> None:
    added = cli.ok("users", "add", "cli-bob", "--quota", "10MB", "--password-stdin", input=b"bobs password\n")
    assert "cli-bob" in added and "10.0 MB" in added
    assert _plain_users(cli)["cli-bob"][1:4] == ["user", "enabled", "10000000"]
    cli.ok("users", "set", "cli-bob", "--quota", "none", "--role", "admin")
    assert _plain_users(cli)["cli-bob"][1:4] == ["admin", "enabled", "-"]
    cli.ok("users", "set", "cli-bob", "--role", "user")
    cli.ok("users", "disable", "cli-bob")
    assert _plain_users(cli)["cli-bob"][2] == "disabled"
    cli.ok("users", "enable", "cli-bob")
    assert "deleted user cli-bob" in cli.ok("users", "rm", "cli-bob")
    assert "cli-bob" not in _plain_users(cli)
    assert cli("users", "set", "admin").returncode == 2  # nothing to change: a usage error


def test_login_whoami_keys_logout(cli: ConsoleScript, cluster: Cluster) -> None:
    cli.ok("users", "add", "cli-carol", "--password-stdin", input=f"{PASSWORD}\n".encode())
    _fails(
        cli("login", "--user", "cli-carol", "--password-stdin", input=b"wrong\n", env=NO_KEY),
        "invalid_credentials",
    )
    done = cli("login", "--user", "cli-carol", "--password-stdin", input=f"{PASSWORD}\n".encode(), env=NO_KEY)
    assert done.returncode == 0, done.stderr
    assert f"signed in to {cluster.url} as cli-carol" in done.stdout
    saved = _saved(cli)
    assert saved["url"] == cluster.url and saved["key"].startswith("CH")

    whoami = cli("whoami", env=NO_KEY)
    assert whoami.returncode == 0, whoami.stderr
    assert "user:       cli-carol" in whoami.stdout and "role:       user" in whoami.stdout
    keys = cli("keys", "ls", "--plain", env=NO_KEY).stdout.splitlines()
    assert [line.split("\t")[1:3] for line in keys] == [[f"cli@{socket.gethostname()}", "active"]]
    assert saved["key"].split(".")[1] not in "".join(keys)  # no secrets in listings

    def carol_signed_out() -> bool:  # login kept the key, not the session it used to make it
        events = cluster.client().get("/api/v1/history", params={"action": "auth.logout"}).json()["events"]
        return any(e["user"] == "cli-carol" and e["result"] == "ok" for e in events)

    cluster.wait_for(carol_signed_out)

    made = cli("keys", "create", "ci job", "--expires", "1d", env=NO_KEY)
    assert made.returncode == 0, made.stderr
    token = next(line.split()[1] for line in made.stdout.splitlines() if line.startswith("token:"))
    key_id = token.split(".")[0]
    assert "cli-carol" in cli.ok("whoami", "--key", token)
    assert cli.ok("whoami", "--key", token).splitlines()[0].split() == ["user:", "cli-carol"]
    assert f"revoked key {key_id}" in cli("keys", "revoke", key_id, env=NO_KEY).stdout
    _fails(cli("whoami", "--key", token), "invalid_credentials")

    _fails(cli("users", "ls", env=NO_KEY), "forbidden")
    out = cli("logout", env=NO_KEY)
    assert out.returncode == 0, out.stderr
    assert f"revoked key {saved['key'].split('.')[0]}" in out.stdout
    assert "key" not in _saved(cli) and _saved(cli)["url"] == cluster.url
    _fails(cli("whoami", env=NO_KEY), "config")
    _fails(cli("whoami", "--key", saved["key"]), "invalid_credentials")
    _fails(cli("logout", env=NO_KEY), "not_signed_in")


def test_logout_keeps_keys_it_did_not_make(cli: ConsoleScript, cluster: Cluster) -> None:
    path = Path(cli.env["XDG_CONFIG_HOME"]) / "cargohold" / "client.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'url = "{cluster.url}"\nkey = "{cli.env["CARGOHOLD_KEY"]}"\n')
    _fails(cli("logout", env=NO_KEY), "not_a_login_key")
    assert "admin" in cli.ok("whoami")  # the admin key still works
    assert cli.ok("whoami").splitlines()[0].split() == ["user:", "admin"]
    path.unlink()


def test_passwd(cli: ConsoleScript) -> None:
    cli.ok("users", "add", "cli-dan", "--password-stdin", input=f"{PASSWORD}\n".encode())
    login = ("login", "--user", "cli-dan", "--password-stdin")
    assert cli(*login, input=f"{PASSWORD}\n".encode(), env=NO_KEY).returncode == 0
    _fails(
        cli("passwd", "--password-stdin", input=b"wrong one\nnew password 1\n", env=NO_KEY), "wrong_password"
    )
    changed = cli("passwd", "--password-stdin", input=f"{PASSWORD}\nnew password 1\n".encode(), env=NO_KEY)
    assert changed.returncode == 0, changed.stderr
    assert "password of cli-dan changed" in changed.stdout
    _fails(cli(*login, input=f"{PASSWORD}\n".encode(), env=NO_KEY), "invalid_credentials")
    assert cli(*login, input=b"new password 1\n", env=NO_KEY).returncode == 0
    reset = cli.ok("passwd", "--user", "cli-dan", "--password-stdin", input=b"set by the admin\n")
    assert "password of cli-dan changed" in reset
    assert cli(*login, input=b"set by the admin\n", env=NO_KEY).returncode == 0
    assert cli("logout", env=NO_KEY).returncode == 0


def test_login_into_a_new_config_file(cli: ConsoleScript, cluster: Cluster, tmp_path: Path) -> None:
    """A user with no config yet signs in with --url into the file CARGOHOLD_CLIENT_CONFIG names."""
    cli.ok("users", "add", "cli-erin", "--password-stdin", input=f"{PASSWORD}\n".encode())
    target = tmp_path / "erin.toml"
    env = {**NO_KEY, "CARGOHOLD_CLIENT_CONFIG": str(target)}
    done = cli("login", "--url", cluster.url, "--user", "cli-erin", "--password-stdin",
               input=f"{PASSWORD}\n".encode(), env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    with target.open("rb") as fh:
        saved = tomllib.load(fh)
    assert saved["url"] == cluster.url and saved["key"].startswith("CH")
    assert cli("whoami", env=env).stdout.splitlines()[0].split() == ["user:", "cli-erin"]


def test_s3_keys_from_the_command_line(cli: ConsoleScript, cluster: Cluster) -> None:
    made = cli.ok("keys", "create", "--s3", "backup job")
    fields = dict(line.split(":", 1) for line in made.splitlines() if line[:1].isalpha() and ":" in line)
    access_key, secret = fields["access key"].strip(), fields["secret"].strip()
    assert "# ~/.aws/credentials" in made and f"aws_access_key_id = {access_key}" in made
    assert f"aws_secret_access_key = {secret}" in made and f"endpoint_url = {cluster.url}" in made
    assert s3_client(cluster, access_key, secret).list_buckets()["Owner"]["DisplayName"] == "admin"
    listed = cli.ok("keys", "ls", "--s3", "--plain")
    assert any(line.split("\t")[:3] == [access_key, "backup job", "active"] for line in listed.splitlines())
    assert access_key not in cli.ok("keys", "ls", "--plain")
    cli.ok("keys", "revoke", access_key)
    assert any(
        line.split("\t")[:3] == [access_key, "backup job", "revoked"]
        for line in cli.ok("keys", "ls", "--s3", "--plain").splitlines()
    )
