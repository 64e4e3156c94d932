"""The one way CPU and blocking disk work leaves the event loop.

Encoding, hashing and file I/O all go through :func:`run_cpu` / :func:`run_io`
so they can be measured and swapped in one place. The C libraries we use
(ISA-L through pyeclib aside) release the GIL, so two worker threads really
use the second core.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_cpu_pool: ThreadPoolExecutor | None = None
_io_pool: ThreadPoolExecutor | None = None


def _pools() -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
    global _cpu_pool, _io_pool
    if _cpu_pool is None or _io_pool is None:
        cores = os.cpu_count() or 2
        _cpu_pool = ThreadPoolExecutor(max_workers=max(2, cores), thread_name_prefix="cpu")
        _io_pool = ThreadPoolExecutor(max_workers=max(8, 4 * cores), thread_name_prefix="io")
    return _cpu_pool, _io_pool


async def run_cpu(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run CPU-bound work (encode, decode, hash) on the CPU pool."""
    call = functools.partial(fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pools()[0], call)


async def run_io(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking file-system work (write, fsync, rename, unlink) on the I/O pool."""
    call = functools.partial(fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pools()[1], call)


def tune_malloc() -> None:
    """Keep glibc from returning large blocks to the kernel after every call.

    With the default thresholds each 1 MiB encode maps and unmaps fresh pages
    and page faults cost ~15x the encode itself (600 vs 10,000 MB/s measured).
    Raising the mmap and trim thresholds keeps those buffers in the heap; the
    trim threshold stays at 128 MiB so a burst of work does not pin its peak
    memory for the life of the process.
    """
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return
    try:
        libc = ctypes.CDLL(libc_name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    mallopt(m_trim_threshold, 128 * 1024 * 1024)


def trim_malloc() -> None:
    """Give freed heap memory back to the kernel now (glibc ``malloc_trim``), in every arena.

    The thresholds above keep a burst's buffers mapped; once the burst is
    over (see ``api/limits.py``) this returns them, so a gateway's RSS goes
    back near idle after an attack or a busy hour instead of staying at its peak.
    Takes milliseconds: call it off the event loop.
    """
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return
    try:
        ctypes.CDLL(libc_name).malloc_trim(0)
    except (OSError, AttributeError):
        return


def install_event_loop_policy(prefer_uvloop: bool = True) -> None:
    """Use uvloop where available: it reads request bodies ~2x faster than asyncio's loop."""
    if not prefer_uvloop:
        return
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
