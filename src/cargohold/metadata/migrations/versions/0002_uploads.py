"""Upload sessions: the uploads table, and parts that belong to an open upload.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

A part of an open upload has ``upload_id`` set and no ``object_id``;
completion sets ``object_id`` (and the part's offset) in one transaction. No
foreign key on ``parts.upload_id``: SQLite cannot add one to an existing
table without rebuilding it, and the uploads service is the only writer.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ts = sa.DateTime(timezone=True)
_key = sa.String(1024).with_variant(sa.String(1024, collation="C"), "postgresql")
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("bucket_id", sa.Integer(), nullable=False),
        sa.Column("key", _key, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("total_size", sa.BigInteger(), nullable=True),
        sa.Column("part_size", sa.BigInteger(), nullable=True),
        sa.Column("expected_md5", sa.String(64), nullable=True),
        sa.Column("expected_sha256", sa.String(128), nullable=True),
        sa.Column("metadata", _json, nullable=False),
        sa.Column("concat", sa.String(16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("updated_at", _ts, nullable=False),
        sa.Column("expires_at", _ts, nullable=False),
        sa.CheckConstraint(
            "status IN ('PENDING', 'LOADING', 'UPLOADED', 'FAILED', 'DELETED')",
            name=op.f("ck_uploads_status"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_uploads"),
    )
    op.create_index("ix_uploads_status_expires_at", "uploads", ["status", "expires_at"])
    op.create_index("ix_uploads_bucket_id", "uploads", ["bucket_id"])
    op.add_column("parts", sa.Column("upload_id", sa.String(32), nullable=True))
    op.create_index("ix_parts_upload_id_part_number", "parts", ["upload_id", "part_number"])


def downgrade() -> None:
    op.drop_index("ix_parts_upload_id_part_number", table_name="parts")
    op.drop_column("parts", "upload_id")
    op.drop_index("ix_uploads_bucket_id", table_name="uploads")
    op.drop_index("ix_uploads_status_expires_at", table_name="uploads")
    op.drop_table("uploads")
