"""Stored response headers of objects and of the uploads that will become them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

S3 clients store headers with an object and expect them back on every GET
and HEAD: ``Content-Disposition``, ``Content-Encoding``, ``Cache-Control``,
``Expires``, ``x-amz-meta-*`` and the ``x-amz-checksum-*`` they sent.
``objects.headers`` holds them as one JSON object (lower-case names to
values), NULL for an object stored without any: they are only ever read
and written whole, with the object, so one column serves better than a
table. ``uploads.headers`` keeps them from the start of a multipart upload
until its completion moves them to the new version.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("objects", sa.Column("headers", _json, nullable=True))
    op.add_column("uploads", sa.Column("headers", _json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("headers")
    with op.batch_alter_table("objects") as batch:
        batch.drop_column("headers")
