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

from cargohold.domain.model import Bucket
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


class QuotaService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def room(self, bucket: Bucket) -> int | None:
        """Bytes the bucket's owner may still store, or None when they have no quota."""
        async with self._db.read() as conn:
            owner = await repo.get_user(conn, bucket.owner_id)
            if owner is None or owner.quota_bytes is None:
                return None
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
