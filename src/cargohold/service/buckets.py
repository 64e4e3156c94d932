"""Buckets: named namespaces, each with the layout its new objects are stored with."""

from __future__ import annotations

from cargohold.domain.layout import Layout
from cargohold.domain.model import Bucket
from cargohold.domain.names import validate_bucket
from cargohold.errors import NoSuchBucket
from cargohold.metadata import repositories as repo
from cargohold.metadata.db import Database


class BucketService:
    def __init__(self, db: Database, default_layout: str) -> None:
        self._db = db
        self._default_layout = default_layout

    async def create(self, name: str, layout: str | None = None) -> Bucket:
        validate_bucket(name)
        spec = Layout.parse(layout or self._default_layout).spec
        return await self._db.write(lambda conn: repo.create_bucket(conn, name, spec))

    async def get(self, name: str) -> Bucket:
        validate_bucket(name)
        async with self._db.read() as conn:
            bucket = await repo.get_bucket(conn, name)
        if bucket is None:
            raise NoSuchBucket(f"bucket {name!r} does not exist", bucket=name)
        return bucket

    async def list(self) -> list[Bucket]:
        async with self._db.read() as conn:
            return await repo.list_buckets(conn)

    async def delete(self, name: str) -> None:
        bucket = await self.get(name)
        await self._db.write(lambda conn: repo.delete_bucket(conn, bucket.id))
