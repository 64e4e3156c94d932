"""Refresh tokens: one row per token, grouped in families (one family per sign-in).

A refresh is a rotation: the presented token is marked used and a new one of
the same family is stored. A family is *live* while one of its tokens is not
revoked; revoking always revokes every token of the family, so "some row
without ``revoked_at``" is the whole test. Secrets are stored only as hashes
made by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.metadata.tables import refresh_tokens


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    id: str
    family_id: str
    user_id: int
    secret_hash: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


def _record(row: Row) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        id=row.id,
        family_id=row.family_id,
        user_id=row.user_id,
        secret_hash=row.secret_hash,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        revoked_at=row.revoked_at,
    )


async def add_refresh_token(conn: AsyncConnection, record: RefreshTokenRecord) -> None:
    await conn.execute(
        refresh_tokens.insert().values(
            id=record.id,
            family_id=record.family_id,
            user_id=record.user_id,
            secret_hash=record.secret_hash,
            created_at=record.created_at,
            expires_at=record.expires_at,
        )
    )


async def get_refresh_token(conn: AsyncConnection, token_id: str) -> RefreshTokenRecord | None:
    row = (await conn.execute(select(refresh_tokens).where(refresh_tokens.c.id == token_id))).first()
    return _record(row) if row else None


async def mark_used(conn: AsyncConnection, token_id: str, at: datetime) -> bool:
    """Mark a token used, only if it is neither used nor revoked yet.

    False means another request got there first (or the family was revoked
    meanwhile): the caller must treat the presentation as a reuse. On
    PostgreSQL the conditional update waits for a concurrent one and then
    re-checks, so exactly one of two racing refreshes wins.
    """
    stmt = (
        update(refresh_tokens)
        .where(
            refresh_tokens.c.id == token_id,
            refresh_tokens.c.used_at.is_(None),
            refresh_tokens.c.revoked_at.is_(None),
        )
        .values(used_at=at)
        .returning(refresh_tokens.c.id)
    )
    return (await conn.execute(stmt)).first() is not None


async def revoke_family(conn: AsyncConnection, family_id: str, at: datetime) -> bool:
    """Revoke every token of a family; True if any was live until now."""
    stmt = (
        update(refresh_tokens)
        .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=at)
        .returning(refresh_tokens.c.id)
    )
    return bool((await conn.execute(stmt)).all())


async def revoke_user_families(
    conn: AsyncConnection, user_id: int, at: datetime, *, keep: str | None = None
) -> list[str]:
    """Revoke every live family of a user except ``keep``; returns the families revoked."""
    stmt = (
        update(refresh_tokens)
        .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=at)
        .returning(refresh_tokens.c.family_id)
    )
    if keep is not None:
        stmt = stmt.where(refresh_tokens.c.family_id != keep)
    return sorted(set((await conn.execute(stmt)).scalars()))


async def family_live(conn: AsyncConnection, family_id: str) -> bool:
    """True while the family is not revoked (and its user still exists)."""
    stmt = (
        select(refresh_tokens.c.id)
        .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .limit(1)
    )
    return (await conn.execute(stmt)).first() is not None


async def live_families(conn: AsyncConnection, user_id: int) -> list[str]:
    """The user's families that are not revoked."""
    stmt = (
        select(refresh_tokens.c.family_id)
        .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
        .distinct()
    )
    return sorted((await conn.execute(stmt)).scalars())
