"""ingestion: inventory, error groups and events, source leases

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import vigil.store.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[Any]:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
    )


def _json(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(
        name, sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=nullable
    )


def _time(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, vigil.store.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # --- error groups and events, inventory (ingestion) ---------------------------------------
    op.create_table(
        "error_groups",
        _id(),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(length=128), nullable=True),
        sa.Column("title", sa.String(length=512), nullable=False),
        sa.Column("culprit", sa.String(length=512), nullable=True),
        sa.Column("exception_type", sa.String(length=255), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        _time("first_seen"),
        _time("last_seen"),
        sa.Column("first_release", sa.String(length=255), nullable=True),
        sa.Column("last_release", sa.String(length=255), nullable=True),
        _json("environments"),
        sa.Column("last_host", sa.String(length=255), nullable=True),
        sa.Column("last_service", sa.String(length=255), nullable=True),
        _time("resolved_at", nullable=True),
        _time("regressed_at", nullable=True),
        sa.Column("times_regressed", sa.Integer(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_error_groups_source_id_sources"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_groups")),
        sa.UniqueConstraint("project", "fingerprint", name="uq_error_groups_project_fingerprint"),
    )
    op.create_index("ix_error_groups_status_last_seen", "error_groups", ["status", "last_seen"])
    op.create_index("ix_error_groups_last_seen", "error_groups", ["last_seen"])

    op.create_table(
        "error_events",
        _id(),
        sa.Column("group_id", sa.BigInteger(), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        _time("time"),
        _time("received_at"),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("exception_type", sa.String(length=255), nullable=True),
        sa.Column("exception_value", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("release", sa.String(length=255), nullable=True),
        sa.Column("environment", sa.String(length=64), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("service", sa.String(length=255), nullable=True),
        sa.Column("transaction", sa.String(length=255), nullable=True),
        _json("frames"),
        _json("tags"),
        _json("raw", nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"], ["error_groups.id"], name=op.f("fk_error_events_group_id_error_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_events")),
        sa.UniqueConstraint("project", "event_id", name="uq_error_events_project_event_id"),
    )
    op.create_index("ix_error_events_group_id_id", "error_events", ["group_id", "id"])

    op.create_table(
        "inventory",
        _id(),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        _json("labels"),
        _json("telemetry"),
        _time("first_seen"),
        _time("last_seen"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory")),
        sa.UniqueConstraint("kind", "name", name="uq_inventory_kind_name"),
    )
    op.create_index("ix_inventory_last_seen", "inventory", ["last_seen"])


def downgrade() -> None:
    # --- error groups and events, inventory (ingestion) ---------------------------------------
    op.drop_index("ix_inventory_last_seen", table_name="inventory")
    op.drop_table("inventory")
    op.drop_index("ix_error_events_group_id_id", table_name="error_events")
    op.drop_table("error_events")
    op.drop_index("ix_error_groups_last_seen", table_name="error_groups")
    op.drop_index("ix_error_groups_status_last_seen", table_name="error_groups")
    op.drop_table("error_groups")
