"""Buckets: named namespaces, each with the layout its new objects are stored with.

This is the raw catalogue, with no permission checks: callers acting for a
user go through ``service/access.py`` (lookups) or ``service/namespaces.py``
(bucket operations).

Every object call starts with a bucket lookup, so found buckets are cached
for a few seconds: small-object traffic then pays one metadata round trip
per request instead of two. A bucket deleted through another gateway is
seen here within ``cache_seconds``; writes into it then fail in the store.
"""

from __future__ import annotations

import time

from cargohold.domain.layout import Layout
from cargohold.domain.model import Bucket
from cargohold.domain.names import validate_bucket
from cargohold.errors import NoSuchBucket
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database
from cargohold.service.revocations import Revocations, Watcher


class BucketService:
    def __init__(
        self,
        db: Database,
        default_layout: str,
        cache_seconds: float = 5.0,
        revocations: Revocations | None = None,
    ) -> None:
        self._db = db
        self._default_layout = default_layout
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Bucket]] = {}
        self._revocations = revocations
        self._watcher = Watcher(revocations)

    def layout(self, layout: str | None = None) -> Layout:
        """``layout``, or the default layout of new buckets (``InvalidLayout`` if malformed)."""
        return Layout.parse(self._default_layout if layout is None else layout)

    async def create(self, name: str, owner_id: int, layout: str | None = None) -> Bucket:
        validate_bucket(name)
        spec = self.layout(layout).spec
        return await self._db.write(lambda conn: repo.create_bucket(conn, name, spec, owner_id))

    async def get(self, name: str) -> Bucket:
        if self._watcher.moved():
            self._cache.clear()
        cached = self._cache.get(name)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        validate_bucket(name)
        async with self._db.read() as conn:
            bucket = await repo.get_bucket(conn, name)
        if bucket is None:
            raise NoSuchBucket(f"bucket {name!r} does not exist", bucket=name)
        self._cache[name] = (time.monotonic() + self._cache_seconds, bucket)
        return bucket

    async def delete(self, bucket: Bucket) -> None:
        self.forget(bucket.name)
        await self._db.write(lambda conn: repo.delete_bucket(conn, bucket.id))

    async def set_versioning(self, bucket: Bucket, state: str) -> Bucket:
        self.forget(bucket.name)
        changed = await self._db.write(lambda conn: repo.set_versioning(conn, bucket.id, state))
        if changed is None:
            raise NoSuchBucket(f"bucket {bucket.name!r} does not exist", bucket=bucket.name)
        return changed

    def forget(self, name: str) -> None:
        self._cache.pop(name, None)
        if self._revocations is not None:
            self._revocations.bump()
