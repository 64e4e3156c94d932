"""API keys: the credentials table. Secrets are stored only as hashes made by the caller."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import ApiKey
from cargohold.errors import Conflict
from cargohold.metadata.repositories._sql import insert_or_nothing
from cargohold.metadata.tables import api_keys, utcnow


def _key(row: Row) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        user_id=row.user_id,
        name=row.name,
        secret_hash=row.secret_hash,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


async def create_key(
    conn: AsyncConnection,
    key_id: str,
    user_id: int,
    name: str,
    secret_hash: str,
    created_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> ApiKey:
    """Store a new key; ``Conflict`` if ``key_id`` is taken. ``created_at`` defaults to now."""
    values = {
        "key_id": key_id,
        "name": name,
        "secret_hash": secret_hash,
        "user_id": user_id,
        "created_at": created_at or utcnow(),
        "expires_at": expires_at,
    }
    inserted = await conn.execute(insert_or_nothing(conn, api_keys, values).returning(api_keys))
    row = inserted.first()
    if row is None:
        raise Conflict(f"API key id {key_id!r} already exists")
    return _key(row)


async def get_key(conn: AsyncConnection, key_id: str) -> ApiKey | None:
    row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))).first()
    return _key(row) if row else None


async def list_keys(conn: AsyncConnection, user_id: int | None = None) -> list[ApiKey]:
    """Every key, or those of one user, oldest first."""
    stmt = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if user_id is not None:
        stmt = stmt.where(api_keys.c.user_id == user_id)
    rows = await conn.execute(stmt)
    return [_key(r) for r in rows]


async def revoke_key(conn: AsyncConnection, key_id: str, *, at: datetime | None = None) -> bool:
    """Mark a key revoked (idempotent: the first revocation time is kept).

    Returns False when no such key exists.
    """
    await conn.execute(
        update(api_keys)
        .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=at or utcnow())
    )
    return await get_key(conn, key_id) is not None


async def count_keys(conn: AsyncConnection, *, active_only: bool = False) -> int:
    """How many keys exist (``active_only``: not revoked and not expired now).

    Start-up uses the plain count to decide whether to create the first admin key.
    """
    stmt = select(func.count()).select_from(api_keys)
    if active_only:
        now = utcnow()
        stmt = stmt.where(
            api_keys.c.revoked_at.is_(None),
            (api_keys.c.expires_at.is_(None)) | (api_keys.c.expires_at > now),
        )
    return int((await conn.execute(stmt)).scalar_one())
