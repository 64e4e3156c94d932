"""Grants: a user's access level on a bucket somebody else owns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.metadata.tables import grants, users, utcnow


@dataclass(frozen=True, slots=True)
class GrantRecord:
    bucket_id: int
    user_id: int
    user_name: str
    level: str  # "read" | "write" | "admin"
    created_at: datetime
    granted_by: int | None = None


async def get_level(conn: AsyncConnection, bucket_id: int, user_id: int) -> str | None:
    stmt = select(grants.c.level).where(grants.c.bucket_id == bucket_id, grants.c.user_id == user_id)
    return (await conn.execute(stmt)).scalar_one_or_none()


async def list_grants(conn: AsyncConnection, bucket_id: int) -> list[GrantRecord]:
    stmt = (
        select(grants, users.c.name.label("user_name"))
        .join(users, users.c.id == grants.c.user_id)
        .where(grants.c.bucket_id == bucket_id)
        .order_by(users.c.name)
    )
    return [
        GrantRecord(r.bucket_id, r.user_id, r.user_name, r.level, r.created_at, r.granted_by)
        for r in await conn.execute(stmt)
    ]


async def set_grant(
    conn: AsyncConnection, bucket_id: int, user_id: int, level: str, granted_by: int | None
) -> None:
    """Give ``user_id`` exactly ``level`` on the bucket (replacing any earlier grant)."""
    await conn.execute(delete(grants).where(grants.c.bucket_id == bucket_id, grants.c.user_id == user_id))
    await conn.execute(
        grants.insert().values(
            bucket_id=bucket_id, user_id=user_id, level=level, granted_by=granted_by, created_at=utcnow()
        )
    )


async def delete_grant(conn: AsyncConnection, bucket_id: int, user_id: int) -> bool:
    stmt = delete(grants).where(grants.c.bucket_id == bucket_id, grants.c.user_id == user_id)
    return (await conn.execute(stmt.returning(grants.c.user_id))).first() is not None


async def granted_bucket_ids(conn: AsyncConnection, user_id: int) -> dict[int, str]:
    """Bucket id → level for every grant the user holds."""
    stmt = select(grants.c.bucket_id, grants.c.level).where(grants.c.user_id == user_id)
    return {r.bucket_id: r.level for r in await conn.execute(stmt)}
