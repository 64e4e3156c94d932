"""The one permission check: may this principal do this to this bucket?

Every service call that touches a bucket (objects, listings, uploads, share
links, grants, versions) resolves the bucket through :meth:`AccessService.bucket`
with the level it needs, never through the bucket service directly. Handlers
do not check permissions at all.

Levels are ordered: ``read`` < ``write`` < ``admin``. A bucket's owner and
system admins hold ``admin`` on it. A principal with no level at all gets
the same ``NoSuchBucket`` (404) as for a bucket that does not exist, so
bucket names do not leak; one with too low a level gets ``AccessDenied``
(403).

Grants are cached per (bucket, user) for a few seconds, like buckets and
keys: a change made through this gateway applies at once, through another
gateway within ``cache_seconds``.
"""

from __future__ import annotations

import time
from enum import IntEnum

from cargohold.domain.model import Bucket, Principal
from cargohold.errors import AccessDenied, InvalidArgument, NoSuchBucket
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.buckets import BucketService
from cargohold.service.revocations import Revocations, Watcher


class Level(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: object) -> Level:
        if not isinstance(text, str) or text.upper() not in cls.__members__:
            raise InvalidArgument("level must be one of read, write, admin", field="level")
        return cls[text.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


class AccessService:
    def __init__(
        self,
        db: Database,
        buckets: BucketService,
        cache_seconds: float = 5.0,
        revocations: Revocations | None = None,
    ) -> None:
        self._db = db
        self._buckets = buckets
        self._cache_seconds = cache_seconds
        self._grants: dict[tuple[int, int], tuple[float, Level | None]] = {}
        self._revocations = revocations
        self._watcher = Watcher(revocations)

    async def bucket(self, who: Principal, name: str, need: Level) -> Bucket:
        """The bucket, if ``who`` holds ``need`` on it; else 404 (cannot see it) or 403."""
        try:
            bucket = await self._buckets.get(name)
        except NoSuchBucket:
            raise NoSuchBucket(f"bucket {name!r} does not exist", bucket=name) from None
        return await self._check(who, bucket, need)

    async def bucket_by_id(self, who: Principal, bucket_id: int, need: Level) -> Bucket:
        """Like :meth:`bucket`, for records (uploads, share links) that name a bucket by id."""
        async with self._db.read() as conn:
            found = await repo.get_bucket_by_id(conn, bucket_id)
        if found is None:
            raise NoSuchBucket(f"bucket {bucket_id} does not exist")
        return await self._check(who, found, need)

    async def _check(self, who: Principal, bucket: Bucket, need: Level) -> Bucket:
        name = bucket.name
        held = await self.level(who, bucket)
        if held is None:
            raise NoSuchBucket(f"bucket {name!r} does not exist", bucket=name)
        if held < need:
            raise AccessDenied(
                f"{need.label} access to bucket {name!r} needs a {need.label} grant; you hold {held.label}",
                bucket=name,
                needed=need.label,
                held=held.label,
            )
        return bucket

    async def level(self, who: Principal, bucket: Bucket) -> Level | None:
        """What ``who`` may do to ``bucket``: a level, or None (may not even see it)."""
        if who.is_admin or bucket.owner_id == who.user_id:
            return Level.ADMIN
        if self._watcher.moved():
            self._grants.clear()
        cache_key = (bucket.id, who.user_id)
        cached = self._grants.get(cache_key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self._db.read() as conn:
            text = await repo.get_level(conn, bucket.id, who.user_id)
        held = Level.parse(text) if text else None
        self._grants[cache_key] = (time.monotonic() + self._cache_seconds, held)
        return held

    async def visible_buckets(self, who: Principal) -> list[Bucket]:
        """Every bucket ``who`` may see, by name."""
        async with self._db.read() as conn:
            return await repo.list_buckets(conn, visible_to=None if who.is_admin else who.user_id)

    def forget(self, bucket_id: int | None = None, user_id: int | None = None) -> None:
        """Drop cached grants after a change (all of a bucket's, a user's, or everything)."""
        for key in list(self._grants):
            if (bucket_id is None or key[0] == bucket_id) and (user_id is None or key[1] == user_id):
                del self._grants[key]
        if self._revocations is not None:
            self._revocations.bump()
