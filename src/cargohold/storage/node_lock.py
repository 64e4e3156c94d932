"""One node per data directory: an exclusive ``flock`` on ``<data>/lock``.

Two nodes on one directory would delete each other's temp files at start-up
and keep diverging used-bytes counters, so the second one must refuse to run.
``flock`` locks belong to the open file and the kernel drops them when the
process dies, however it dies: there is no stale lock to clean up after a
crash, and the pid written into the file is only for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "lock"


class DataDirInUse(RuntimeError):
    """Another process holds the data directory's lock."""


def lock_data_dir(data_dir: Path) -> int:
    """Create ``data_dir`` if needed and lock it; returns the descriptor holding the lock.

    Never waits: raises :class:`DataDirInUse` at once if another process
    holds the lock. Closing the descriptor (or exiting) releases it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = f" (pid {int(os.pread(fd, 32, 0).split()[0])})"
        os.close(fd)
        raise DataDirInUse(
            f"data directory {data_dir} is in use by another node{holder}: {path} is locked"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
