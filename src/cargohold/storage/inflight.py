"""Puts under way on a node, so that a delete that overtakes one still wins.

A gateway whose write fails (a client gone, a cancelled import) deletes the
shares it started at once. A node that had already received a share's last
byte is then still making it durable (fsync, rename): the delete finds no
file, and the rename lands after it, leaving a share no part refers to until
the orphan sweep's grace runs out. So a delete also *dooms* every put of that
share id running when it arrives, and such a put removes what it stored as
soon as it is durable. A put that starts after the delete is not touched.
"""

from __future__ import annotations


class _Put:
    __slots__ = ("doomed", "share_id")

    def __init__(self, share_id: str) -> None:
        self.share_id = share_id
        self.doomed = False


class PutsInFlight:
    """The puts running on one store, by share id (touched on the event loop only)."""

    def __init__(self) -> None:
        self._running: dict[str, set[_Put]] = {}

    def begin(self, share_id: str) -> _Put:
        put = _Put(share_id)
        self._running.setdefault(share_id, set()).add(put)
        return put

    def end(self, put: _Put) -> None:
        running = self._running.get(put.share_id)
        if running is not None:
            running.discard(put)
            if not running:
                del self._running[put.share_id]

    def doom(self, share_id: str) -> bool:
        """Mark every put of ``share_id`` now running to be undone; True if there was one."""
        running = self._running.get(share_id, set())
        for put in running:
            put.doomed = True
        return bool(running)
