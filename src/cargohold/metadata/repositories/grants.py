"""Grants: a user's access level on a bucket somebody else owns.

A bucket's owner is not a grant (it is ``buckets.owner_id``) and never has a
grant row; granting to the owner is refused by the service. Deleting a bucket
or a user deletes their grants through the foreign keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.metadata.tables import buckets, grants, users, utcnow

LEVELS = ("read", "write", "admin")


@dataclass(frozen=True, slots=True)
class GrantRecord:
    bucket_id: int
    user_id: int
    user_name: str
    level: str  # "read" | "write" | "admin"
    created_at: datetime
    granted_by: int | None = None
    #: The granter's name, or None once that user is deleted (grants outlive who made them).
    granted_by_name: str | None = None


def _grants_with_names(bucket_id: int):  # type: ignore[no-untyped-def]
    granter = users.alias("granter")
    return (
        select(grants, users.c.name.label("user_name"), granter.c.name.label("granted_by_name"))
        .join(users, users.c.id == grants.c.user_id)
        .outerjoin(granter, granter.c.id == grants.c.granted_by)
        .where(grants.c.bucket_id == bucket_id)
    )


async def get_level(conn: AsyncConnection, bucket_id: int, user_id: int) -> str | None:
    stmt = select(grants.c.level).where(grants.c.bucket_id == bucket_id, grants.c.user_id == user_id)
    return (await conn.execute(stmt)).scalar_one_or_none()


async def list_grants(conn: AsyncConnection, bucket_id: int, user_id: int | None = None) -> list[GrantRecord]:
    """A bucket's grants by user name (or only ``user_id``'s), with the granters' names."""
    stmt = _grants_with_names(bucket_id).order_by(users.c.name)
    if user_id is not None:
        stmt = stmt.where(grants.c.user_id == user_id)
    return [
        GrantRecord(
            r.bucket_id, r.user_id, r.user_name, r.level, r.created_at, r.granted_by, r.granted_by_name
        )
        for r in await conn.execute(stmt)
    ]


async def set_grant(
    conn: AsyncConnection, bucket_id: int, user_id: int, level: str, granted_by: int | None
) -> GrantRecord:
    """Give ``user_id`` exactly ``level`` on the bucket, replacing any earlier grant.

    Delete-then-insert in the caller's transaction, rather than an upsert,
    because the two engines spell upserts differently and a grant change is
    rare; the primary key (bucket, user) keeps a concurrent duplicate out.
    """
    if level not in LEVELS:
        raise ValueError(f"grant level {level!r} is not one of {LEVELS}")
    await conn.execute(delete(grants).where(grants.c.bucket_id == bucket_id, grants.c.user_id == user_id))
    await conn.execute(
        grants.insert().values(
            bucket_id=bucket_id, user_id=user_id, level=level, granted_by=granted_by, created_at=utcnow()
        )
    )
    return (await list_grants(conn, bucket_id, user_id))[0]


async def delete_grant(conn: AsyncConnection, bucket_id: int, user_id: int) -> bool:
    """Remove a grant; False when there was none."""
    stmt = delete(grants).where(grants.c.bucket_id == bucket_id, grants.c.user_id == user_id)
    return (await conn.execute(stmt.returning(grants.c.user_id))).first() is not None


async def granted_bucket_ids(conn: AsyncConnection, user_id: int) -> dict[int, str]:
    """Bucket id → level for every grant the user holds."""
    stmt = select(grants.c.bucket_id, grants.c.level).where(grants.c.user_id == user_id)
    return {r.bucket_id: r.level for r in await conn.execute(stmt)}


async def owner_names(conn: AsyncConnection, bucket_ids: Iterable[int]) -> dict[int, str]:
    """Bucket id → its owner's name, in one query (bucket listings show who owns what)."""
    wanted = sorted(set(bucket_ids))
    if not wanted:
        return {}
    stmt = (
        select(buckets.c.id, users.c.name)
        .join(users, users.c.id == buckets.c.owner_id)
        .where(buckets.c.id.in_(wanted))
    )
    return {r.id: r.name for r in await conn.execute(stmt)}
