"""Buckets: named namespaces, each with the layout its new objects are stored with.

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


class BucketService:
    def __init__(self, db: Database, default_layout: str, cache_seconds: float = 5.0) -> None:
        self._db = db
        self._default_layout = default_layout
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Bucket]] = {}

    async def create(self, name: str, layout: str | None = None) -> Bucket:
        validate_bucket(name)
        spec = Layout.parse(layout or self._default_layout).spec
        return await self._db.write(lambda conn: repo.create_bucket(conn, name, spec))

    async def get(self, name: str) -> Bucket:
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

    async def list_all(self) -> list[Bucket]:
        async with self._db.read() as conn:
            return await repo.list_buckets(conn)

    async def delete(self, name: str) -> None:
        bucket = await self.get(name)
        self._cache.pop(name, None)
        await self._db.write(lambda conn: repo.delete_bucket(conn, bucket.id))
