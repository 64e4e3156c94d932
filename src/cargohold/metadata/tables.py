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
    Float,
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
    text,
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


users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    # NULL: no password sign-in (only API keys), e.g. an admin made by a migration.
    Column("password_hash", String(200), nullable=True),
    Column("role", String(16), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("quota_bytes", BigInteger, nullable=True),
    _ts("created_at", default=utcnow),
    _ts("updated_at", default=utcnow),
    UniqueConstraint("name"),
    CheckConstraint("role IN ('admin', 'user')", name="role"),
    sqlite_autoincrement=True,
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(200), nullable=False),
    _ts("created_at", default=utcnow),
    _ts("expires_at", nullable=True),
    _ts("revoked_at", nullable=True),
)

# S3 access keys: SigV4 needs the secret itself, so it is stored encrypted (AES-GCM under a key
# derived from the cluster secret; the nonce is per row), never hashed (see service/s3keys.py).
s3_keys = Table(
    "s3_keys",
    metadata,
    Column("access_key_id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("secret_nonce", LargeBinary, nullable=False),
    Column("secret_ciphertext", LargeBinary, nullable=False),
    _ts("created_at", default=utcnow),
    _ts("expires_at", nullable=True),
    _ts("revoked_at", nullable=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    # Every token rotated from one sign-in shares its family; reuse revokes the family.
    Column("family_id", String(32), nullable=False, index=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False),
    _ts("created_at", default=utcnow),
    _ts("expires_at"),
    _ts("used_at", nullable=True),
    _ts("revoked_at", nullable=True),
)

throttles = Table(
    "throttles",
    metadata,
    # What is throttled, e.g. "login:user:alice", "login:addr:127.0.0.1", "share:link:<id>"
    # (see service/throttle.py).
    Column("key", String(255), primary_key=True),
    Column("failures", Integer, nullable=False, default=0),
    # The latest counted failure: the count is forgotten a policy's forget_after later.
    _ts("window_start"),
    _ts("blocked_until", nullable=True),
)

buckets = Table(
    "buckets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(63), nullable=False),
    Column("layout", String(64), nullable=False),
    Column("owner_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("versioning", String(16), nullable=False, default="off"),
    _ts("created_at", default=utcnow),
    UniqueConstraint("name"),
    CheckConstraint("versioning IN ('off', 'enabled', 'suspended')", name="versioning"),
    sqlite_autoincrement=True,
)

grants = Table(
    "grants",
    metadata,
    Column("bucket_id", Integer, ForeignKey("buckets.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("level", String(8), nullable=False),
    Column("granted_by", Integer, nullable=True),
    _ts("created_at", default=utcnow),
    PrimaryKeyConstraint("bucket_id", "user_id"),
    CheckConstraint("level IN ('read', 'write', 'admin')", name="level"),
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
    # Versions: every row is one version; exactly one per key is the latest.
    Column("version_id", String(32), nullable=False),
    Column("is_latest", Boolean, nullable=False, default=True),
    Column("delete_marker", Boolean, nullable=False, default=False),
    # False: the key's one unversioned ("null") version, replaced in place by
    # writes while versioning is off or suspended.
    Column("versioned", Boolean, nullable=False, default=False),
    # Response headers stored with the object (S3 metadata): lower-case name -> value, or NULL.
    Column("headers", JsonDoc, nullable=True),
    UniqueConstraint("version_id"),
    Index(
        "uq_objects_latest",
        "bucket_id",
        "key",
        unique=True,
        sqlite_where=text("is_latest"),
        postgresql_where=text("is_latest"),
    ),
    Index("ix_objects_bucket_id_key_id", "bucket_id", "key", "id"),
    # The keys a listing shows (migration 0009 says why the predicate is spelt twice).
    Index(
        "ix_objects_live",
        "bucket_id",
        "key",
        sqlite_where=text("is_latest = 1 AND delete_marker = 0"),
        postgresql_where=text("is_latest AND NOT delete_marker"),
    ),
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

#: Parts a version uses without owning them (a copy made by reference: S3 CopyObject). A part
#: is owned by one version (``parts.object_id``); on the owner's removal a linking version takes
#: it over (``repositories.links``), so the part lives while anything refers to it.
part_links = Table(
    "part_links",
    metadata,
    Column("object_id", BigId, ForeignKey("objects.id", ondelete="CASCADE"), nullable=False),
    Column("part_number", Integer, nullable=False),
    Column("part_id", String(32), ForeignKey("parts.id"), nullable=False, index=True),
    Column("offset", BigInteger, nullable=False),
    PrimaryKeyConstraint("object_id", "part_number"),
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
    # The headers the completed object will be stored with (S3 multipart), or NULL.
    Column("headers", JsonDoc, nullable=True),
    CheckConstraint("status IN ('PENDING', 'LOADING', 'UPLOADED', 'FAILED', 'DELETED')", name="status"),
    Index("ix_uploads_status_expires_at", "status", "expires_at"),
)

part_shares = Table(
    "part_shares",
    metadata,
    Column("part_id", String(32), ForeignKey("parts.id", ondelete="CASCADE"), nullable=False),
    Column("share_index", Integer, nullable=False),
    # NULL with state "missing": a degraded write had no node for this share yet.
    Column("node_id", Integer, ForeignKey("nodes.id"), nullable=True, index=True),
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
    # Life state set by admins and workers; up/down is ``healthy``.
    Column("state", String(16), nullable=False, default="normal", server_default="normal"),
    UniqueConstraint("url"),
    CheckConstraint("state IN ('normal', 'draining', 'retired', 'lost')", name="state"),
    sqlite_autoincrement=True,
)

share_links = Table(
    "share_links",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("bucket_id", Integer, ForeignKey("buckets.id", ondelete="CASCADE"), nullable=False, index=True),
    # Exactly one of key (one object) and prefix (every object under it) is set.
    Column("key", ObjectKey, nullable=True),
    Column("prefix", ObjectKey, nullable=True),
    Column("version_id", String(32), nullable=True),
    Column("password_hash", String(200), nullable=True),
    _ts("expires_at", nullable=True),
    Column("max_downloads", Integer, nullable=True),
    Column("downloads", Integer, nullable=False, default=0),
    _ts("created_at", default=utcnow),
    _ts("revoked_at", nullable=True),
    UniqueConstraint("token_hash"),
    CheckConstraint("(key IS NULL) <> (prefix IS NULL)", name="target"),
)

history = Table(
    "history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _ts("at", default=utcnow),
    # No foreign keys: the record outlives deleted users and buckets.
    Column("user_id", Integer, nullable=True),
    Column("user_name", String(64), nullable=True),
    Column("action", String(32), nullable=False),
    Column("bucket_id", Integer, nullable=True),
    Column("bucket", String(63), nullable=True),
    Column("key", ObjectKey, nullable=True),
    Column("version_id", String(32), nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("client", String(64), nullable=True),
    Column("user_agent", String(255), nullable=True),
    Column("result", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("detail", JsonDoc, nullable=True),
    Index("ix_history_user_id_id", "user_id", "id"),
    Index("ix_history_bucket_id_id", "bucket_id", "id"),
    Index("ix_history_at", "at"),
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
    # Claimed highest first (repair: parts with the fewest healthy shares).
    Column("priority", Integer, nullable=False, default=0, server_default="0"),
    # At most one queued job per dedupe key (see uq_jobs_dedupe_queued).
    Column("dedupe", String(200), nullable=True),
    Column("progress_bytes", BigInteger, nullable=False, default=0, server_default="0"),
    Column("total_bytes", BigInteger, nullable=True),
    Column("errors", Integer, nullable=False, default=0, server_default="0"),
    _ts("started_at", nullable=True),
    _ts("finished_at", nullable=True),
    CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state"),
    Index("ix_jobs_state_run_after", "state", "run_after"),
    Index("ix_jobs_kind_state", "kind", "state"),
    Index(
        "uq_jobs_dedupe_queued",
        "dedupe",
        unique=True,
        sqlite_where=text("state = 'queued'"),
        postgresql_where=text("state = 'queued'"),
    ),
    sqlite_autoincrement=True,
)

cluster_settings = Table(
    "cluster_settings",
    metadata,
    # e.g. "worker": {"repair_bandwidth": 0, ...}; changed at run time by admins.
    Column("key", String(64), primary_key=True),
    Column("value", JsonDoc, nullable=False),
    _ts("updated_at", default=utcnow),
)

zones = Table(
    "zones",
    metadata,
    Column("name", String(64), primary_key=True),
    # Both or neither: a zone without coordinates is only ever chosen by its networks.
    Column("latitude", Float, nullable=True),
    Column("longitude", Float, nullable=True),
    # Client networks (CIDR strings) of this zone, matched in memory by every gateway.
    Column("networks", JsonDoc, nullable=False, default=list),
    _ts("updated_at", default=utcnow),
    CheckConstraint("(latitude IS NULL) = (longitude IS NULL)", name="coordinates"),
)

gateways = Table(
    "gateways",
    metadata,
    # The URL clients are redirected to; each gateway refreshes its row on a heartbeat.
    Column("url", String(255), primary_key=True),
    Column("zone", String(64), nullable=False, index=True),
    _ts("started_at", default=utcnow),
    _ts("last_seen", default=utcnow),
)

# The event outbox (migration 0007): appended in the transaction of the change it tells of.
# No foreign keys: an event outlives its user and bucket. Ids ascend in commit order as
# readers see them (repositories/events.py).
events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _ts("at", default=utcnow),
    Column("type", String(32), nullable=False),
    Column("actor_id", Integer, nullable=True),
    Column("bucket_id", Integer, nullable=True),
    Column("bucket", String(63), nullable=True),
    Column("key", ObjectKey, nullable=True),
    Column("version_id", String(32), nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("detail", JsonDoc, nullable=True),
    Index("ix_events_at", "at"),
    sqlite_autoincrement=True,
)

# Webhook subscriptions: the secret is sealed like an S3 secret (service/s3keys.py's SecretBox,
# the webhook id as associated data); ``cursor`` is the last event id the subscription is done
# with, so deliveries go out in order; ``lease_until`` gives it to one worker at a time.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("url", String(2048), nullable=False),
    Column("event_types", JsonDoc, nullable=False),
    Column("bucket", String(63), nullable=True),
    Column("secret_nonce", LargeBinary, nullable=False),
    Column("secret_ciphertext", LargeBinary, nullable=False),
    Column("state", String(16), nullable=False, default="active"),
    _ts("created_at", default=utcnow),
    _ts("disabled_at", nullable=True),
    Column("disabled_reason", String(255), nullable=True),
    Column("cursor", BigInteger, nullable=False, default=0),
    # Failed attempts at the event after ``cursor``; reset by a success.
    Column("attempts", Integer, nullable=False, default=0),
    _ts("failing_since", nullable=True),
    _ts("next_attempt_at", nullable=True),
    _ts("lease_until", nullable=True),
    Column("delivered", BigInteger, nullable=False, default=0),
    CheckConstraint("state IN ('active', 'disabled')", name="state"),
    Index("ix_webhooks_state_next_attempt_at", "state", "next_attempt_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("webhook_id", String(32), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    # NULL for a ping, which is no event of the log.
    Column("event_id", BigInteger, nullable=True),
    Column("event_type", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    _ts("at", default=utcnow),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Float, nullable=True),
    Column("error", String(500), nullable=True),
    Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),
    Index("ix_webhook_deliveries_at", "at"),
    sqlite_autoincrement=True,
)

#: Background imports (``domain/imports.py``): a URL a worker fetches into an object through
#: an upload session of protocol "import" (``upload_id``), whose parts are the durable progress.
imports = Table(
    "imports",
    metadata,
    # The listing order and cursor; ``id`` is what clients see.
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False),
    # No foreign keys, as for uploads: an import's record outlives its user and bucket.
    Column("user_id", Integer, nullable=False),
    Column("owner", String(64), nullable=False),
    Column("bucket_id", Integer, nullable=False),
    Column("bucket", String(63), nullable=False),
    Column("key", ObjectKey, nullable=False),
    Column("source", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("content_type", String(255), nullable=True),
    Column("expected_md5", String(32), nullable=True),
    Column("expected_sha256", String(64), nullable=True),
    Column("upload_id", String(32), nullable=True),
    Column("total_size", BigInteger, nullable=True),
    Column("bytes_done", BigInteger, nullable=False, default=0),
    Column("rate", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("resumes", Integer, nullable=False, default=0),
    Column("restarts", Integer, nullable=False, default=0),
    Column("validator", String(255), nullable=True),
    Column("fence", Integer, nullable=False, default=0),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("version_id", String(32), nullable=True),
    _ts("created_at", default=utcnow),
    _ts("updated_at", default=utcnow),
    _ts("started_at", nullable=True),
    _ts("finished_at", nullable=True),
    UniqueConstraint("id"),
    CheckConstraint("status IN ('PENDING', 'LOADING', 'UPLOADED', 'FAILED', 'DELETED')", name="status"),
    Index("ix_imports_user_id_seq", "user_id", "seq"),
    Index("ix_imports_status", "status"),
    sqlite_autoincrement=True,
)
