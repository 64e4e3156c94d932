"""An index of the keys a listing shows: latest versions that are not delete markers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08

A listing page reads only live keys (a key's latest version, when that is
not a delete marker). ``uq_objects_latest`` holds latest versions, markers
included: a listing that stepped through it would read every marker under
its prefix, so a bucket with many deleted keys would list slowly however
few keys remain. ``ix_objects_live`` holds exactly the live keys, so each
read of a listing is one seek into it, and a common prefix is skipped with
one seek whatever the bucket holds.

The predicate is written the way each engine's queries spell it: SQLite
uses a partial index only when the query repeats its terms, and SQLAlchemy
writes ``is_latest = 1 AND delete_marker = 0`` there; PostgreSQL proves the
implication itself.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_objects_live",
        "objects",
        ["bucket_id", "key"],
        sqlite_where=sa.text("is_latest = 1 AND delete_marker = 0"),
        postgresql_where=sa.text("is_latest AND NOT delete_marker"),
    )


def downgrade() -> None:
    op.drop_index("ix_objects_live", table_name="objects")
