"""Everything around alerts: timelines, fingerprint and grouping rules, silences and maintenance
windows, escalation policies, notification channels, routes and the delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.models.base import Base
from vigil.store.types import BigIntPK, JSONType, UTCDateTime, utcnow


class TimelineEntry(Base):
    """One change or note on an alert or an incident (both ids set when it concerns both)."""

    __tablename__ = "timeline_entries"
    __table_args__ = (
        Index("ix_timeline_entries_alert_id_id", "alert_id", "id"),
        Index("ix_timeline_entries_incident_id_id", "incident_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    # created | refired | reopened | status | assigned | note | escalated | notified |
    # notification_failed | suppressed | unsuppressed | flapping | joined | severity | summary ...
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128), default="system")
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class FingerprintRule(Base):
    """Per origin: which fields identify an alert, and when it resolves by itself."""

    __tablename__ = "fingerprint_rules"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    origin: Mapped[str] = mapped_column(String(32), unique=True)
    fields: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Minutes without a re-fire before the alert resolves as "condition cleared"; None: the
    # origin's default; 0: never.
    auto_resolve_minutes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class GroupingRule(Base):
    """Alerts matching ``matchers`` go to one incident per value of the ``group_by`` labels."""

    __tablename__ = "grouping_rules"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    matchers: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    group_by: Mapped[list[str]] = mapped_column(JSONType, default=list)
    window_minutes: Mapped[int] = mapped_column(Integer, default=60)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Silence(Base):
    """A silence (ad hoc) or maintenance window (planned, possibly recurring): matching alerts
    are stored but suppressed and not notified."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_ends_at", "ends_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), default="silence")  # silence | maintenance
    name: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str | None] = mapped_column(Text)
    matchers: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # {"type": "weekly", "days": [...], "start": "HH:MM", "end": "HH:MM", "timezone": ...} or
    # {"type": "cron", "cron": "0 2 * * sat", "duration_minutes": 120, "timezone": ...}
    recurrence: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class EscalationPolicy(Base):
    """For alerts of some severities (and labels): if not acknowledged within each step's
    minutes, notify that step's channels."""

    __tablename__ = "escalation_policies"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    severities: Mapped[list[str]] = mapped_column(JSONType, default=list)  # empty: every severity
    matchers: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)  # after_minutes, channel_ids
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class NotificationChannel(Base):
    """Where notifications go: a Slack webhook, an e-mail list, a PagerDuty service, a webhook."""

    __tablename__ = "notification_channels"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    type: Mapped[str] = mapped_column(String(16))  # slack | email | pagerduty | webhook
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # non-secret settings
    secret_encrypted: Mapped[str | None] = mapped_column(Text)  # Fernet token of a JSON object
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class NotificationRoute(Base):
    """Which alert events (severities, labels) go to which channels."""

    __tablename__ = "notification_routes"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    severities: Mapped[list[str]] = mapped_column(JSONType, default=list)  # empty: every severity
    matchers: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    # trigger | acknowledge | resolve | escalate; empty: trigger, resolve and escalate
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    channel_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class NotificationDelivery(Base):
    """One notification to one channel: queued with the alert change (an outbox), then sent,
    retried with backoff, and kept as the delivery log."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_notification_deliveries_alert_id", "alert_id"),
        Index("ix_notification_deliveries_channel_id_id", "channel_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("notification_channels.id", ondelete="CASCADE"))
    route_id: Mapped[int | None] = mapped_column(ForeignKey("notification_routes.id", ondelete="SET NULL"))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    event: Mapped[str] = mapped_column(String(16))  # trigger | acknowledge | resolve | escalate | test
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    dedup_key: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # what to say, frozen at queueing
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
