"""Initial schema: keys, buckets, objects, parts, shares, nodes, jobs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand and frozen: it does not import ``cargohold.metadata.tables``,
so later edits there cannot change what this revision creates.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ts = sa.DateTime(timezone=True)
_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_key = sa.String(1024).with_variant(sa.String(1024, collation="C"), "postgresql")
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("expires_at", _ts, nullable=True),
        sa.Column("revoked_at", _ts, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
    )
    op.create_table(
        "buckets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("layout", sa.String(64), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_buckets"),
        sa.UniqueConstraint("name", name="uq_buckets_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("url", sa.String(255), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("capacity", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("free", sa.BigInteger(), nullable=False),
        sa.Column("shares", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", _ts, nullable=True),
        sa.Column("created_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nodes"),
        sa.UniqueConstraint("url", name="uq_nodes_url"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "objects",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("bucket_id", sa.Integer(), nullable=False),
        sa.Column("key", _key, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(128), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("md5", sa.String(64), nullable=True),
        sa.Column("sha256", sa.String(128), nullable=True),
        sa.Column("inline_data", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", _ts, nullable=False),
        sa.ForeignKeyConstraint(["bucket_id"], ["buckets.id"], name="fk_objects_bucket_id_buckets"),
        sa.PrimaryKeyConstraint("id", name="pk_objects"),
        sa.UniqueConstraint("bucket_id", "key", name="uq_objects_bucket_id_key"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "parts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("object_id", _big_id, nullable=True),
        sa.Column("part_number", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("layout", sa.String(64), nullable=False),
        sa.Column("block_size", sa.Integer(), nullable=False),
        sa.Column("etag", sa.String(128), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["objects.id"],
            name="fk_parts_object_id_objects",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_parts"),
    )
    op.create_index("ix_parts_object_id", "parts", ["object_id"])
    op.create_table(
        "part_shares",
        sa.Column("part_id", sa.String(32), nullable=False),
        sa.Column("share_index", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.CheckConstraint("state IN ('ok', 'missing')", name=op.f("ck_part_shares_state")),
        sa.ForeignKeyConstraint(
            ["part_id"], ["parts.id"], name="fk_part_shares_part_id_parts", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name="fk_part_shares_node_id_nodes"),
        sa.PrimaryKeyConstraint("part_id", "share_index", name="pk_part_shares"),
    )
    op.create_index("ix_part_shares_node_id", "part_shares", ["node_id"])
    op.create_table(
        "jobs",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", _json, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", _ts, nullable=False),
        sa.Column("lease_until", _ts, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _ts, nullable=False),
        sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_jobs_state")),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_jobs_state_run_after", "jobs", ["state", "run_after"])


def downgrade() -> None:
    op.drop_index("ix_jobs_state_run_after", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_part_shares_node_id", table_name="part_shares")
    op.drop_table("part_shares")
    op.drop_index("ix_parts_object_id", table_name="parts")
    op.drop_table("parts")
    op.drop_table("objects")
    op.drop_table("nodes")
    op.drop_table("buckets")
    op.drop_table("api_keys")
