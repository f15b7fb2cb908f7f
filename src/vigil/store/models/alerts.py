"""Alerts from every origin, and the incidents that group them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.models.base import Base
from vigil.store.types import BigIntPK, JSONType, UTCDateTime, utcnow

_EMPTY_LIST = text("'[]'")
COVERED = ("severity", "status", "origin", "host", "service", "source")


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_last_activity_at", "last_activity_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(512))
    # What the UI shows: the rules summary, or a model's when an IncidentSummarizer wrote one.
    summary: Mapped[str | None] = mapped_column(Text)
    summary_generated_by: Mapped[str] = mapped_column(String(128), default="rules", server_default="rules")
    # The deterministic summary, always current (the fallback and the model's starting point).
    summary_rules: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))  # critical | high | medium | low
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    assignee: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    labels: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Correlation features, kept current as alerts join (see analytics.correlation).
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    alert_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    open_alert_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    hosts: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=_EMPTY_LIST)
    services: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=_EMPTY_LIST)
    origins: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=_EMPTY_LIST)
    templates: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=_EMPTY_LIST)
    categories: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=_EMPTY_LIST)
    rule_key: Mapped[str | None] = mapped_column(String(255), index=True)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_status_last_seen", "status", "last_seen"),
        Index("ix_alerts_fingerprint_open", "fingerprint", "resolved_at"),
        # At most one open alert per fingerprint, whatever the number of workers.
        Index(
            "ux_alerts_open_fingerprint",
            "fingerprint",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        # Keyset pagination, newest first, overall / open only / per filter. On PostgreSQL the
        # first two also carry the columns alerts are filtered and grouped by, so "open
        # critical" and "counts by host over the last day" read the index alone.
        Index("ix_alerts_last_seen_id", "last_seen", "id", postgresql_include=list(COVERED)),
        Index(
            "ix_alerts_open_last_seen_id",
            "last_seen",
            "id",
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
            postgresql_include=list(COVERED),
        ),
        # Open alerts of a severity (the on-call view): a small index, since few are open.
        Index(
            "ix_alerts_open_severity_last_seen_id",
            "severity",
            "last_seen",
            "id",
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index("ix_alerts_host_last_seen_id", "host", "last_seen", "id"),
        Index("ix_alerts_service_last_seen_id", "service", "last_seen", "id"),
        Index("ix_alerts_severity_last_seen_id", "severity", "last_seen", "id"),
        Index("ix_alerts_origin_last_seen_id", "origin", "last_seen", "id"),
        Index("ix_alerts_source_last_seen_id", "source", "last_seen", "id"),
        # An incident's alerts, newest first (its summary), and their counts without the table.
        Index(
            "ix_alerts_incident_id_last_seen_id",
            "incident_id",
            "last_seen",
            "id",
            postgresql_include=["resolved_at"],
        ),
        Index("ix_alerts_next_escalation_at", "next_escalation_at"),
        Index(
            "ix_alerts_flapping",
            "id",
            sqlite_where=text("flapping = 1"),
            postgresql_where=text("flapping"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(32))  # log | anomaly | predictive | ...
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    source: Mapped[str | None] = mapped_column(String(128))  # the source's name, as the signal gave it
    title: Mapped[str] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="new")
    host: Mapped[str | None] = mapped_column(String(255))
    service: Mapped[str | None] = mapped_column(String(255))
    labels: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Links to what raised it: findings, log templates, error groups, metric series...
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list, server_default=_EMPTY_LIST)
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolve_reason: Mapped[str | None] = mapped_column(String(32))  # source | timeout | manual | incident
    assignee: Mapped[str | None] = mapped_column(String(64))
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False)
    silence_ids: Mapped[list[int]] = mapped_column(JSONType, default=list, server_default=_EMPTY_LIST)
    # Flapping: recent state-change times (epoch seconds) and whether it is flapping now.
    flapping: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    flap_history: Mapped[list[float]] = mapped_column(JSONType, default=list, server_default=_EMPTY_LIST)
    reopened: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Escalation: the policy that applies, the next step to take and when.
    escalation_policy_id: Mapped[int | None] = mapped_column(BigInteger)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_escalation_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first trigger notification queued
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
