"""alerts and incidents: timeline, silences, escalation, notifications, correlation rules

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import vigil.store.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
When = vigil.store.types.UTCDateTime(timezone=True)
EMPTY_LIST = sa.text("'[]'")
OPEN = sa.text("resolved_at IS NULL")
# Carried by the keyset indexes on PostgreSQL, for index-only filters and groupings.
COVERED = ("severity", "status", "origin", "host", "service", "source")


def _id() -> sa.Column[Any]:
    return sa.Column("id", BigId, autoincrement=True, nullable=False)


def _stamps() -> list[sa.Column[Any]]:
    return [sa.Column("created_at", When, nullable=False), sa.Column("updated_at", When, nullable=False)]


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("summary_generated_by", sa.String(128), nullable=False, server_default="rules")
        )
        batch_op.add_column(sa.Column("summary_rules", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("assignee", sa.String(64), nullable=True))
        batch_op.add_column(
            sa.Column("last_activity_at", When, nullable=False, server_default=sa.text("CURRENT_TIMESTAMP"))
        )
        batch_op.add_column(sa.Column("alert_count", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("open_alert_count", sa.Integer(), nullable=False, server_default="0"))
        for name in ("hosts", "services", "origins", "templates", "categories"):
            batch_op.add_column(sa.Column(name, Json, nullable=False, server_default=EMPTY_LIST))
        batch_op.add_column(sa.Column("rule_key", sa.String(255), nullable=True))
        batch_op.create_index("ix_incidents_rule_key", ["rule_key"], unique=False)
        batch_op.create_index("ix_incidents_last_activity_at", ["last_activity_at"], unique=False)
    op.execute("UPDATE incidents SET last_activity_at = started_at")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(128), nullable=True))
        batch_op.add_column(sa.Column("evidence", Json, nullable=False, server_default=EMPTY_LIST))
        batch_op.add_column(sa.Column("updated_at", When, nullable=True))
        batch_op.add_column(sa.Column("resolve_reason", sa.String(32), nullable=True))
        batch_op.add_column(sa.Column("silence_ids", Json, nullable=False, server_default=EMPTY_LIST))
        batch_op.add_column(sa.Column("flapping", sa.Boolean(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("flap_history", Json, nullable=False, server_default=EMPTY_LIST))
        batch_op.add_column(sa.Column("reopened", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("escalation_policy_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("next_escalation_at", When, nullable=True))
        batch_op.add_column(sa.Column("notified_at", When, nullable=True))
        # Single-column indexes replaced by (column, last_seen, id): filtered lists newest first.
        for name in ("host", "service", "origin", "severity"):
            batch_op.drop_index(f"ix_alerts_{name}")
        batch_op.create_index(
            "ux_alerts_open_fingerprint",
            ["fingerprint"],
            unique=True,
            sqlite_where=OPEN,
            postgresql_where=OPEN,
        )
        batch_op.create_index(
            "ix_alerts_last_seen_id", ["last_seen", "id"], unique=False, postgresql_include=list(COVERED)
        )
        batch_op.create_index(
            "ix_alerts_open_last_seen_id",
            ["last_seen", "id"],
            unique=False,
            sqlite_where=OPEN,
            postgresql_where=OPEN,
            postgresql_include=list(COVERED),
        )
        batch_op.create_index(
            "ix_alerts_open_severity_last_seen_id",
            ["severity", "last_seen", "id"],
            unique=False,
            sqlite_where=OPEN,
            postgresql_where=OPEN,
        )
        for name in ("host", "service", "severity", "origin", "source"):
            batch_op.create_index(f"ix_alerts_{name}_last_seen_id", [name, "last_seen", "id"], unique=False)
        batch_op.drop_index("ix_alerts_incident_id")
        batch_op.create_index(
            "ix_alerts_incident_id_last_seen_id",
            ["incident_id", "last_seen", "id"],
            unique=False,
            postgresql_include=["resolved_at"],
        )
        batch_op.create_index("ix_alerts_next_escalation_at", ["next_escalation_at"], unique=False)
        batch_op.create_index(
            "ix_alerts_flapping",
            ["id"],
            unique=False,
            sqlite_where=sa.text("flapping = 1"),
            postgresql_where=sa.text("flapping"),
        )

    if op.get_bind().dialect.name == "postgresql":
        _trigram_indexes()

    op.create_table(
        "timeline_entries",
        _id(),
        sa.Column("at", When, nullable=False),
        sa.Column("alert_id", BigId, nullable=True),
        sa.Column("incident_id", BigId, nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", Json, nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_timeline_entries_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_timeline_entries_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeline_entries")),
    )
    op.create_index("ix_timeline_entries_alert_id_id", "timeline_entries", ["alert_id", "id"])
    op.create_index("ix_timeline_entries_incident_id_id", "timeline_entries", ["incident_id", "id"])

    op.create_table(
        "fingerprint_rules",
        _id(),
        sa.Column("origin", sa.String(32), nullable=False),
        sa.Column("fields", Json, nullable=False),
        sa.Column("auto_resolve_minutes", sa.Integer(), nullable=True),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fingerprint_rules")),
        sa.UniqueConstraint("origin", name=op.f("uq_fingerprint_rules_origin")),
    )
    op.create_table(
        "grouping_rules",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("matchers", Json, nullable=False),
        sa.Column("group_by", Json, nullable=False),
        sa.Column("window_minutes", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grouping_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_grouping_rules_name")),
    )
    op.create_table(
        "silences",
        _id(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("matchers", Json, nullable=False),
        sa.Column("starts_at", When, nullable=True),
        sa.Column("ends_at", When, nullable=True),
        sa.Column("recurrence", Json, nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"])
    op.create_table(
        "escalation_policies",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("severities", Json, nullable=False),
        sa.Column("matchers", Json, nullable=False),
        sa.Column("steps", Json, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_escalation_policies_name")),
    )
    op.create_table(
        "notification_channels",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("config", Json, nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_channels")),
        sa.UniqueConstraint("name", name=op.f("uq_notification_channels_name")),
    )
    op.create_table(
        "notification_routes",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("severities", Json, nullable=False),
        sa.Column("matchers", Json, nullable=False),
        sa.Column("events", Json, nullable=False),
        sa.Column("channel_ids", Json, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_routes")),
        sa.UniqueConstraint("name", name=op.f("uq_notification_routes_name")),
    )
    op.create_table(
        "notification_deliveries",
        _id(),
        sa.Column("channel_id", BigId, nullable=False),
        sa.Column("route_id", BigId, nullable=True),
        sa.Column("alert_id", BigId, nullable=True),
        sa.Column("incident_id", BigId, nullable=True),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", When, nullable=False),
        sa.Column("lease_until", When, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("dedup_key", sa.String(255), nullable=True),
        sa.Column("message", Json, nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("sent_at", When, nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notification_channels.id"],
            name=op.f("fk_notification_deliveries_channel_id_notification_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["route_id"],
            ["notification_routes.id"],
            name=op.f("fk_notification_deliveries_route_id_notification_routes"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_notification_deliveries_alert_id_alerts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_notification_deliveries_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
    )
    op.create_index(
        "ix_notification_deliveries_status_next_attempt_at",
        "notification_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_index("ix_notification_deliveries_alert_id", "notification_deliveries", ["alert_id"])
    op.create_index(
        "ix_notification_deliveries_channel_id_id", "notification_deliveries", ["channel_id", "id"]
    )


def _trigram_indexes() -> None:
    """Substring search on titles (``?q=``) through pg_trgm when the server allows it; without
    it the search still works, by scanning."""
    bind = op.get_bind()
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).first()
    if available is None:
        return
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        savepoint.commit()
    except sa.exc.DBAPIError:
        savepoint.rollback()  # not allowed to create extensions: keep the plain search
        return
    op.execute("CREATE INDEX ix_alerts_title_trgm ON alerts USING gin (title gin_trgm_ops)")
    op.execute("CREATE INDEX ix_incidents_title_trgm ON incidents USING gin (title gin_trgm_ops)")


def downgrade() -> None:
    for table in (
        "notification_deliveries",
        "notification_routes",
        "notification_channels",
        "escalation_policies",
        "silences",
        "grouping_rules",
        "fingerprint_rules",
        "timeline_entries",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_alerts_title_trgm")
        op.execute("DROP INDEX IF EXISTS ix_incidents_title_trgm")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_flapping")
        batch_op.drop_index("ix_alerts_next_escalation_at")
        batch_op.drop_index("ix_alerts_incident_id_last_seen_id")
        batch_op.create_index("ix_alerts_incident_id", ["incident_id"], unique=False)
        for name in ("host", "service", "severity", "origin", "source"):
            batch_op.drop_index(f"ix_alerts_{name}_last_seen_id")
        batch_op.drop_index("ix_alerts_open_severity_last_seen_id")
        batch_op.drop_index("ix_alerts_open_last_seen_id")
        batch_op.drop_index("ix_alerts_last_seen_id")
        batch_op.drop_index("ux_alerts_open_fingerprint")
        for name in ("host", "service", "origin", "severity"):
            batch_op.create_index(f"ix_alerts_{name}", [name], unique=False)
        for column in (
            "notified_at",
            "next_escalation_at",
            "escalation_level",
            "escalation_policy_id",
            "reopened",
            "flap_history",
            "flapping",
            "silence_ids",
            "resolve_reason",
            "updated_at",
            "evidence",
            "source",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_last_activity_at")
        batch_op.drop_index("ix_incidents_rule_key")
        for column in (
            "rule_key",
            "categories",
            "templates",
            "origins",
            "services",
            "hosts",
            "open_alert_count",
            "alert_count",
            "last_activity_at",
            "assignee",
            "summary_rules",
            "summary_generated_by",
        ):
            batch_op.drop_column(column)
