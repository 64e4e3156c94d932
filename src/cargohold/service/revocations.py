"""How the gateway workers on one host stop trusting a cached key, user or grant together.

Keys, users, sessions, buckets and grants are cached for ``auth_cache_seconds``
(``service/auth.py``): a gateway that makes a change drops its own entries at
once, and other gateways see it when theirs expire. The N worker processes
of one ``gateway --workers N`` are one gateway to their users, so "at once"
must hold for all of them: their parent hands each a shared 8-byte counter
(an anonymous memory file), every change that must stop cached credentials
bumps it, and every cache looks at it (one memory read) before it answers,
emptying itself when it moved. Bumps never need to be atomic: a cache only
asks whether the value changed, and a lost increment still changes it.

Without a shared counter (one process) the counter is the process's own:
its caches empty themselves after its own changes, as the targeted drops
already did for the entries concerned.
"""

from __future__ import annotations

import mmap
import os
import struct

_COUNTER = struct.Struct("=Q")


def shared_counter() -> int:
    """A new shared counter for children to inherit: an anonymous memory file's descriptor."""
    fd = os.memfd_create("cargohold-revocations", 0)
    os.ftruncate(fd, mmap.PAGESIZE)
    os.set_inheritable(fd, True)
    return fd


class Revocations:
    """The generation of cached credentials; ``fd`` is a :func:`shared_counter` to map."""

    def __init__(self, fd: int | None = None) -> None:
        self._map = mmap.mmap(fd, mmap.PAGESIZE) if fd is not None else None
        self._local = 0

    def current(self) -> int:
        if self._map is None:
            return self._local
        return int(_COUNTER.unpack_from(self._map, 0)[0])

    def bump(self) -> None:
        """A change was committed that must stop cached credentials everywhere on this host."""
        if self._map is None:
            self._local += 1
        else:
            _COUNTER.pack_into(self._map, 0, (self.current() + 1) % 2**64)


class Watcher:
    """One cache's view of :class:`Revocations`: true once each time the generation moved."""

    def __init__(self, revocations: Revocations | None) -> None:
        self._revocations = revocations
        self._seen = revocations.current() if revocations is not None else 0

    def moved(self) -> bool:
        if self._revocations is None:
            return False
        now = self._revocations.current()
        if now == self._seen:
            return False
        self._seen = now
        return True
