"""Install a Debian package the tests need, once, even with parallel test workers.

Tests use real programs (PostgreSQL's server, rclone) that a fresh CI machine
does not have. They come from Debian's archive with apt, which refuses to run
twice at once: every worker takes one lock, the first installs, the others
wait and then find the program.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import TypeVar

INSTALL_LOCK = "/tmp/cargohold-apt-install.lock"
T = TypeVar("T")


class PackageUnavailable(RuntimeError):
    """The program is missing and cannot be installed here."""


def apt_install(package: str) -> None:
    """``apt-get install`` one package; ``PackageUnavailable`` if we cannot."""
    if os.geteuid() != 0:
        raise PackageUnavailable(f"{package} is not installed and we are not root to install it")
    if shutil.which("apt-get") is None:
        raise PackageUnavailable(f"{package} is not installed and apt-get is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-2000:]
            raise PackageUnavailable(f"{' '.join(command)} failed:\n{tail}")


def ensure(find: Callable[[], T | None], package: str) -> T:
    """What ``find`` finds, installing ``package`` first if it finds nothing."""
    found = find()
    if found is None:
        with open(INSTALL_LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = find()
            if found is None:
                apt_install(package)
                found = find()
    if found is None:
        raise PackageUnavailable(f"{package} was installed but its program is still missing")
    return found
