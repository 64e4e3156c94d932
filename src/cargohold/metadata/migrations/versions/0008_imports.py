"""Background imports: a URL a worker fetches into an object.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

An import is the client's view of the work (status, bytes, rate, reason of
a failure); the bytes go through an upload session of protocol ``import``
(``upload_id``), whose committed parts are what survives a dropped source
connection or a worker that dies: a resumed import continues after the last
of them. ``seq`` orders listings and pages them; ``id`` is what clients see.
``fence`` is the claim of the job that runs the import: a worker that lost
its lease has its writes refused.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_key = sa.String(1024).with_variant(sa.String(1024, collation="C"), "postgresql")


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("seq", _big_id, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("bucket_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("key", _key, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=True),
        sa.Column("expected_md5", sa.String(32), nullable=True),
        sa.Column("expected_sha256", sa.String(64), nullable=True),
        sa.Column("upload_id", sa.String(32), nullable=True),
        sa.Column("total_size", sa.BigInteger(), nullable=True),
        sa.Column("bytes_done", sa.BigInteger(), nullable=False),
        sa.Column("rate", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("resumes", sa.Integer(), nullable=False),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("validator", sa.String(255), nullable=True),
        sa.Column("fence", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("version_id", sa.String(32), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_imports"),
        sa.UniqueConstraint("id", name="uq_imports_id"),
        sa.CheckConstraint(
            "status IN ('PENDING', 'LOADING', 'UPLOADED', 'FAILED', 'DELETED')", name="ck_imports_status"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_imports_user_id_seq", "imports", ["user_id", "seq"])
    op.create_index("ix_imports_status", "imports", ["status"])


def downgrade() -> None:
    op.drop_table("imports")
