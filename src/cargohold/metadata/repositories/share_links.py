"""Share links: public handles on one object or on every object under a prefix.

Only a SHA-256 of a link's token is stored (the token is shown once), so a
lookup by token is a lookup by hash. The download counter is advanced by one
conditional ``UPDATE``, never read-modify-write: that statement is what stops
concurrent downloads of a limited link from getting past its limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cargohold.errors import Conflict
from cargohold.metadata.repositories._sql import insert_or_nothing
from cargohold.metadata.tables import buckets, share_links, users, utcnow


@dataclass(frozen=True, slots=True)
class ShareLink:
    """A stored link, with the names of its bucket and creator for display."""

    id: str
    owner_id: int
    owner_name: str
    bucket_id: int
    bucket_name: str
    key: str | None  # exactly one of key and prefix is set
    prefix: str | None
    version_id: str | None
    expires_at: datetime | None
    max_downloads: int | None
    downloads: int
    created_at: datetime
    revoked_at: datetime | None = None
    password_hash: str | None = field(default=None, repr=False)

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None

    def state(self, now: datetime) -> str:
        """``active``, or why the link no longer serves: ``revoked``, ``expired``, ``exhausted``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.max_downloads is not None and self.downloads >= self.max_downloads:
            return "exhausted"
        return "active"


def _select() -> Select:
    return (
        select(share_links, buckets.c.name.label("bucket_name"), users.c.name.label("owner_name"))
        .join(buckets, buckets.c.id == share_links.c.bucket_id)
        .join(users, users.c.id == share_links.c.owner_id)
    )


def _link(row: Row) -> ShareLink:
    return ShareLink(
        id=row.id,
        owner_id=row.owner_id,
        owner_name=row.owner_name,
        bucket_id=row.bucket_id,
        bucket_name=row.bucket_name,
        key=row.key,
        prefix=row.prefix,
        version_id=row.version_id,
        expires_at=row.expires_at,
        max_downloads=row.max_downloads,
        downloads=row.downloads,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        password_hash=row.password_hash,
    )


async def create_link(
    conn: AsyncConnection,
    link_id: str,
    token_hash: str,
    owner_id: int,
    bucket_id: int,
    *,
    key: str | None = None,
    prefix: str | None = None,
    version_id: str | None = None,
    password_hash: str | None = None,
    expires_at: datetime | None = None,
    max_downloads: int | None = None,
) -> ShareLink:
    """Store a new link; ``Conflict`` if its id or token hash is taken (a broken random source)."""
    if (key is None) == (prefix is None):
        raise ValueError("a share link names exactly one of key and prefix")
    values = {
        "id": link_id,
        "token_hash": token_hash,
        "owner_id": owner_id,
        "bucket_id": bucket_id,
        "key": key,
        "prefix": prefix,
        "version_id": version_id,
        "password_hash": password_hash,
        "expires_at": expires_at,
        "max_downloads": max_downloads,
        "downloads": 0,
        "created_at": utcnow(),
    }
    inserted = await conn.execute(insert_or_nothing(conn, share_links, values).returning(share_links.c.id))
    if inserted.first() is None:
        raise Conflict("a share link with this id or token already exists")
    found = await get_link(conn, link_id)
    assert found is not None
    return found


async def get_link(conn: AsyncConnection, link_id: str) -> ShareLink | None:
    row = (await conn.execute(_select().where(share_links.c.id == link_id))).first()
    return _link(row) if row else None


async def get_link_by_token_hash(conn: AsyncConnection, token_hash: str) -> ShareLink | None:
    row = (await conn.execute(_select().where(share_links.c.token_hash == token_hash))).first()
    return _link(row) if row else None


async def list_links(
    conn: AsyncConnection, *, owner_id: int | None = None, bucket_id: int | None = None
) -> list[ShareLink]:
    """Every link, or those of one creator and/or one bucket, newest first."""
    stmt = _select().order_by(share_links.c.created_at.desc(), share_links.c.id)
    if owner_id is not None:
        stmt = stmt.where(share_links.c.owner_id == owner_id)
    if bucket_id is not None:
        stmt = stmt.where(share_links.c.bucket_id == bucket_id)
    return [_link(r) for r in await conn.execute(stmt)]


async def revoke_link(conn: AsyncConnection, link_id: str, *, at: datetime | None = None) -> ShareLink | None:
    """Mark a link revoked (idempotent: the first revocation time is kept); None if unknown."""
    await conn.execute(
        update(share_links)
        .where(share_links.c.id == link_id, share_links.c.revoked_at.is_(None))
        .values(revoked_at=at or utcnow())
    )
    return await get_link(conn, link_id)


async def claim_download(conn: AsyncConnection, link_id: str, now: datetime) -> int | None:
    """Count one download if the link still serves at ``now``; the new count, or None if it does not.

    One statement that tests and increments together: of any number of
    concurrent callers on a link with room for n more downloads, exactly n
    get a count back, on SQLite (one writer) and on PostgreSQL (the row lock
    makes the loser re-check ``downloads < max_downloads`` after the winner
    commits).
    """
    stmt = (
        update(share_links)
        .where(
            share_links.c.id == link_id,
            share_links.c.revoked_at.is_(None),
            share_links.c.expires_at.is_(None) | (share_links.c.expires_at > now),
            share_links.c.max_downloads.is_(None) | (share_links.c.downloads < share_links.c.max_downloads),
        )
        .values(downloads=share_links.c.downloads + 1)
        .returning(share_links.c.downloads)
    )
    return (await conn.execute(stmt)).scalar_one_or_none()
