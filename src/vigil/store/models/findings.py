"""Metric intelligence: findings (from every detector), detector state, prediction rules.

A *finding* is one occurrence of something a detector concluded (an anomaly on a series, a
"disk full in 3 days" prediction, a log burst...): it opens, may be updated, and resolves.
``occurrence_ns`` identifies the occurrence within its (kind, key): the time it opened, as the
detector that raised it reports it, so a replayed or reordered event lands on the same row.

Detector state is the compact per-series state of the detect stage (``SeriesState.to_bytes``),
saved by the partition that owns the series, so another worker can continue it exactly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.models.base import Base
from vigil.store.types import BigIntPK, JSONType, UTCDateTime, utcnow


class FindingRecord(Base):
    __tablename__ = "findings"
    __table_args__ = (
        UniqueConstraint("kind", "key", "occurrence_ns", name="uq_findings_kind_key_occurrence"),
        Index("ix_findings_opened", "opened_at", "id"),
        Index("ix_findings_key_opened", "key", "opened_at"),
        Index("ix_findings_state_opened", "state", "opened_at"),
        Index("ix_findings_host_opened", "host", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(1024))
    occurrence_ns: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))  # open | resolved
    host: Mapped[str | None] = mapped_column(String(255))
    service: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(512))
    score: Mapped[float] = mapped_column(Float)  # the highest score reported for the occurrence
    severity: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)  # time of the latest event applied
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_event_ns: Mapped[int] = mapped_column(BigInteger)  # orders events that arrive out of order
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MetricDetectorState(Base):
    """One series' detector state, written by the worker holding its partition's lease."""

    __tablename__ = "metric_detector_state"

    series_key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PredictionRule(Base):
    """Which series get exhaustion forecasts, in addition to (and before) the built-in rules.

    Patterns are shell globs (``disk``, ``*pool*``); ``tags`` maps tag names to globs. The first
    matching rule decides: ``action`` "predict" forecasts the series towards ``threshold``
    (rising, or falling for e.g. free inodes), "ignore" excludes it from prediction.
    """

    __tablename__ = "metric_prediction_rules"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    measurement: Mapped[str] = mapped_column(String(255))
    field: Mapped[str] = mapped_column(String(255))
    tags: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    action: Mapped[str] = mapped_column(String(16), default="predict")
    direction: Mapped[str] = mapped_column(String(16), default="rising")
    threshold: Mapped[float] = mapped_column(Float, default=100.0)
    horizon_s: Mapped[float] = mapped_column(Float, default=7 * 86400.0)
    title: Mapped[str | None] = mapped_column(String(255))
    priority: Mapped[int] = mapped_column(Integer, default=100)  # lower first
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
