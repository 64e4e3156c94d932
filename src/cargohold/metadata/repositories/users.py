"""Users: who may sign in, with which role, and how much they may store.

Password hashes are made by the caller (``service/passwords.py``); this
module only stores them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import ADMIN, User
from cargohold.errors import UserExists
from cargohold.metadata.repositories._sql import insert_or_nothing
from cargohold.metadata.tables import buckets, objects, parts, uploads, users, utcnow


def _user(row: Row) -> User:
    return User(
        id=row.id,
        name=row.name,
        role=row.role,
        disabled=row.disabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
        quota_bytes=row.quota_bytes,
        password_hash=row.password_hash,
    )


async def create_user(
    conn: AsyncConnection,
    name: str,
    role: str,
    password_hash: str | None,
    quota_bytes: int | None = None,
) -> User:
    """Store a new user; ``Conflict`` (``user_exists``) if the name is taken."""
    now = utcnow()
    values = {
        "name": name,
        "role": role,
        "password_hash": password_hash,
        "disabled": False,
        "quota_bytes": quota_bytes,
        "created_at": now,
        "updated_at": now,
    }
    row = (await conn.execute(insert_or_nothing(conn, users, values).returning(users))).first()
    if row is None:
        raise UserExists(f"user {name!r} already exists", user=name)
    return _user(row)


async def get_user(conn: AsyncConnection, user_id: int) -> User | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return _user(row) if row else None


async def get_user_by_name(conn: AsyncConnection, name: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.name == name))).first()
    return _user(row) if row else None


async def list_users(conn: AsyncConnection) -> list[User]:
    return [_user(r) for r in await conn.execute(select(users).order_by(users.c.name))]


async def update_user(conn: AsyncConnection, user_id: int, **changes: Any) -> User | None:
    """Change columns of a user (name, role, disabled, quota_bytes, password_hash)."""
    stmt = update(users).where(users.c.id == user_id).values(**changes, updated_at=utcnow())
    row = (await conn.execute(stmt.returning(users))).first()
    return _user(row) if row else None


async def delete_user(conn: AsyncConnection, user_id: int) -> bool:
    deleted = await conn.execute(delete(users).where(users.c.id == user_id).returning(users.c.id))
    return deleted.first() is not None


async def count_users(conn: AsyncConnection, *, role: str | None = None, enabled_only: bool = False) -> int:
    stmt = select(func.count()).select_from(users)
    if role is not None:
        stmt = stmt.where(users.c.role == role)
    if enabled_only:
        stmt = stmt.where(~users.c.disabled)
    return int((await conn.execute(stmt)).scalar_one())


async def lock_enabled_admins(conn: AsyncConnection) -> list[int]:
    """Ids of the enabled admins, their rows locked until the transaction ends (PostgreSQL).

    Call before disabling, demoting or deleting an admin, and refuse if none
    would remain: with the rows locked, two admins removing each other at
    the same moment cannot both succeed. SQLite has a single writer anyway.
    """
    stmt = select(users.c.id).where(users.c.role == ADMIN, ~users.c.disabled).with_for_update()
    return [int(i) for i in (await conn.execute(stmt)).scalars()]


async def bytes_owned(conn: AsyncConnection, user_id: int) -> int:
    """Bytes stored in buckets the user owns: every version, plus parts of open uploads.

    This is what a quota limits: the owner of a bucket pays for it, whoever
    wrote the bytes.
    """
    owned = select(buckets.c.id).where(buckets.c.owner_id == user_id)
    in_objects = select(func.coalesce(func.sum(objects.c.size), 0)).where(objects.c.bucket_id.in_(owned))
    open_uploads = select(uploads.c.id).where(uploads.c.bucket_id.in_(owned))
    in_uploads = select(func.coalesce(func.sum(parts.c.size), 0)).where(parts.c.upload_id.in_(open_uploads))
    return int((await conn.execute(in_objects)).scalar_one()) + int(
        (await conn.execute(in_uploads)).scalar_one()
    )
