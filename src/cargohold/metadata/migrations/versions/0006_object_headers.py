"""Stored response headers of objects and uploads; parts shared by copies.

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

``part_links``: a copy of an object (S3 CopyObject) made without moving a
byte refers to its source's parts instead of owning parts of its own, under
its own part numbers and offsets. A part still has exactly one owner
(``parts.object_id``); when the owner goes, one of the versions linking
the part takes it over, so a part is freed only when nothing refers to it.
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
_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("objects", sa.Column("headers", _json, nullable=True))
    op.add_column("uploads", sa.Column("headers", _json, nullable=True))
    op.create_table(
        "part_links",
        sa.Column("object_id", _big_id, nullable=False),
        sa.Column("part_number", sa.Integer(), nullable=False),
        sa.Column("part_id", sa.String(32), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_id"], ["objects.id"], name="fk_part_links_object_id_objects", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], name="fk_part_links_part_id_parts"),
        sa.PrimaryKeyConstraint("object_id", "part_number", name="pk_part_links"),
    )
    op.create_index("ix_part_links_part_id", "part_links", ["part_id"])


def downgrade() -> None:
    op.drop_table("part_links")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("headers")
    with op.batch_alter_table("objects") as batch:
        batch.drop_column("headers")
