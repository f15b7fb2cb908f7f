"""metric intelligence: findings, detector state

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import vigil.store.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = vigil.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "findings",
        sa.Column("id", _PK, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("occurrence_ns", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("service", sa.String(length=255), nullable=True),
        sa.Column("title", sa.String(length=512), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("evidence", _JSON, nullable=False),
        sa.Column("opened_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("resolved_at", _TIME, nullable=True),
        sa.Column("last_event_ns", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
        sa.UniqueConstraint("kind", "key", "occurrence_ns", name="uq_findings_kind_key_occurrence"),
    )
    op.create_index("ix_findings_opened", "findings", ["opened_at", "id"])
    op.create_index("ix_findings_key_opened", "findings", ["key", "opened_at"])
    op.create_index("ix_findings_state_opened", "findings", ["state", "opened_at"])
    op.create_index("ix_findings_host_opened", "findings", ["host", "opened_at"])

    op.create_table(
        "metric_detector_state",
        sa.Column("series_key", sa.String(length=1024), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("series_key", name=op.f("pk_metric_detector_state")),
    )

    op.create_table(
        "metric_prediction_rules",
        sa.Column("id", _PK, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("measurement", sa.String(length=255), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=False),
        sa.Column("tags", _JSON, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("horizon_s", sa.Float(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_prediction_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_metric_prediction_rules_name")),
    )


def downgrade() -> None:
    op.drop_table("metric_prediction_rules")
    op.drop_table("metric_detector_state")
    op.drop_index("ix_findings_host_opened", table_name="findings")
    op.drop_index("ix_findings_state_opened", table_name="findings")
    op.drop_index("ix_findings_key_opened", table_name="findings")
    op.drop_index("ix_findings_opened", table_name="findings")
    op.drop_table("findings")
