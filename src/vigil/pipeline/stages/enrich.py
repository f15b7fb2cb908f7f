"""The enrich stage: root-cause analysis, model summaries and incident memory, from
``topology.ALERT_CHANGES`` (consumer group "enrich").

Per batch, changes are folded per incident. An incident is analysed when it is new to the stage
(no stored RCA yet) and re-analysed when alerts joined it since the last analysis, at most once
per ``min_rerun_s`` unless its alert count grew by half or more (a model call per joining alert
would cost too much); even then at most once per ``min_growth_rerun_s``, so an alert storm that
doubles an incident every second is not analysed every second (in a worker that also runs the
alerting stages, those analyses held back new alerts: live-update p99 ~180 → ~115 ms).
With a model configured its summary is rewritten at the same moments.
A resolved incident is remembered for "similar past incidents" (and analysed first if it never
was). Incidents are handled concurrently; a failure leaves only that incident's messages for
redelivery, and a deleted incident is simply skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vigil.backends import Backends
from vigil.bus.base import Bus, Message
from vigil.domain import codec
from vigil.pipeline import topology
from vigil.pipeline.runner import BatchOutcome, PoisonMessage
from vigil.rca.service import RCAService, latest_analysis
from vigil.store.db import Database
from vigil.store.models import Incident, RCAResult
from vigil.store.types import utcnow

log = logging.getLogger(__name__)

INCIDENT_EVENTS = ("incident.created", "incident.updated", "incident.resolved")
ALERT_EVENTS = ("alert.created", "alert.updated", "alert.resolved")


@dataclass
class _Work:
    message_ids: list[str] = field(default_factory=list)
    types: set[str] = field(default_factory=set)


class EnrichStage:
    name = "enrich"
    topic = topology.ALERT_CHANGES
    group = "enrich"
    # Every alert change lands here; per batch the cost is per incident, not per message. Taking
    # a second's worth at a time keeps an alert storm from costing a session per alerting
    # transaction, on the worker that also runs the alerting stages.
    batch_size = 2000
    batch_interval_s = 1.0

    def __init__(
        self,
        db: Database,
        bus: Bus,
        rca: RCAService,
        *,
        summarizer: Any = None,  # an IncidentSummarizer (the LLM one); None keeps the rules summary
        refresh_summary: Any = None,  # async (incident_id, summarizer) -> Summary, from alerting
        min_rerun_s: float = 60.0,
        min_growth_rerun_s: float = 5.0,
        concurrency: int = 4,
    ) -> None:
        self.db = db
        self.bus = bus
        self.rca = rca
        self.summarizer = summarizer
        self.refresh_summary = refresh_summary
        self.min_rerun_s = min_rerun_s
        self.min_growth_rerun_s = min_growth_rerun_s
        self._slots = asyncio.Semaphore(concurrency)

    async def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        outcome = BatchOutcome()
        work: dict[int, _Work] = {}
        for message in messages:
            try:
                event = codec.decode(message.payload)
                if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                    raise ValueError("not an alert change event")
                incident_id = event.get("incident_id")
            except ValueError as exc:
                outcome.failed[message.id] = PoisonMessage(f"undecodable alert change: {exc}")
                continue
            if event["type"] not in INCIDENT_EVENTS + ALERT_EVENTS:
                continue
            if isinstance(incident_id, bool) or not isinstance(incident_id, int):
                continue  # an alert outside any incident: nothing to analyse
            item = work.setdefault(incident_id, _Work())
            item.message_ids.append(message.id)
            item.types.add(event["type"])

        async def one(incident_id: int, item: _Work) -> None:
            async with self._slots:
                try:
                    await self.enrich(incident_id, item.types)
                except Exception as exc:
                    log.warning("enrich failed for incident %s: %s", incident_id, exc, exc_info=exc)
                    for message_id in item.message_ids:
                        outcome.failed[message_id] = exc

        await asyncio.gather(*(one(i, w) for i, w in work.items()))
        return outcome

    async def enrich(self, incident_id: int, types: set[str]) -> None:
        async with self.db.session() as session:
            incident = await session.get(Incident, incident_id)
            if incident is None:
                return  # deleted since: nothing to do
            resolved = incident.resolved_at is not None
            alert_count = incident.alert_count
            # Only when and at what size it was last analysed, not the stored evidence: this
            # runs for every change of a busy incident, and decoding the evidence was most of it.
            columns = (RCAResult.alert_count, RCAResult.created_at)
            latest = (await session.execute(latest_analysis(incident_id, *columns))).first()
        due, trigger = self._due(latest, alert_count, types, resolved)
        if due:
            row = await self.rca.analyze(incident_id, trigger=trigger)
            await self._announce(incident_id, row.id, row.generated_by)
            if self.summarizer is not None and self.refresh_summary is not None and not resolved:
                await self.refresh_summary(incident_id, self.summarizer)
        if resolved and "incident.resolved" in types:
            await self.rca.remember(incident_id)

    def _due(self, latest: Any, alert_count: int, types: set[str], resolved: bool) -> tuple[bool, str]:
        if latest is None:
            return True, "incident.resolved" if resolved else "incident.created"
        if resolved or latest.alert_count == alert_count:
            return False, ""
        age = (utcnow() - latest.created_at).total_seconds()
        grew = alert_count >= max(latest.alert_count * 1.5, latest.alert_count + 1)
        return age >= self.min_rerun_s or (grew and age >= self.min_growth_rerun_s), "incident.updated"

    async def _announce(self, incident_id: int, rca_id: int, generated_by: str) -> None:
        event = {
            "type": "incident.rca",
            "incident": {"id": incident_id, "rca_id": rca_id, "generated_by": generated_by},
            "time_ns": time.time_ns(),
        }
        try:
            await self.bus.broadcast(
                topology.LIVE_ALERTS, codec.encode({"type": "alerts", "events": [event]})
            )
        except Exception as exc:  # live updates are best effort
            log.debug("could not announce the RCA of incident %s: %s", incident_id, exc)


def enrich_stage(backends: Backends) -> EnrichStage:
    from vigil.llm.factory import incident_summarizer
    from vigil.rca.wiring import rca_service_for

    summarizer = incident_summarizer(backends)
    refresh = None
    if summarizer is not None:
        from vigil.alerting.service import AlertService

        refresh = AlertService(backends.db, backends.bus).refresh_summary
    concurrency = backends.settings.llm_concurrency if backends.settings.llm_provider != "none" else 4
    return EnrichStage(
        backends.db,
        backends.bus,
        rca_service_for(backends),
        summarizer=summarizer,
        refresh_summary=refresh,
        concurrency=concurrency,
    )
