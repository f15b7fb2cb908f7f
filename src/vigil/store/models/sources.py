"""Data sources: push endpoints (Telegraf, Sentry, logs, Alertmanager) and polled targets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.models.base import Base
from vigil.store.types import BigIntPK, JSONType, UTCDateTime, utcnow


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str | None] = mapped_column(String(512))  # host, URL... for polled sources
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    credentials_encrypted: Mapped[str | None] = mapped_column(Text)  # Fernet token
    interval_s: Mapped[int] = mapped_column(Integer, default=60)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Health, updated by whoever polls or receives for this source.
    status: Mapped[str] = mapped_column(String(16), default="unknown")  # ok | error | unknown
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_latency_ms: Mapped[float | None] = mapped_column(Float)
