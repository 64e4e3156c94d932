"""Where the client finds the gateway URL and key: precedence, files, file mode."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from cargohold.cli.clientconfig import (
    DEFAULT_URL,
    ClientConfigError,
    normalize_url,
    resolve_client_config,
    write_client_config,
)


def write_toml(path: Path, **values: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f'{k} = "{v}"\n' for k, v in values.items()))
    return path


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """A working directory, an XDG config home and an explicit config file, all empty."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    return {
        "cwd": cwd,
        "local": cwd / ".cargohold" / "client.toml",
        "xdg_home": tmp_path / "xdg",
        "xdg": tmp_path / "xdg" / "cargohold" / "client.toml",
        "explicit": tmp_path / "elsewhere" / "cluster.toml",
    }


LAYERS = ["flag", "env", "explicit", "local", "xdg"]


def build(places: dict[str, Path], layers: list[str]) -> tuple[dict[str, str | None], dict]:
    """Set up the given layers, each naming itself in its url and key."""
    env = {"XDG_CONFIG_HOME": str(places["xdg_home"])}
    flags: dict[str, str | None] = {"url": None, "key": None}
    for layer in layers:
        url, key = f"http://{layer}:1", f"key-{layer}"
        if layer == "flag":
            flags = {"url": url, "key": key}
        elif layer == "env":
            env |= {"CARGOHOLD_URL": url, "CARGOHOLD_KEY": key}
        else:
            write_toml(places[layer], url=url, key=key)
            if layer == "explicit":
                env["CARGOHOLD_CLIENT_CONFIG"] = str(places["explicit"])
    return flags, env


@pytest.mark.parametrize("top", range(len(LAYERS)))
def test_highest_present_layer_wins(places: dict[str, Path], top: int) -> None:
    flags, env = build(places, LAYERS[top:])
    config = resolve_client_config(**flags, env=env, cwd=places["cwd"])
    winner = LAYERS[top]
    assert (config.url, config.key) == (f"http://{winner}:1", f"key-{winner}")


def test_nothing_configured_gives_default_url_and_no_key(places: dict[str, Path]) -> None:
    _, env = build(places, [])
    config = resolve_client_config(env=env, cwd=places["cwd"])
    assert (config.url, config.key, config.url_source) == (DEFAULT_URL, None, "default")
    with pytest.raises(ClientConfigError, match="CARGOHOLD_KEY"):
        config.require_key()


def test_explicit_file_hides_local_and_xdg_files(places: dict[str, Path]) -> None:
    _, env = build(places, ["local", "xdg"])
    write_toml(places["explicit"], url="http://explicit:1")
    env["CARGOHOLD_CLIENT_CONFIG"] = str(places["explicit"])
    config = resolve_client_config(env=env, cwd=places["cwd"])
    assert (config.url, config.key) == ("http://explicit:1", None)


def test_each_value_is_resolved_on_its_own(places: dict[str, Path]) -> None:
    _, env = build(places, ["local"])
    env["CARGOHOLD_KEY"] = "from-env"
    config = resolve_client_config(url="http://flag:1", env=env, cwd=places["cwd"])
    assert (config.url, config.url_source) == ("http://flag:1", "--url")
    assert (config.key, config.key_source) == ("from-env", "CARGOHOLD_KEY")

    config = resolve_client_config(env={**env, "CARGOHOLD_KEY": ""}, cwd=places["cwd"])
    assert (config.key, config.key_source) == ("key-local", str(places["local"]))


def test_only_one_file_is_read(places: dict[str, Path]) -> None:
    """A key from one cluster's file is never paired with another file's URL."""
    write_toml(places["local"], url="http://local:1")
    write_toml(places["xdg"], url="http://xdg:1", key="key-xdg")
    _, env = build(places, [])
    config = resolve_client_config(env=env, cwd=places["cwd"])
    assert (config.url, config.key) == ("http://local:1", None)


def test_xdg_defaults_to_dot_config(places: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write_toml(tmp_path / "home" / ".config" / "cargohold" / "client.toml", key="home-key")
    config = resolve_client_config(env={}, cwd=places["cwd"])
    assert config.key == "home-key"


def test_missing_explicit_file_is_an_error(places: dict[str, Path]) -> None:
    env = {"CARGOHOLD_CLIENT_CONFIG": str(places["explicit"])}
    with pytest.raises(ClientConfigError, match="does not exist"):
        resolve_client_config(env=env, cwd=places["cwd"])


def test_flags_and_env_need_no_file(places: dict[str, Path]) -> None:
    """With both values given, even a broken or missing file is never opened."""
    env = {"CARGOHOLD_CLIENT_CONFIG": str(places["explicit"]), "CARGOHOLD_KEY": "k"}
    config = resolve_client_config(url="http://flag:1", env=env, cwd=places["cwd"])
    assert (config.url, config.key) == ("http://flag:1", "k")


@pytest.mark.parametrize(
    ("text", "message"),
    [("url = [1", "not valid TOML"), ("url = 8080\n", "`url` must be a string")],
)
def test_bad_file_is_an_error_naming_it(places: dict[str, Path], text: str, message: str) -> None:
    places["local"].parent.mkdir(parents=True)
    places["local"].write_text(text)
    with pytest.raises(ClientConfigError, match=message) as err:
        resolve_client_config(env={"XDG_CONFIG_HOME": "/nonexistent"}, cwd=places["cwd"])
    assert str(places["local"]) in str(err.value)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://gw.example:80/", "http://gw.example:80"),
        ("https://gw.example/base/", "https://gw.example/base"),
        (" http://h:1 ", "http://h:1"),
    ],
)
def test_normalize_url(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize("bad", ["ftp://h/x", "http://", "http:///path"])
def test_normalize_url_rejects(bad: str) -> None:
    with pytest.raises(ClientConfigError, match="not an http"):
        normalize_url(bad)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_creates_dirs_and_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "client.toml"
    assert write_client_config(path, "http://127.0.0.1:8080", "s3cret") == path
    assert mode(path) == 0o600
    assert mode(path.parent) & 0o077 == 0
    assert tomllib.loads(path.read_text()) == {"url": "http://127.0.0.1:8080", "key": "s3cret"}
    assert [p.name for p in path.parent.iterdir()] == ["client.toml"]


def test_write_tightens_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    path.write_text("stale = true\n")
    path.chmod(0o644)
    write_client_config(path, "http://h:1", "k")
    assert mode(path) == 0o600
    assert tomllib.loads(path.read_text()) == {"url": "http://h:1", "key": "k"}


def test_write_round_trips_awkward_values(tmp_path: Path) -> None:
    key = 'quo"te \\ back\nslash ünï\ttab'
    path = write_client_config(tmp_path / "client.toml", 'http://h:1/x?y="z"', key)
    assert tomllib.loads(path.read_text()) == {"url": 'http://h:1/x?y="z"', "key": key}


def test_written_file_is_found_as_the_local_config(places: dict[str, Path]) -> None:
    write_client_config(places["local"], "http://127.0.0.1:9999", "local-key")
    config = resolve_client_config(env={"XDG_CONFIG_HOME": "/nonexistent"}, cwd=places["cwd"])
    assert (config.url, config.key) == ("http://127.0.0.1:9999", "local-key")


def test_write_without_a_path_goes_to_the_user_config(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    path = write_client_config(None, "http://h:1", "k")
    assert path == tmp_path / "xdg" / "cargohold" / "client.toml"
    assert mode(path) == 0o600
    config = resolve_client_config(cwd=tmp_path, env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert (config.url, config.key) == ("http://h:1", "k")
