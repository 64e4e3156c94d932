"""Background work that runs on a timer or when woken, with a run-once mode for tests.

A round that raises is logged and retried at the next tick: a worker must
outlive a bad round (a node down, a database hiccup).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(
        self,
        name: str,
        run_once: Callable[[], Awaitable[int]],
        interval: float,
        wakeup: asyncio.Event | None = None,
    ) -> None:
        self.name = name
        self.run_once = run_once
        self._interval = interval
        self._wakeup = wakeup or asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._interval)
            self._wakeup.clear()
            try:
                await self.run_once()
            except Exception:  # keep working after a bad round
                log.exception("%s round failed", self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
