"""S3 access keys: rows hold the secret encrypted by the caller (``service/s3keys.py``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.domain.model import S3Key
from cargohold.errors import Conflict
from cargohold.metadata.repositories._sql import insert_or_nothing
from cargohold.metadata.tables import s3_keys, utcnow


def _key(row: Row) -> S3Key:
    return S3Key(
        access_key_id=row.access_key_id,
        user_id=row.user_id,
        name=row.name,
        secret_nonce=bytes(row.secret_nonce),
        secret_ciphertext=bytes(row.secret_ciphertext),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


async def create_s3_key(conn: AsyncConnection, key: S3Key) -> S3Key:
    """Store a new key; ``Conflict`` if its access key id is taken."""
    values = {
        "access_key_id": key.access_key_id,
        "user_id": key.user_id,
        "name": key.name,
        "secret_nonce": key.secret_nonce,
        "secret_ciphertext": key.secret_ciphertext,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
    }
    inserted = await conn.execute(insert_or_nothing(conn, s3_keys, values).returning(s3_keys))
    row = inserted.first()
    if row is None:
        raise Conflict(f"S3 access key id {key.access_key_id!r} already exists")
    return _key(row)


async def get_s3_key(conn: AsyncConnection, access_key_id: str) -> S3Key | None:
    row = (await conn.execute(select(s3_keys).where(s3_keys.c.access_key_id == access_key_id))).first()
    return _key(row) if row else None


async def list_s3_keys(conn: AsyncConnection, user_id: int | None = None) -> list[S3Key]:
    """Every S3 key, or those of one user, oldest first."""
    stmt = select(s3_keys).order_by(s3_keys.c.created_at, s3_keys.c.access_key_id)
    if user_id is not None:
        stmt = stmt.where(s3_keys.c.user_id == user_id)
    return [_key(r) for r in await conn.execute(stmt)]


async def revoke_s3_key(conn: AsyncConnection, access_key_id: str, *, at: datetime | None = None) -> None:
    """Mark a key revoked (idempotent: the first revocation time is kept)."""
    await conn.execute(
        update(s3_keys)
        .where(s3_keys.c.access_key_id == access_key_id, s3_keys.c.revoked_at.is_(None))
        .values(revoked_at=at or utcnow())
    )


async def count_s3_keys(conn: AsyncConnection) -> int:
    """How many S3 keys exist, revoked and expired ones included (start-up makes the first)."""
    return int((await conn.execute(select(func.count()).select_from(s3_keys))).scalar_one())
