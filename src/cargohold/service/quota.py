"""Per-user quotas: refuse a write before any byte of it is stored.

The owner of a bucket pays for what it holds (every version, and the parts
of open uploads), whoever wrote it. A write of known size that would cross
the owner's quota gets ``QuotaExceeded`` (403) up front; a write of unknown
size may use at most the room left, enforced as the write's size limit.
"""

from __future__ import annotations

from cargohold.domain.model import Bucket
from cargohold.errors import QuotaExceeded
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database


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
        if (size is not None and size > room) or (size is None and room == 0):
            raise QuotaExceeded(
                f"this write needs {size if size is not None else 'some'} bytes; the owner of bucket "
                f"{bucket.name!r} has {room} bytes of quota left",
                bucket=bucket.name,
                room=room,
            )
        return room
