"""What ingestion keeps in the relational store: error groups and their recent events, and the
inventory of hosts and services seen in any telemetry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.models.base import Base
from vigil.store.types import BigIntPK, JSONType, UTCDateTime, utcnow

ERROR_STATUSES = ("unresolved", "resolved", "ignored")


class ErrorGroup(Base):
    """All events with one fingerprint in one project (see ``vigil.ingest.grouping``)."""

    __tablename__ = "error_groups"
    __table_args__ = (
        UniqueConstraint("project", "fingerprint", name="uq_error_groups_project_fingerprint"),
        Index("ix_error_groups_status_last_seen", "status", "last_seen"),
        Index("ix_error_groups_last_seen", "last_seen"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(64))  # Sentry project id from the DSN
    fingerprint: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    source: Mapped[str | None] = mapped_column(String(128))  # source name, kept if the row goes
    title: Mapped[str] = mapped_column(String(512))
    culprit: Mapped[str | None] = mapped_column(String(512))
    exception_type: Mapped[str | None] = mapped_column(String(255))
    level: Mapped[str] = mapped_column(String(16))
    platform: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="unresolved")  # see ERROR_STATUSES
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    first_release: Mapped[str | None] = mapped_column(String(255))
    last_release: Mapped[str | None] = mapped_column(String(255))
    environments: Mapped[list[str]] = mapped_column(JSONType, default=list)
    last_host: Mapped[str | None] = mapped_column(String(255))
    last_service: Mapped[str | None] = mapped_column(String(255))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    regressed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    times_regressed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ErrorEventRecord(Base):
    """One occurrence, with its stack trace. Only the newest few per group are kept
    (``Settings.error_events_per_group``); the group's count covers all of them."""

    __tablename__ = "error_events"
    __table_args__ = (
        UniqueConstraint("project", "event_id", name="uq_error_events_project_event_id"),
        Index("ix_error_events_group_id_id", "group_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("error_groups.id", ondelete="CASCADE"))
    project: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(32))
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(16))
    exception_type: Mapped[str | None] = mapped_column(String(255))
    exception_value: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    release: Mapped[str | None] = mapped_column(String(255))
    environment: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))
    service: Mapped[str | None] = mapped_column(String(255))
    transaction: Mapped[str | None] = mapped_column(String(255))
    frames: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)  # innermost last
    tags: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class InventoryEntity(Base):
    """A host or service seen in metrics, logs or errors."""

    __tablename__ = "inventory"
    __table_args__ = (
        UniqueConstraint("kind", "name", name="uq_inventory_kind_name"),
        Index("ix_inventory_last_seen", "last_seen"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # host | service
    name: Mapped[str] = mapped_column(String(255))
    labels: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)  # os, source, environment...
    telemetry: Mapped[list[str]] = mapped_column(JSONType, default=list)  # metrics, logs, errors
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
