"""Self-healing: node life states, shares without a node, job progress and dedupe,
and run-time cluster settings.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

* ``nodes.state``: ``normal``, ``draining`` (shares move off, reads still
  served), ``retired`` (holds nothing, may be removed) or ``lost`` (its shares
  are rebuilt elsewhere). Up/down stays the probe's ``healthy`` flag.
* ``part_shares.node_id`` becomes nullable: a write made while fewer than
  k+m nodes were writable records the shares it could not place as
  ``missing`` with no node, and repair places them later. SQLite rebuilds the
  table for that (it cannot relax NOT NULL in place).
* ``jobs`` gain ``priority`` (claimed highest first: the most endangered part
  is repaired first), ``dedupe`` (at most one *queued* job per key, so a
  thousand reads of one damaged part queue one repair), and progress columns
  the jobs API shows.
* ``cluster_settings``: values an admin changes at run time (worker
  throttles), read by every worker and gateway.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ts = sa.DateTime(timezone=True)
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="normal"))
        batch.create_check_constraint("state", "state IN ('normal', 'draining', 'retired', 'lost')")
    with op.batch_alter_table("part_shares") as batch:
        batch.alter_column("node_id", existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("dedupe", sa.String(200), nullable=True))
        batch.add_column(sa.Column("progress_bytes", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("total_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("errors", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("started_at", _ts, nullable=True))
        batch.add_column(sa.Column("finished_at", _ts, nullable=True))
    op.create_index(
        "uq_jobs_dedupe_queued",
        "jobs",
        ["dedupe"],
        unique=True,
        sqlite_where=sa.text("state = 'queued'"),
        postgresql_where=sa.text("state = 'queued'"),
    )
    op.create_index("ix_jobs_kind_state", "jobs", ["kind", "state"])
    op.create_table(
        "cluster_settings",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", _json, nullable=False),
        sa.Column("updated_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_cluster_settings"),
    )
