"""S3 access keys.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

SigV4 signs each request with the secret itself, so unlike API keys (stored
as a SHA-256) the server must be able to read an S3 secret back. It is kept
encrypted: ``secret_ciphertext`` is AES-GCM under a key derived from the
cluster secret, with a fresh ``secret_nonce`` per row and the access key id
as associated data (a ciphertext copied to another row does not decrypt).
A user's keys go with the user.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "s3_keys",
        sa.Column("access_key_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_nonce", sa.LargeBinary(), nullable=False),
        sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("expires_at", _ts, nullable=True),
        sa.Column("revoked_at", _ts, nullable=True),
        sa.PrimaryKeyConstraint("access_key_id", name="pk_s3_keys"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_s3_keys_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_s3_keys_user_id", "s3_keys", ["user_id"])
