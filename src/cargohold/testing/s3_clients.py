"""The S3 programs people use (aws cli, rclone, s3cmd), set up against a test cluster.

Each client is run exactly as a user would run it, as its own process, with
its configuration in a private directory: nothing is read from or written to
the home directory of whoever runs the tests. The aws cli and s3cmd come
from PyPI with the dev extras (they live beside this interpreter); rclone is
Debian's package, installed on first use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cargohold.testing import debian

REGION = "us-east-1"


def _beside_python(name: str) -> Path:
    found = Path(sys.executable).parent / name
    if not found.is_file():
        raise debian.PackageUnavailable(f"{name} is missing: install the dev extras (pip install -e .[dev])")
    return found


def _rclone() -> Path:
    return Path(debian.ensure(lambda: shutil.which("rclone"), "rclone"))


@dataclass(frozen=True)
class S3Clients:
    """Runs aws, rclone and s3cmd against ``endpoint`` with one S3 key."""

    endpoint: str  # http://127.0.0.1:port
    access_key: str
    secret_key: str
    home: Path  # private configuration directory

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
        env["HOME"] = str(self.home)
        return env

    def _run(self, argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}\nstdout: {done.stdout[-3000:]}\n"
                f"stderr: {done.stderr[-3000:]}"
            )
        return done

    def aws(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``aws --endpoint-url ... <args>`` with the key in a private credentials file."""
        config = self.home / "aws"
        config.mkdir(parents=True, exist_ok=True)
        (config / "credentials").write_text(
            f"[default]\naws_access_key_id = {self.access_key}\naws_secret_access_key = {self.secret_key}\n"
        )
        (config / "config").write_text(f"[default]\nregion = {REGION}\ns3 =\n  addressing_style = path\n")
        env = self._env()
        env["AWS_CONFIG_FILE"] = str(config / "config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(config / "credentials")
        env["AWS_MAX_ATTEMPTS"] = "1"
        argv = [str(_beside_python("aws")), "--endpoint-url", self.endpoint, *args]
        return self._run(argv, env, timeout)

    def rclone(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``rclone <args>`` with a remote named ``ch:`` (provider Other) configured by environment."""
        env = self._env()
        env.update(
            {
                "RCLONE_CONFIG": str(self.home / "rclone.conf"),
                "RCLONE_CONFIG_CH_TYPE": "s3",
                "RCLONE_CONFIG_CH_PROVIDER": "Other",
                "RCLONE_CONFIG_CH_ACCESS_KEY_ID": self.access_key,
                "RCLONE_CONFIG_CH_SECRET_ACCESS_KEY": self.secret_key,
                "RCLONE_CONFIG_CH_ENDPOINT": self.endpoint,
                "RCLONE_CONFIG_CH_REGION": REGION,
                "RCLONE_CONFIG_CH_FORCE_PATH_STYLE": "true",
            }
        )
        return self._run([str(_rclone()), *args], env, timeout)

    def s3cmd(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``s3cmd <args>`` with a private configuration file (path style, plain HTTP, SigV4)."""
        host = self.endpoint.split("://", 1)[1]
        config = self.home / "s3cfg"
        config.write_text(
            "[default]\n"
            f"access_key = {self.access_key}\n"
            f"secret_key = {self.secret_key}\n"
            f"host_base = {host}\n"
            f"host_bucket = {host}\n"
            f"bucket_location = {REGION}\n"
            "use_https = False\n"
            "signature_v2 = False\n"
            "check_ssl_certificate = False\n"
        )
        argv = [sys.executable, str(_beside_python("s3cmd")), "-c", str(config), *args]
        return self._run(argv, self._env(), timeout)
