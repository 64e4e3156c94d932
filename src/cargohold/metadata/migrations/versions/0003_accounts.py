"""Accounts and sharing: users, refresh tokens, throttles, grants, share links,
history, bucket owners and object versions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

Existing stores keep working: when keys or buckets exist, an ``admin`` user
is created without a password (the gateway sets one at start, see
``service/accounts.py``), every existing key acts as that user and every
existing bucket is owned by it. Every existing object becomes the latest,
unversioned version of its key.

SQLite rebuilds ``api_keys``, ``buckets`` and ``objects`` (it cannot drop a
column or a constraint in place); ``migrate.upgrade`` runs this with foreign
key enforcement off so the rebuild does not cascade into ``parts``.

``history`` is append-only: a trigger refuses UPDATE and DELETE on both
engines, so not even a bug in the gateway can rewrite the record.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ts = sa.DateTime(timezone=True)
_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_key = sa.String(1024).with_variant(sa.String(1024, collation="C"), "postgresql")
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# A rebuilt SQLite table must keep AUTOINCREMENT, or deleted ids could come back.
_KEEP_IDS = {"sqlite_autoincrement": True}


def upgrade() -> None:
    _create_account_tables()
    admin_id = _migration_admin()
    _attach_keys_and_buckets(admin_id)
    _version_objects()
    _create_sharing_tables()
    _create_history()


def _create_account_tables() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("updated_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
        sa.CheckConstraint("role IN ('admin', 'user')", name="ck_users_role"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("family_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("expires_at", _ts, nullable=False),
        sa.Column("used_at", _ts, nullable=True),
        sa.Column("revoked_at", _ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_refresh_tokens_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"])
    op.create_table(
        "throttles",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", _ts, nullable=False),
        sa.Column("blocked_until", _ts, nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_throttles"),
    )


def _migration_admin() -> int | None:
    """The user that owns what existed before accounts did (None on an empty store)."""
    bind = op.get_bind()
    existing = bind.execute(
        sa.text("SELECT (SELECT count(*) FROM api_keys) + (SELECT count(*) FROM buckets)")
    ).scalar_one()
    if not existing:
        return None
    users = sa.table(
        "users",
        sa.column("name"),
        sa.column("role"),
        sa.column("disabled"),
        sa.column("created_at"),
        sa.column("updated_at"),
    )
    now = sa.func.now() if bind.dialect.name == "postgresql" else sa.func.datetime("now")
    bind.execute(
        sa.insert(users).values(name="admin", role="admin", disabled=False, created_at=now, updated_at=now)
    )
    return int(bind.execute(sa.text("SELECT id FROM users WHERE name = 'admin'")).scalar_one())


def _attach_keys_and_buckets(admin_id: int | None) -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("buckets", table_kwargs=_KEEP_IDS) as batch:
        batch.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("versioning", sa.String(16), nullable=False, server_default="off"))
    if admin_id is not None:
        op.execute(sa.text("UPDATE api_keys SET user_id = :u").bindparams(u=admin_id))
        op.execute(sa.text("UPDATE buckets SET owner_id = :u").bindparams(u=admin_id))
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("user_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("role")
        batch.create_foreign_key(
            "fk_api_keys_user_id_users", "users", ["user_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index("ix_api_keys_user_id", ["user_id"])
    with op.batch_alter_table("buckets", table_kwargs=_KEEP_IDS) as batch:
        batch.alter_column("owner_id", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("versioning", existing_type=sa.String(16), server_default=None)
        batch.create_foreign_key("fk_buckets_owner_id_users", "users", ["owner_id"], ["id"])
        batch.create_index("ix_buckets_owner_id", ["owner_id"])
        batch.create_check_constraint("versioning", "versioning IN ('off', 'enabled', 'suspended')")


def _version_objects() -> None:
    with op.batch_alter_table("objects", table_kwargs=_KEEP_IDS) as batch:
        batch.add_column(sa.Column("version_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("is_latest", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("delete_marker", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("versioned", sa.Boolean(), nullable=False, server_default=sa.false()))
    # Existing rows get an id no generated one can take (generated ids are 32 hex digits).
    op.execute(sa.text("UPDATE objects SET version_id = 'v' || CAST(id AS TEXT)"))
    with op.batch_alter_table("objects", table_kwargs=_KEEP_IDS) as batch:
        batch.alter_column("version_id", existing_type=sa.String(32), nullable=False)
        for column in ("is_latest", "delete_marker", "versioned"):
            batch.alter_column(column, existing_type=sa.Boolean(), server_default=None)
        batch.drop_constraint("uq_objects_bucket_id_key", type_="unique")
        batch.create_unique_constraint("uq_objects_version_id", ["version_id"])
        batch.create_index("ix_objects_bucket_id_key_id", ["bucket_id", "key", "id"])
    op.create_index(
        "uq_objects_latest",
        "objects",
        ["bucket_id", "key"],
        unique=True,
        sqlite_where=sa.text("is_latest"),
        postgresql_where=sa.text("is_latest"),
    )


def _create_sharing_tables() -> None:
    op.create_table(
        "grants",
        sa.Column("bucket_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("granted_by", sa.Integer(), nullable=True),
        sa.Column("created_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("bucket_id", "user_id", name="pk_grants"),
        sa.ForeignKeyConstraint(
            ["bucket_id"], ["buckets.id"], name="fk_grants_bucket_id_buckets", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_grants_user_id_users", ondelete="CASCADE"
        ),
        sa.CheckConstraint("level IN ('read', 'write', 'admin')", name="ck_grants_level"),
    )
    op.create_index("ix_grants_user_id", "grants", ["user_id"])
    op.create_table(
        "share_links",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("bucket_id", sa.Integer(), nullable=False),
        sa.Column("key", _key, nullable=True),
        sa.Column("prefix", _key, nullable=True),
        sa.Column("version_id", sa.String(32), nullable=True),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("expires_at", _ts, nullable=True),
        sa.Column("max_downloads", sa.Integer(), nullable=True),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("revoked_at", _ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_share_links"),
        sa.UniqueConstraint("token_hash", name="uq_share_links_token_hash"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_share_links_owner_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["bucket_id"], ["buckets.id"], name="fk_share_links_bucket_id_buckets", ondelete="CASCADE"
        ),
        sa.CheckConstraint("(key IS NULL) <> (prefix IS NULL)", name="ck_share_links_target"),
    )
    op.create_index("ix_share_links_owner_id", "share_links", ["owner_id"])
    op.create_index("ix_share_links_bucket_id", "share_links", ["bucket_id"])


def _create_history() -> None:
    op.create_table(
        "history",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("at", _ts, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("user_name", sa.String(64), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("bucket_id", sa.Integer(), nullable=True),
        sa.Column("bucket", sa.String(63), nullable=True),
        sa.Column("key", _key, nullable=True),
        sa.Column("version_id", sa.String(32), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(255), nullable=True),
        sa.Column("result", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("detail", _json, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_history"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_history_user_id_id", "history", ["user_id", "id"])
    op.create_index("ix_history_bucket_id_id", "history", ["bucket_id", "id"])
    op.create_index("ix_history_at", "history", ["at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION history_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'history is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER history_append_only BEFORE UPDATE OR DELETE ON history "
            "FOR EACH ROW EXECUTE FUNCTION history_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER history_no_{event.lower()} BEFORE {event} ON history "
                "BEGIN SELECT RAISE(ABORT, 'history is append-only'); END"
            )
