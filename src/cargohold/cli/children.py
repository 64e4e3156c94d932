"""Child role processes: how they are started, and that they cannot outlive their parent."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: ask Linux to SIGTERM this child when its parent exits.

    Without it a gateway or test run killed with SIGKILL leaves its node
    processes running and holding their ports. A no-op where prctl is missing.
    """
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return
    prctl = getattr(ctypes.CDLL(libc_name), "prctl", None)
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def node_command(data: Path, port: int, zone: str, capacity: int | None = None) -> list[str]:
    """The command line of one storage node, as `up` and the test cluster start it."""
    command = [sys.executable, "-m", "cargohold", "node", "--data", str(data), "--port", str(port)]
    command += ["--zone", zone]
    if capacity:
        command += ["--capacity", str(capacity)]
    return command
