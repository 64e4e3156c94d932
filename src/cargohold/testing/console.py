"""The real ``cargohold`` console script, run against a test cluster.

Everything the CLI could pick up from the machine (other CARGOHOLD_* settings,
the user's client config, resume state) is pointed at a private home.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cargohold.testing.cluster import ADMIN_KEY, Cluster

CLI = Path(sys.executable).parent / "cargohold"


class ConsoleScript:
    def __init__(self, cluster: Cluster, home: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARGOHOLD_")}
        env.update(
            CARGOHOLD_URL=cluster.url,
            CARGOHOLD_KEY=ADMIN_KEY,
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_STATE_HOME=str(home / ".state"),
            COLUMNS="200",
            NO_COLOR="1",
        )
        self.env, self.cwd = env, home

    def __call__(
        self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(CLI), *args],
            input=input,
            capture_output=True,
            env={**self.env, **(env or {})},
            cwd=self.cwd,
            timeout=120,
            check=False,
        )
        out, err = (stream.decode(errors="replace") for stream in (done.stdout, done.stderr))
        return subprocess.CompletedProcess(done.args, done.returncode, out, err)

    def run_ok(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        """Run and insist on exit status 0 (the output is in the failure message)."""
        done = self(*args, input=input)
        assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def ok(self, *args: str, input: bytes | None = None) -> str:
        """Run, insist on success, return standard output."""
        return self.run_ok(*args, input=input).stdout
