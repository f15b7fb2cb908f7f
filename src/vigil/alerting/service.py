"""The alert service: one entry point for the pipeline and the API.

``transaction()`` opens the serialised alerting transaction with the current rules, yields an
``AlertOps`` to make changes with, writes what needs ids, commits, then announces the changes
(``ALERT_CHANGES`` and the live channel). ``dry_run`` answers "what would this signal become"
without writing anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from vigil.alerting.events import ChangeSet, publish_changes
from vigil.alerting.ops import AlertingOptions, AlertOps, alerting_transaction, as_datetime
from vigil.alerting.rules import RuleCache
from vigil.alerting.summary import IncidentSummarizer, Summary, apply_summary, incident_snapshot
from vigil.alerting.topology import TopologySource
from vigil.analytics.correlation import (
    AlertFeatures,
    choose_incident,
    compute_fingerprint,
    signal_labels,
    silencing,
)
from vigil.bus.base import Bus
from vigil.domain.alerts import AlertSignal
from vigil.store.db import Database
from vigil.store.models import Alert, Incident
from vigil.store.types import utcnow


@dataclass(frozen=True)
class IngestResult:
    alert_ids: list[int]
    created: int
    changes: int


class AlertService:
    def __init__(
        self,
        db: Database,
        bus: Bus,
        *,
        options: AlertingOptions | None = None,
        rules_ttl_s: float = 1.0,
        topology_ttl_s: float = 60.0,
    ) -> None:
        self.db = db
        self.bus = bus
        self.options = options or AlertingOptions()
        self.rules = RuleCache(rules_ttl_s)
        self.topology = TopologySource(db, topology_ttl_s)

    @asynccontextmanager
    async def transaction(
        self, *, fresh_rules: bool = False, now: datetime | None = None
    ) -> AsyncIterator[AlertOps]:
        """Make changes through the yielded AlertOps; they commit and are announced on exit
        (nothing is written or announced when the body raises). ``now`` overrides the clock,
        for replays and tests."""
        if fresh_rules:
            self.rules.invalidate()
        async with alerting_transaction(self.db) as session:
            now = now or utcnow()
            rules = await self.rules.get(session, now)
            ops = AlertOps(session, rules, options=self.options, topology=self.topology.get, now=now)
            yield ops
            await ops.finish()
        await publish_changes(self.bus, ops.changes)

    async def ingest(self, signals: Sequence[AlertSignal]) -> IngestResult:
        async with self.transaction() as ops:
            alerts = await ops.apply_signals(signals)
            created = sum(1 for c in ops.changes.items if c.type == "alert.created")
        return IngestResult([a.id for a in alerts], created, len(ops.changes.rendered))

    async def dry_run(self, signal: AlertSignal) -> dict[str, Any]:
        """Which fingerprint, alert, silences and incident the signal would get; no writes."""
        async with self.db.session() as session:
            now = utcnow()
            rules = await self.rules.get(session, now)
            fp = compute_fingerprint(signal, rules.fingerprint_fields.get(signal.origin))
            existing = (
                await session.execute(
                    select(Alert).where(Alert.fingerprint == fp.fingerprint, Alert.resolved_at.is_(None))
                )
            ).scalar_one_or_none()
            reopen: Alert | None = None
            if existing is None:
                since = as_datetime(signal.time_ns) - timedelta(seconds=self.options.reopen_window_s)
                reopen = (
                    await session.execute(
                        select(Alert)
                        .where(Alert.fingerprint == fp.fingerprint, Alert.resolved_at >= since)
                        .order_by(Alert.resolved_at.desc())
                        .limit(1)
                    )
                ).scalar_one_or_none()
            labels = signal_labels(signal)
            silenced = silencing(rules.silences, labels, now)
            alert_outcome: dict[str, Any]
            if signal.resolved:
                alert_outcome = {
                    "action": "resolve" if existing is not None else "ignore",
                    "alert_id": existing.id if existing is not None else None,
                }
            elif existing is not None:
                alert_outcome = {"action": "refire", "alert_id": existing.id, "count": existing.count + 1}
            elif reopen is not None:
                alert_outcome = {"action": "reopen", "alert_id": reopen.id}
            else:
                alert_outcome = {"action": "create", "alert_id": None}
            incident: dict[str, Any]
            target = existing or reopen
            if signal.resolved:
                incident = {
                    "action": "none",
                    "incident_id": target.incident_id if target else None,
                    "reasons": [],
                }
            elif target is not None and target.incident_id is not None:
                incident = {
                    "action": "keep",
                    "incident_id": target.incident_id,
                    "reasons": ["the alert already belongs to this incident"],
                }
            elif silenced:
                incident = {
                    "action": "none",
                    "incident_id": None,
                    "reasons": ["suppressed alerts open no incident"],
                }
            else:
                ops = AlertOps(session, rules, options=self.options, topology=self.topology.get, now=now)
                features = AlertFeatures.of(
                    at_s=as_datetime(signal.time_ns).timestamp(),
                    title=signal.title,
                    origin=signal.origin,
                    host=signal.host,
                    service=signal.service,
                    labels=labels,
                    extra_text=" ".join(signal.labels.values()),
                )
                await ops.learn_pair(signal.host, signal.service)
                candidates = await ops.candidates()
                decision = choose_incident(
                    features,
                    [f for _, f in candidates.values()],
                    await ops.topology(),
                    rules.grouping,
                    self.options.correlation,
                )
                incident = {
                    "action": "join" if decision.incident_id is not None else "create",
                    "incident_id": decision.incident_id,
                    "title": candidates[decision.incident_id][0].title if decision.incident_id else None,
                    "score": decision.score,
                    "reasons": list(decision.reasons),
                    "rule_key": decision.rule_key,
                }
            await session.rollback()
        return {
            "fingerprint": fp.fingerprint,
            "fingerprint_fields": list(fp.fields),
            "fingerprint_values": fp.values,
            "fingerprint_reason": fp.reason,
            "alert": alert_outcome,
            "suppressed_by": silenced,
            "incident": incident,
        }

    async def refresh_summary(self, incident_id: int, summarizer: IncidentSummarizer) -> Summary:
        """Have ``summarizer`` write the incident's summary, store and announce it. The LLM
        layer's seam: call it when an incident changes (e.g. from ``ALERT_CHANGES``)."""
        async with self.db.session() as session:
            snapshot = await incident_snapshot(session, incident_id)
        summary = await summarizer.summarize(snapshot)  # slow (a model): outside the lock
        changes = ChangeSet()
        async with alerting_transaction(self.db) as session:
            incident = await session.get(Incident, incident_id)
            if incident is None:
                raise KeyError(f"incident {incident_id} does not exist")
            if await apply_summary(session, incident, summary, actor=summarizer.name):
                changes.incident("incident.updated", incident, durable=False)
                await session.flush()
                changes.render()
        await publish_changes(self.bus, changes)
        return summary
