"""Child processes that cannot outlive the process that started them."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal

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
