"""A source's health in the ``sources`` row: status, last success, last error, latency."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from vigil.store.db import Database
from vigil.store.models import Source
from vigil.store.types import utcnow

MAX_ERROR_LENGTH = 2000


async def record_success(db: Database, source_id: int, latency_ms: float, at: datetime | None = None) -> None:
    await _update(db, source_id, status="ok", last_success_at=at or utcnow(), last_latency_ms=latency_ms)


async def record_failure(
    db: Database, source_id: int, error: str, latency_ms: float | None = None, at: datetime | None = None
) -> None:
    await _update(
        db,
        source_id,
        status="error",
        last_error_at=at or utcnow(),
        last_error=error[:MAX_ERROR_LENGTH],
        last_latency_ms=latency_ms,
    )


async def _update(db: Database, source_id: int, **values: object) -> None:
    # updated_at is set to itself: it means "configuration changed", not "polled".
    async with db.session() as session:
        await session.execute(
            update(Source).where(Source.id == source_id).values(**values, updated_at=Source.updated_at)
        )
