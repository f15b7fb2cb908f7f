"""llm usage accounting, root-cause analyses, similar incidents

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import vigil.store.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[Any]:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
    )


def _json(name: str) -> sa.Column[Any]:
    return sa.Column(
        name, sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
    )


def _time(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, vigil.store.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "llm_usage",
        _id(),
        _time("created_at"),
        sa.Column("feature", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_usage")),
    )
    with op.batch_alter_table("llm_usage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_llm_usage_created_at"), ["created_at"], unique=False)
        batch_op.create_index("ix_llm_usage_feature_created_at", ["feature", "created_at"], unique=False)

    op.create_table(
        "rca_results",
        _id(),
        sa.Column("incident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        _time("created_at"),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("generated_by", sa.String(length=255), nullable=False),
        sa.Column("fallback_reason", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        _json("next_steps"),
        _json("hypotheses"),
        _json("evidence"),
        _json("citations"),
        _json("similar"),
        _json("notices"),
        _time("window_start"),
        _time("window_end"),
        sa.Column("alert_count", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_rca_results_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rca_results")),
    )
    with op.batch_alter_table("rca_results", schema=None) as batch_op:
        batch_op.create_index("ix_rca_results_incident_created", ["incident_id", "created_at"], unique=False)

    op.create_table(
        "incident_memory",
        sa.Column("incident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("embedder", sa.String(length=128), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=True),
        _time("embedded_at"),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_memory_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_incident_memory")),
    )


def downgrade() -> None:
    op.drop_table("incident_memory")
    with op.batch_alter_table("rca_results", schema=None) as batch_op:
        batch_op.drop_index("ix_rca_results_incident_created")
    op.drop_table("rca_results")
    with op.batch_alter_table("llm_usage", schema=None) as batch_op:
        batch_op.drop_index("ix_llm_usage_feature_created_at")
        batch_op.drop_index(batch_op.f("ix_llm_usage_created_at"))
    op.drop_table("llm_usage")
