"""Retention of stored log lines: by age (``VIGIL_LOG_RETENTION_DAYS``) and by count
(``VIGIL_LOG_RETENTION_MAX_LINES``, oldest first). Deletes in small chunks so neither database
holds long locks, and the full-text index follows (GIN by itself, FTS5 through its trigger).
Templates stay: their counts and first/last seen are history, not raw data."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.backends import Backends
from vigil.store.models.logs import LogLine, LogProcessedMessage
from vigil.store.types import utcnow
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)

CHUNK = 5_000
# Redelivery guards are only needed for as long as a message can be redelivered.
PROCESSED_MESSAGES_KEEP = timedelta(days=2)


@dataclass
class RetentionResult:
    by_age: int = 0
    by_count: int = 0


class LogRetention:
    name = "log-retention"

    def __init__(
        self,
        backends: Backends,
        *,
        max_age_days: float | None = None,
        max_lines: int | None = None,
        interval_s: float = 300.0,
    ) -> None:
        settings = backends.settings
        self.backends = backends
        self.max_age_days = settings.log_retention_days if max_age_days is None else max_age_days
        self.max_lines = settings.log_retention_max_lines if max_lines is None else max_lines
        self.interval_s = interval_s

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                result = await self.run_once()
                if result.by_age or result.by_count:
                    log.info(
                        "log retention removed %d old lines and %d over the limit",
                        result.by_age,
                        result.by_count,
                    )
            except Exception as exc:
                log.warning("log retention failed, retrying later: %s", exc)
            await sleep_unless(stopping, self.interval_s)

    async def run_once(self, now_ns: int | None = None) -> RetentionResult:
        db = self.backends.db
        now_ns = time.time_ns() if now_ns is None else now_ns
        result = RetentionResult()
        cutoff = now_ns - int(self.max_age_days * 86_400 * 1e9)
        while True:
            async with db.session() as session:
                ids = select(LogLine.id).where(LogLine.time_ns < cutoff).limit(CHUNK).scalar_subquery()
                deleted = await _delete_ids(session, ids)
            result.by_age += deleted
            if deleted < CHUNK:
                break
        if self.max_lines:
            async with db.session() as session:
                total = int((await session.execute(select(func.count()).select_from(LogLine))).scalar_one())
            excess = total - self.max_lines
            while excess > 0:
                chunk = min(excess, CHUNK)
                async with db.session() as session:
                    ids = (
                        select(LogLine.id)
                        .order_by(LogLine.time_ns, LogLine.id)
                        .limit(chunk)
                        .scalar_subquery()
                    )
                    deleted = await _delete_ids(session, ids)
                result.by_count += deleted
                excess -= chunk
                if deleted == 0:
                    break
        async with db.session() as session:
            await session.execute(
                delete(LogProcessedMessage).where(
                    LogProcessedMessage.processed_at < utcnow() - PROCESSED_MESSAGES_KEEP
                )
            )
        return result


async def _delete_ids(session: AsyncSession, ids: Any) -> int:
    result = cast(CursorResult[Any], await session.execute(delete(LogLine).where(LogLine.id.in_(ids))))
    return int(result.rowcount or 0)
