"""Per-user quotas: refuse a write before any byte of it is stored.

The owner of a bucket pays for what it holds (every version, and the parts
of open uploads), whoever wrote it. A write of known size that would cross
the owner's quota gets ``QuotaExceeded`` (403) up front, before its body is
read; a write of unknown size may use at most the room left, enforced as the
write's size limit: crossing it fails the write (``QuotaExceeded`` again)
and nothing of it becomes visible.

The check is made when a write starts, not when it commits: writes running
at the same time for one owner are each measured against the same room, so
together they can pass the quota by at most what they carry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cargohold.domain.model import Bucket, User
from cargohold.errors import QuotaExceeded
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database


def quota_exceeded(bucket: Bucket, room: int, size: int | None = None) -> QuotaExceeded:
    """The error for a write of ``size`` bytes (None: more than the room) into ``bucket``."""
    needs = f"{size} bytes" if size is not None else f"more than the {room} bytes left"
    return QuotaExceeded(
        f"this write needs {needs}; the owner of bucket {bucket.name!r} has {room} bytes of quota left",
        bucket=bucket.name,
        room=room,
    )


UserLookup = Callable[[int], Awaitable[User | None]]


class QuotaService:
    def __init__(self, db: Database, users: UserLookup | None = None) -> None:
        self._db = db
        self._users = users

    async def _user(self, user_id: int) -> User | None:
        if self._users is not None:
            return await self._users(user_id)
        async with self._db.read() as conn:
            return await repo.get_user(conn, user_id)

    async def room(self, bucket: Bucket) -> int | None:
        """Bytes the bucket's owner may still store, or None when they have no quota.

        Owners without a quota (most writes) cost no metadata read: their
        record comes from the user cache when one is given.
        """
        owner = await self._user(bucket.owner_id)
        if owner is None or owner.quota_bytes is None:
            return None
        async with self._db.read() as conn:
            used = await repo.bytes_owned(conn, owner.id)
        return max(0, owner.quota_bytes - used)

    async def admit(self, bucket: Bucket, size: int | None) -> int | None:
        """Check a write of ``size`` bytes (None: unknown) into ``bucket``.

        Returns the most bytes the write may carry (None: no quota), and
        raises ``QuotaExceeded`` when a known size does not fit or no room is left.
        """
        room = await self.room(bucket)
        if room is None:
            return None
        if size is not None and size > room:
            raise quota_exceeded(bucket, room, size)
        if size is None and room == 0:
            raise quota_exceeded(bucket, room)
        return room
