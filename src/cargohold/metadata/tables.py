"""The metadata schema as SQLAlchemy Core tables.

This module is what repositories query against; the schema itself is created
and changed only by the Alembic migrations in ``migrations/versions``, which
deliberately do not import this file (a migration must stay what it was when
it shipped). ``tests/integration/test_metadata.py`` checks the two agree.

Portability choices, each because SQLite and PostgreSQL differ:

* object keys sort by code point on both engines: SQLite's default ``BINARY``
  collation compares UTF-8 bytes, PostgreSQL needs ``COLLATE "C"``. Listing
  and cursor pagination depend on this matching Python's ``str`` ordering;
* 64-bit surrogate keys are ``INTEGER`` on SQLite, the only type it will
  auto-increment, declared ``AUTOINCREMENT`` so an id is never reused after a
  delete (PostgreSQL sequences never reuse): a replaced object version or a
  deleted bucket must not come back under the id a job still names;
* timestamps are timezone-aware UTC in Python everywhere; SQLite stores them
  naive and :class:`UTCDateTime` puts the zone back on read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """The one clock the metadata store uses: aware, UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every engine.

    Naive datetimes are rejected on the way in: guessing their zone is how
    lease and expiry comparisons silently go wrong by hours.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the metadata store needs aware UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # Stored as text; one fixed zone keeps string comparison correct.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


BigId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit surrogate key that SQLite can still auto-increment (rowid alias)."""

ObjectKey = String(1024).with_variant(String(1024, collation="C"), "postgresql")
"""Object keys compare by code point: see the module docstring."""

JsonDoc = JSON().with_variant(JSONB(), "postgresql")


def _ts(name: str, *, nullable: bool = False, **kw: Any) -> Column[datetime]:
    return Column(name, UTCDateTime(), nullable=nullable, **kw)


api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    _ts("created_at", default=utcnow),
    _ts("expires_at", nullable=True),
    _ts("revoked_at", nullable=True),
)

buckets = Table(
    "buckets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(63), nullable=False),
    Column("layout", String(64), nullable=False),
    _ts("created_at", default=utcnow),
    UniqueConstraint("name"),
    sqlite_autoincrement=True,
)

objects = Table(
    "objects",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("bucket_id", Integer, ForeignKey("buckets.id"), nullable=False),
    Column("key", ObjectKey, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("etag", String(128), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("md5", String(64), nullable=True),
    Column("sha256", String(128), nullable=True),
    Column("inline_data", LargeBinary, nullable=True),
    _ts("created_at", default=utcnow),
    UniqueConstraint("bucket_id", "key"),
    sqlite_autoincrement=True,
)

parts = Table(
    "parts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("object_id", BigId, ForeignKey("objects.id", ondelete="SET NULL"), nullable=True, index=True),
    Column("part_number", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("layout", String(64), nullable=False),
    Column("block_size", Integer, nullable=False),
    Column("etag", String(128), nullable=False),
    _ts("created_at", default=utcnow),
    Column("upload_id", String(32), nullable=True),
    Index("ix_parts_upload_id_part_number", "upload_id", "part_number"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("bucket_id", Integer, nullable=False, index=True),
    Column("key", ObjectKey, nullable=False),
    Column("status", String(16), nullable=False),
    Column("protocol", String(16), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("total_size", BigInteger, nullable=True),
    Column("part_size", BigInteger, nullable=True),
    Column("expected_md5", String(64), nullable=True),
    Column("expected_sha256", String(128), nullable=True),
    Column("metadata", JsonDoc, nullable=False, default=dict),
    Column("concat", String(16), nullable=True),
    Column("error", Text, nullable=True),
    Column("owner", String(64), nullable=True),
    _ts("created_at", default=utcnow),
    _ts("updated_at", default=utcnow),
    _ts("expires_at"),
    CheckConstraint("status IN ('PENDING', 'LOADING', 'UPLOADED', 'FAILED', 'DELETED')", name="status"),
    Index("ix_uploads_status_expires_at", "status", "expires_at"),
)

part_shares = Table(
    "part_shares",
    metadata,
    Column("part_id", String(32), ForeignKey("parts.id", ondelete="CASCADE"), nullable=False),
    Column("share_index", Integer, nullable=False),
    Column("node_id", Integer, ForeignKey("nodes.id"), nullable=False, index=True),
    Column("state", String(16), nullable=False, default="ok"),
    PrimaryKeyConstraint("part_id", "share_index"),
    CheckConstraint("state IN ('ok', 'missing')", name="state"),
)

nodes = Table(
    "nodes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", String(255), nullable=False),
    Column("zone", String(64), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("healthy", Boolean, nullable=False, default=True),
    Column("capacity", BigInteger, nullable=False, default=0),
    Column("used", BigInteger, nullable=False, default=0),
    Column("free", BigInteger, nullable=False, default=0),
    Column("shares", BigInteger, nullable=False, default=0),
    _ts("last_seen", nullable=True),
    _ts("created_at", default=utcnow),
    UniqueConstraint("url"),
    sqlite_autoincrement=True,
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("payload", JsonDoc, nullable=False),
    Column("state", String(16), nullable=False, default="queued"),
    Column("attempts", Integer, nullable=False, default=0),
    _ts("run_after", default=utcnow),
    _ts("lease_until", nullable=True),
    Column("last_error", Text, nullable=True),
    _ts("created_at", default=utcnow),
    CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state"),
    Index("ix_jobs_state_run_after", "state", "run_after"),
    sqlite_autoincrement=True,
)
