"""Zones as data, and the gateways that serve them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

A zone was only a string on a node, spread across on writes. Placing
shares so that a whole zone may be lost, reading from the shares nearest
the client and sending a client to a gateway in its own zone all need to
know more: where the zone is (latitude and longitude, for the great-circle
distance between zones and to a client located by GeoIP) and which client
networks belong to it (CIDRs, checked before any GeoIP guess).

``zones.networks`` is a JSON list of CIDR strings: it is read and written
whole with its zone, and matched in memory by every gateway, never queried.
Nodes keep naming their zone by string, without a foreign key: a node may
sit in a zone nobody described yet, which then simply has no coordinates.

``gateways``: each gateway upserts its public URL and zone here on a
heartbeat, so another gateway can send a client to one in the client's zone
(307) and skip any whose heartbeat is stale.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "zones",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("networks", _json, nullable=False),
        sa.Column("updated_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_zones"),
        sa.CheckConstraint("(latitude IS NULL) = (longitude IS NULL)", name="ck_zones_coordinates"),
    )
    op.create_table(
        "gateways",
        sa.Column("url", sa.String(255), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("started_at", _ts, nullable=False),
        sa.Column("last_seen", _ts, nullable=False),
        sa.PrimaryKeyConstraint("url", name="pk_gateways"),
    )
    op.create_index("ix_gateways_zone", "gateways", ["zone"])


def downgrade() -> None:
    op.drop_table("gateways")
    op.drop_table("zones")
