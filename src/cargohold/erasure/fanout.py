"""Parallel share writers with backpressure, and the one place that decides quorum.

Each share index has its own bounded queue feeding one streaming upload. The
producer waits for room in every *live* queue, so the slowest healthy node sets
the pace and memory stays at ``depth`` blocks per share. A writer that fails
(connection lost, node error) or stalls past ``stall_timeout`` is dropped and
the write goes on while enough shares remain to reach the quorum.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from cargohold.errors import WriteQuorumFailed

log = logging.getLogger(__name__)

#: A writer consumes the share's byte stream and returns the size the node acknowledged.
ShareWriter = Callable[[AsyncIterator[bytes]], Awaitable[int]]

_END = object()


@dataclass(slots=True)
class ShareOutcome:
    index: int
    stored: bool
    size: int = 0
    error: str | None = None


def _public(outcomes: Sequence[ShareOutcome]) -> list[str]:
    """Why shares failed, as users may see it: the error kind, not a node's address or free space."""
    return [f"share {o.index}: {o.error.split(':', 1)[0]}" for o in outcomes if o.error]


class Fanout:
    """Streams frame after frame to ``len(writers)`` shares in parallel."""

    def __init__(self, writers: Sequence[ShareWriter], quorum: int, depth: int, stall_timeout: float) -> None:
        self._quorum = quorum
        self._stall = stall_timeout
        self._queues = [asyncio.Queue[object](maxsize=depth) for _ in writers]
        self._outcomes = [ShareOutcome(i, stored=False) for i in range(len(writers))]
        self._failed: set[int] = set()
        self._tasks = [asyncio.create_task(self._run(i, writer)) for i, writer in enumerate(writers)]

    async def _stream(self, index: int) -> AsyncIterator[bytes]:
        queue = self._queues[index]
        while True:
            item = await queue.get()
            if item is _END:
                return
            assert isinstance(item, bytes | memoryview)
            yield item  # type: ignore[misc]

    async def _run(self, index: int, writer: ShareWriter) -> None:
        outcome = self._outcomes[index]
        try:
            outcome.size = await writer(self._stream(index))
            outcome.stored = True
        except asyncio.CancelledError:
            outcome.error = outcome.error or "cancelled"
            self._failed.add(index)
            raise
        except Exception as exc:  # every failure of one share is data, not a crash
            outcome.error = f"{type(exc).__name__}: {exc}"
            self._failed.add(index)
            # The answer names only the error's kind (node addresses are for admins): say it all here.
            log.warning("share %d of a write failed: %s", index, outcome.error)

    @property
    def live(self) -> int:
        return len(self._queues) - len(self._failed)

    def _check_quorum(self) -> None:
        if self.live < self._quorum:
            errors = _public(self._outcomes)
            raise WriteQuorumFailed(
                f"only {self.live} of {len(self._queues)} shares writable, {self._quorum} needed",
                errors=errors,
            )

    async def send(self, pieces: Sequence[Sequence[bytes]]) -> None:
        """Queue ``pieces[i]`` (a frame header and payload) for share i on every live share."""
        self._check_quorum()
        puts = []
        for index, frame in enumerate(pieces):
            if index in self._failed:
                continue
            puts.append(self._put(index, frame))
        await asyncio.gather(*puts)
        self._check_quorum()

    async def _put(self, index: int, frame: Sequence[bytes]) -> None:
        queue = self._queues[index]
        try:
            for piece in frame:
                if index in self._failed:
                    return
                await asyncio.wait_for(queue.put(piece), self._stall)
        except TimeoutError:
            self._drop(index, f"stalled for more than {self._stall:.0f}s")

    def _drop(self, index: int, reason: str) -> None:
        self._failed.add(index)
        self._outcomes[index].error = reason
        self._tasks[index].cancel()

    async def finish(self) -> list[ShareOutcome]:
        """End every stream, wait for the nodes' acknowledgements, apply the quorum rule."""
        for index, queue in enumerate(self._queues):
            if index not in self._failed:
                try:
                    await asyncio.wait_for(queue.put(_END), self._stall)
                except TimeoutError:
                    self._drop(index, f"stalled for more than {self._stall:.0f}s")
        await asyncio.gather(*self._tasks, return_exceptions=True)
        stored = sum(o.stored for o in self._outcomes)
        if stored < self._quorum:
            raise WriteQuorumFailed(
                f"{stored} of {len(self._queues)} shares acknowledged, {self._quorum} needed",
                errors=_public(self._outcomes),
            )
        return list(self._outcomes)

    async def abort(self) -> list[ShareOutcome]:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        return list(self._outcomes)
