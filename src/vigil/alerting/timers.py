"""The alerting clock: auto-resolve stale alerts, escalate unacknowledged ones, end flapping,
start and end silences. A worker service; with several workers the alerting lock makes their
passes take turns, and each pass only acts on what is due, so running it twice is harmless."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from vigil.alerting.service import AlertService
from vigil.analytics.correlation import DEFAULT_AUTO_RESOLVE_MINUTES
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TickResult:
    auto_resolved: int
    escalated: int
    stopped_flapping: int
    suppressed: int
    unsuppressed: int


class AlertTimers:
    name = "alert-timers"

    def __init__(self, service: AlertService, interval_s: float = 15.0) -> None:
        self.service = service
        self.interval_s = interval_s

    async def tick(self, now: datetime | None = None) -> TickResult:
        async with self.service.transaction(now=now) as ops:
            origins = sorted(set(DEFAULT_AUTO_RESOLVE_MINUTES) | set(ops.rules.auto_resolve_minutes))
            resolved = await ops.auto_resolve_stale(origins)
            escalated = await ops.escalate_due()
            settled = await ops.settle_flapping()
            suppressed, unsuppressed = await ops.reapply_silences()
        result = TickResult(resolved, escalated, settled, suppressed, unsuppressed)
        if any((resolved, escalated, settled, suppressed, unsuppressed)):
            log.info("alert timers: %s", result)
        return result

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await self.tick()
            await sleep_unless(stopping, self.interval_s)
