"""The event outbox and webhook subscriptions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

``events`` is the outbox: every change a user may care about appends one row
in the transaction that makes the change, so no event is lost and none is
told of a change that rolled back. Ids ascend in commit order as readers see
them (see ``repositories/events.py`` for how PostgreSQL keeps that true), so
a reader resumes after the last id it saw. No foreign keys: an event outlives
the user and bucket it names; ``bucket_id`` decides who may see it. Rows
older than the retention are pruned by the worker (``ix_events_at``).

``webhooks`` are subscriptions: a URL, type filters, an optional bucket, and
a secret kept encrypted like S3 secrets (AES-GCM under a key derived from the
cluster secret, the webhook id as associated data). Each has its own cursor
(the last event id it is done with), which is how deliveries stay in order
per subscription; the lease lets one worker at a time deliver it.
``webhook_deliveries`` records every attempt (status code, latency, error).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ts = sa.DateTime(timezone=True)
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_key = sa.String(1024).with_variant(sa.String(1024, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("at", _ts, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("bucket_id", sa.Integer(), nullable=True),
        sa.Column("bucket", sa.String(63), nullable=True),
        sa.Column("key", _key, nullable=True),
        sa.Column("version_id", sa.String(32), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("detail", _json, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_at", "events", ["at"])
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_types", _json, nullable=False),
        sa.Column("bucket", sa.String(63), nullable=True),
        sa.Column("secret_nonce", sa.LargeBinary(), nullable=False),
        sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("disabled_at", _ts, nullable=True),
        sa.Column("disabled_reason", sa.String(255), nullable=True),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failing_since", _ts, nullable=True),
        sa.Column("next_attempt_at", _ts, nullable=True),
        sa.Column("lease_until", _ts, nullable=True),
        sa.Column("delivered", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhooks"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_webhooks_owner_id_users", ondelete="CASCADE"
        ),
        sa.CheckConstraint("state IN ('active', 'disabled')", name="ck_webhooks_state"),
    )
    op.create_index("ix_webhooks_owner_id", "webhooks", ["owner_id"])
    op.create_index("ix_webhooks_state_next_attempt_at", "webhooks", ["state", "next_attempt_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("webhook_id", sa.String(32), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", _ts, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name="fk_webhook_deliveries_webhook_id_webhooks",
            ondelete="CASCADE",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhook_deliveries_webhook_id_id", "webhook_deliveries", ["webhook_id", "id"])
    op.create_index("ix_webhook_deliveries_at", "webhook_deliveries", ["at"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_table("events")
