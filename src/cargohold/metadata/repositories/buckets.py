"""Buckets: named namespaces for objects, each with a default layout."""

from __future__ import annotations

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import Bucket
from cargohold.errors import BucketAlreadyExists, BucketNotEmpty, NoSuchBucket
from cargohold.metadata.repositories._sql import insert_or_nothing
from cargohold.metadata.tables import buckets, grants, objects, utcnow


def _bucket(row: Row) -> Bucket:
    return Bucket(
        id=row.id,
        name=row.name,
        layout=row.layout,
        created_at=row.created_at,
        owner_id=row.owner_id,
        versioning=row.versioning,
    )


async def create_bucket(conn: AsyncConnection, name: str, layout: str, owner_id: int) -> Bucket:
    """Create a bucket; ``BucketAlreadyExists`` if the name is taken."""
    values = {
        "name": name,
        "layout": layout,
        "owner_id": owner_id,
        "versioning": "off",
        "created_at": utcnow(),
    }
    row = (await conn.execute(insert_or_nothing(conn, buckets, values).returning(buckets))).first()
    if row is None:
        raise BucketAlreadyExists(f"bucket {name!r} already exists", bucket=name)
    return _bucket(row)


async def get_bucket(conn: AsyncConnection, name: str) -> Bucket | None:
    row = (await conn.execute(select(buckets).where(buckets.c.name == name))).first()
    return _bucket(row) if row else None


async def get_bucket_by_id(conn: AsyncConnection, bucket_id: int) -> Bucket | None:
    row = (await conn.execute(select(buckets).where(buckets.c.id == bucket_id))).first()
    return _bucket(row) if row else None


async def list_buckets(conn: AsyncConnection, visible_to: int | None = None) -> list[Bucket]:
    """All buckets, by name; or those user ``visible_to`` owns or holds a grant on."""
    stmt = select(buckets).order_by(buckets.c.name)
    if visible_to is not None:
        granted = select(grants.c.bucket_id).where(grants.c.user_id == visible_to)
        stmt = stmt.where((buckets.c.owner_id == visible_to) | buckets.c.id.in_(granted))
    return [_bucket(r) for r in await conn.execute(stmt)]


async def set_versioning(conn: AsyncConnection, bucket_id: int, state: str) -> Bucket | None:
    stmt = update(buckets).where(buckets.c.id == bucket_id).values(versioning=state).returning(buckets)
    row = (await conn.execute(stmt)).first()
    return _bucket(row) if row else None


async def count_owned(conn: AsyncConnection, user_id: int) -> int:
    stmt = select(func.count()).select_from(buckets).where(buckets.c.owner_id == user_id)
    return int((await conn.execute(stmt)).scalar_one())


async def delete_bucket(conn: AsyncConnection, bucket: Bucket | int | str) -> None:
    """Delete an empty bucket, given as a record, an id or a name.

    ``NoSuchBucket`` if it does not exist, ``BucketNotEmpty`` if it holds
    objects. The emptiness test and the delete are one statement; an object
    committed concurrently (PostgreSQL) trips the foreign key instead, which
    the savepoint turns into the same ``BucketNotEmpty``.
    """
    if isinstance(bucket, Bucket):
        bucket = bucket.id
    which = buckets.c.name == bucket if isinstance(bucket, str) else buckets.c.id == bucket
    name = str(bucket)
    has_objects = exists().where(objects.c.bucket_id == buckets.c.id)
    stmt = delete(buckets).where(which, ~has_objects).returning(buckets.c.id)
    try:
        async with conn.begin_nested():
            deleted = (await conn.execute(stmt)).first()
    except IntegrityError as exc:
        raise BucketNotEmpty(f"bucket {name!r} is not empty", bucket=name) from exc
    if deleted is not None:
        return
    if (await conn.execute(select(buckets.c.id).where(which))).first() is None:
        raise NoSuchBucket(f"bucket {name!r} does not exist", bucket=name)
    raise BucketNotEmpty(f"bucket {name!r} is not empty", bucket=name)
