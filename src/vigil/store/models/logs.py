"""Log intelligence: stored lines, their templates (clusters) and the miners' saved state.

Times of log lines are integer nanoseconds since the epoch (``time_ns``), as they arrive on the
bus: exact, cheap to index and compare on both databases, and what keyset cursors carry.
The full-text index is not modelled here: migration 0003 creates it per dialect (a generated
``tsvector`` column + GIN index on PostgreSQL, an external-content FTS5 table on SQLite).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.models.base import Base
from vigil.store.types import BigIntPK, JSONType, UTCDateTime, utcnow


class LogLine(Base):
    __tablename__ = "log_lines"
    __table_args__ = (
        Index("ix_log_lines_time", "time_ns", "id"),
        Index("ix_log_lines_host_time", "host", "time_ns"),
        Index("ix_log_lines_source_time", "source", "time_ns"),
        Index("ix_log_lines_service_time", "service", "time_ns"),
        Index("ix_log_lines_template_time", "template_id", "time_ns"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    time_ns: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(128))  # the miner shard key; "default" when unset
    host: Mapped[str | None] = mapped_column(String(255))
    service: Mapped[str | None] = mapped_column(String(255))
    level: Mapped[str | None] = mapped_column(String(16))
    os: Mapped[str | None] = mapped_column(String(64))
    facility: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    template_id: Mapped[int | None] = mapped_column(BigInteger)
    params: Mapped[list[str]] = mapped_column(JSONType, default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class LogTemplate(Base):
    """A template (cluster) of one source. ``id`` is global; (source, local_id) is the miner's id.

    ``canonical_id`` is the template that absorbed this one when the miner merged them (its own
    id otherwise), so lines stored under an old id stay reachable from the surviving cluster.
    """

    __tablename__ = "log_templates"
    __table_args__ = (UniqueConstraint("source", "local_id", name="uq_log_templates_source_local_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(128))
    local_id: Mapped[int] = mapped_column(Integer)
    canonical_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    template: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    first_seen_ns: Mapped[int] = mapped_column(BigInteger)
    last_seen_ns: Mapped[int] = mapped_column(BigInteger)
    examples: Mapped[list[str]] = mapped_column(JSONType, default=list)
    first_level: Mapped[str | None] = mapped_column(String(16))
    # Classification: how it was obtained (rule | model | operator) and how sure it is.
    failure_type: Mapped[str] = mapped_column(String(32), default="none", index=True)
    severity: Mapped[str] = mapped_column(String(16), default="low")
    component: Mapped[str | None] = mapped_column(String(64))
    label_method: Mapped[str] = mapped_column(String(16), default="rule")
    label_confidence: Mapped[float] = mapped_column(Float, default=0.0)
    label_reason: Mapped[str | None] = mapped_column(Text)
    labelled_by: Mapped[str | None] = mapped_column(String(128))
    labelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    model_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The template text last written to the vector store (None: not embedded yet).
    embedded_template: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LogMinerState(Base):
    """A source's miner snapshot and the last stored line it had seen (for replay on restore)."""

    __tablename__ = "log_miner_state"

    source: Mapped[str] = mapped_column(String(128), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[str] = mapped_column(Text)  # JSON text of TemplateMiner.snapshot()
    last_line_id: Mapped[int] = mapped_column(BigInteger, default=0)
    templates: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LogProcessedMessage(Base):
    """Bus messages a shard has stored, so a redelivery after a crash does not store twice."""

    __tablename__ = "log_processed_messages"

    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
