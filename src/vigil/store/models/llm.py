"""LLM usage accounting, root-cause analyses, and the memory of resolved incidents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.models.base import Base
from vigil.store.types import BigIntPK, JSONType, UTCDateTime, utcnow


class LLMUsage(Base):
    """One model call (or one rejected answer): tokens, cost and outcome, per feature."""

    __tablename__ = "llm_usage"
    __table_args__ = (Index("ix_llm_usage_feature_created_at", "feature", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    feature: Mapped[str] = mapped_column(String(64))  # classification | second_opinion | summary | rca ...
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(255))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | retry | error | invalid_output
    error: Mapped[str | None] = mapped_column(Text)


class RCAResult(Base):
    """One root-cause analysis of an incident. Re-runs add rows; the newest is current."""

    __tablename__ = "rca_results"
    __table_args__ = (Index("ix_rca_results_incident_created", "incident_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    trigger: Mapped[str] = mapped_column(String(32))  # incident.created | incident.updated | api ...
    generated_by: Mapped[str] = mapped_column(String(255))  # "rules" | "model:<name>"
    # Why a configured model's answer was not used (unavailable, invalid output, bad citations).
    fallback_reason: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    explanation: Mapped[str] = mapped_column(Text)
    next_steps: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    hypotheses: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    evidence: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    citations: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    similar: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    notices: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    alert_count: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)


class IncidentMemory(Base):
    """A resolved incident as remembered for "similar past incidents": the text that was
    embedded into the vector store and what fixed it."""

    __tablename__ = "incident_memory"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    embedder: Mapped[str] = mapped_column(String(128))
    document: Mapped[str] = mapped_column(Text)
    resolution: Mapped[str | None] = mapped_column(Text)
    embedded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
