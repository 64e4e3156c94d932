"""Where the client commands find the gateway URL and API key.

Each value is looked up on its own, highest precedence first:

1. an explicit flag (``--url`` / ``--key``);
2. the environment (``CARGOHOLD_URL`` / ``CARGOHOLD_KEY``);
3. one client config file, a TOML table with ``url`` and ``key``: the file named by
   ``$CARGOHOLD_CLIENT_CONFIG`` if set, otherwise the first that exists of
   ``./.cargohold/client.toml`` (written by ``cargohold up``) and
   ``$XDG_CONFIG_HOME/cargohold/client.toml`` (``~/.config`` when unset).

Only one file is read: a key from one cluster's file must never be sent to the
URL found in another's. A file named by ``$CARGOHOLD_CLIENT_CONFIG`` that does
not exist is an error rather than a silent fall-through, so a typo shows up.

This module does no I/O beyond reading and writing those files; it never
talks to the network.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8080"
ENV_URL = "CARGOHOLD_URL"
ENV_KEY = "CARGOHOLD_KEY"
ENV_CONFIG = "CARGOHOLD_CLIENT_CONFIG"
LOCAL_CONFIG = Path(".cargohold") / "client.toml"


class ClientConfigError(Exception):
    """The client configuration is missing, unreadable or malformed."""


@dataclass(frozen=True)
class ClientConfig:
    """A resolved gateway address and key, with where each came from (for messages)."""

    url: str
    key: str | None
    url_source: str
    key_source: str

    def require_key(self) -> str:
        """The key, or a ClientConfigError that says how to provide one."""
        if not self.key:
            raise ClientConfigError(
                f"no API key for {self.url}: pass --key, set {ENV_KEY}, or write one to "
                f"{LOCAL_CONFIG} (`cargohold up` does this for a local cluster)"
            )
        return self.key


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/cargohold/client.toml``, with ``~/.config`` when unset."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "cargohold" / "client.toml"


def candidate_files(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[Path]:
    """The config files considered, in precedence order (existence not checked)."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    explicit = env.get(ENV_CONFIG)
    if explicit:
        return [Path(explicit).expanduser()]
    return [cwd / LOCAL_CONFIG, user_config_path(env)]


def read_client_file(path: Path) -> dict[str, str]:
    """Read ``url`` and ``key`` from one TOML file; other keys are ignored."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ClientConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ClientConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    found: dict[str, str] = {}
    for name in ("url", "key"):
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ClientConfigError(f"{path}: `{name}` must be a string")
        found[name] = value
    return found


def _find_file(env: Mapping[str, str], cwd: Path | None) -> Path | None:
    files = candidate_files(env, cwd)
    if env.get(ENV_CONFIG):
        if not files[0].is_file():
            raise ClientConfigError(f"{ENV_CONFIG} names {files[0]}, which does not exist")
        return files[0]
    return next((p for p in files if p.is_file()), None)


def normalize_url(url: str) -> str:
    """Accept ``host:port`` or a full http(s) URL; return it without a trailing slash."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientConfigError(f"not an http(s) URL: {url!r}")
    return url.rstrip("/")


def resolve_client_config(
    url: str | None = None,
    key: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ClientConfig:
    """Resolve the URL and key from flags, environment and the config file.

    ``url``/``key`` are the flag values (None when not given). The file is read
    only when a flag and the environment leave something unresolved.
    """
    env = os.environ if env is None else env
    values: dict[str, tuple[str, str]] = {}
    for name, flag, env_name in (("url", url, ENV_URL), ("key", key, ENV_KEY)):
        if flag:
            values[name] = (flag, f"--{name}")
        elif env.get(env_name):
            values[name] = (env[env_name], env_name)
    if len(values) < 2:
        path = _find_file(env, cwd)
        if path is not None:
            for name, value in read_client_file(path).items():
                values.setdefault(name, (value, str(path)))
    raw_url, url_source = values.get("url", (DEFAULT_URL, "default"))
    raw_key, key_source = values.get("key", (None, "none"))
    return ClientConfig(normalize_url(raw_url), raw_key, url_source, key_source)


def login_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The file ``cargohold login`` writes and ``logout`` clears.

    ``$CARGOHOLD_CLIENT_CONFIG`` when set, otherwise the user's file: never
    ``./.cargohold/client.toml``, which holds the key of a local ``up``
    cluster and must not be overwritten by a sign-in elsewhere.
    """
    env = os.environ if env is None else env
    explicit = env.get(ENV_CONFIG)
    return Path(explicit).expanduser() if explicit else user_config_path(env)


def shadowing_file(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path | None:
    """A config file that is read before :func:`login_config_path` here, if any."""
    env = os.environ if env is None else env
    if env.get(ENV_CONFIG):
        return None
    local = (Path.cwd() if cwd is None else cwd) / LOCAL_CONFIG
    return local if local.is_file() else None


def write_client_config(path: Path | str | None, url: str, key: str | None) -> Path:
    """Write ``url`` and ``key`` to ``path`` as TOML, readable by the owner only.

    ``key=None`` writes the URL alone (what ``cargohold logout`` leaves).

    ``path=None`` means the user's file (:func:`user_config_path`); the path
    written is returned. Parent directories are created (mode 0700). The file is written to a
    temporary sibling with mode 0600 and renamed into place, so no reader ever
    sees a half-written file and the key is never briefly world-readable.
    """
    path = user_config_path() if path is None else Path(path).expanduser()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A JSON string literal is a valid TOML basic string (same escapes).
    text = (
        f"# Written by cargohold; read by the client commands.\nurl = {json.dumps(url, ensure_ascii=False)}\n"
    )
    if key is not None:
        text += f"key = {json.dumps(key, ensure_ascii=False)}\n"
    fd, tmp = tempfile.mkstemp(prefix=".client.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


#: The region S3 clients sign for; the gateway accepts any, clients just need one.
S3_REGION = "us-east-1"


def aws_profile_snippet(url: str, access_key_id: str, secret: str, profile: str = "cargohold") -> str:
    """What to add to ``~/.aws/credentials`` and ``~/.aws/config`` for S3 tools to reach ``url``.

    ``endpoint_url`` in a profile is read by aws cli v2 and boto3 (1.28+); path-style
    addressing works whatever host name the gateway is reached by.
    """
    return (
        "# ~/.aws/credentials\n"
        f"[{profile}]\n"
        f"aws_access_key_id = {access_key_id}\n"
        f"aws_secret_access_key = {secret}\n"
        "\n"
        "# ~/.aws/config\n"
        f"[profile {profile}]\n"
        f"region = {S3_REGION}\n"
        f"endpoint_url = {url.rstrip('/')}\n"
        "s3 =\n"
        "    addressing_style = path\n"
    )
