"""Incident summaries: a deterministic template, and the seam for a model-written one.

``IncidentSummarizer`` is the protocol an LLM-backed summarizer implements. The alert service
keeps the template summary current as alerts join (``Incident.summary_rules``, and
``Incident.summary`` while no model wrote one); a model's summary is stored with
``apply_summary`` (or ``refresh_summary``, which also announces the change) and is shown until
a model writes a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.analytics.correlation import SEVERITY_RANK
from vigil.store.models import Alert, Incident, TimelineEntry

RULES = "rules"
SNAPSHOT_ALERTS = 50


@dataclass(frozen=True, slots=True)
class AlertBrief:
    id: int
    title: str
    severity: str
    status: str
    origin: str
    host: str | None
    service: str | None
    first_seen: datetime
    last_seen: datetime
    count: int
    evidence: tuple[dict[str, object], ...] = ()


@dataclass(frozen=True, slots=True)
class IncidentSnapshot:
    """What a summarizer sees: the incident and its most recent alerts (newest first)."""

    id: int
    title: str
    severity: str
    status: str
    started_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    assignee: str | None
    hosts: tuple[str, ...]
    services: tuple[str, ...]
    categories: tuple[str, ...]
    alert_count: int
    open_alert_count: int
    alerts: tuple[AlertBrief, ...]


@dataclass(frozen=True, slots=True)
class Summary:
    text: str
    generated_by: str  # "rules", or "model:<name>" for a model-written one


class IncidentSummarizer(Protocol):
    name: str

    async def summarize(self, incident: IncidentSnapshot) -> Summary: ...


def _names(values: tuple[str, ...], limit: int = 4) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _clock(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


class TemplateSummarizer:
    """Deterministic summary: where, since when, how bad, what kinds of problem, what is new."""

    name = RULES

    def render(self, incident: IncidentSnapshot) -> str:
        alerts = incident.alerts
        where = []
        if incident.hosts:
            where.append(f"host{'s' if len(incident.hosts) > 1 else ''} {_names(incident.hosts)}")
        if incident.services:
            where.append(f"service{'s' if len(incident.services) > 1 else ''} {_names(incident.services)}")
        place = " and ".join(where) or "no specific host or service"
        count = incident.alert_count
        lines = [
            f"{count} alert{'s' if count != 1 else ''} ({incident.open_alert_count} still firing) on "
            f"{place} since {_clock(incident.started_at)}."
        ]
        if alerts:
            worst = max(alerts, key=lambda a: (SEVERITY_RANK.get(a.severity, 0), -a.first_seen.timestamp()))
            first = min(alerts, key=lambda a: a.first_seen)
            lines.append(f"Most severe ({worst.severity}): {worst.title}.")
            if first.id != worst.id:
                lines.append(f"First sign: {first.title} ({first.origin}, {_clock(first.first_seen)}).")
            latest = max(alerts, key=lambda a: a.first_seen)
            if latest.id not in (first.id, worst.id):
                lines.append(f"Latest: {latest.title} ({latest.origin}, {_clock(latest.first_seen)}).")
        if incident.categories:
            lines.append(f"Kind of problem: {', '.join(incident.categories)}.")
        if incident.resolved_at is not None:
            lines.append(f"Resolved {_clock(incident.resolved_at)}.")
        elif incident.acknowledged_at is not None:
            who = f" by {incident.assignee}" if incident.assignee else ""
            lines.append(f"Acknowledged {_clock(incident.acknowledged_at)}{who}.")
        return " ".join(lines)

    async def summarize(self, incident: IncidentSnapshot) -> Summary:
        return Summary(self.render(incident), RULES)


async def incident_snapshot(session: AsyncSession, incident: Incident | int) -> IncidentSnapshot:
    """The incident and its most recent alerts, for a summarizer (or an RCA)."""
    row = incident if isinstance(incident, Incident) else await session.get(Incident, incident)
    if row is None:
        raise KeyError(f"incident {incident} does not exist")
    return (await incident_snapshots(session, [row]))[row.id]


async def incident_snapshots(session: AsyncSession, incidents: list[Incident]) -> dict[int, IncidentSnapshot]:
    """Snapshots of several incidents (a few at a time: one indexed query each, so a storm of
    thousands of alerts in one incident costs the same as a handful)."""
    alerts: dict[int, list[AlertBrief]] = {}
    for incident in incidents:
        # Columns, not Alert entities: this runs in every alerting transaction, and building
        # 50 ORM objects (with their JSON columns) each time was a large part of its CPU.
        rows = await session.execute(
            select(
                Alert.id,
                Alert.title,
                Alert.severity,
                Alert.status,
                Alert.origin,
                Alert.host,
                Alert.service,
                Alert.first_seen,
                Alert.last_seen,
                Alert.count,
                Alert.evidence,
            )
            .where(Alert.incident_id == incident.id)
            .order_by(Alert.incident_id, Alert.last_seen.desc(), Alert.id.desc())
            .limit(SNAPSHOT_ALERTS)
        )
        alerts[incident.id] = [AlertBrief(*row[:10], tuple(row[10] or ())) for row in rows.all()]
    return {
        row.id: IncidentSnapshot(
            id=row.id,
            title=row.title,
            severity=row.severity,
            status=row.status,
            started_at=row.started_at,
            acknowledged_at=row.acknowledged_at,
            resolved_at=row.resolved_at,
            assignee=row.assignee,
            hosts=tuple(row.hosts or ()),
            services=tuple(row.services or ()),
            categories=tuple(row.categories or ()),
            alert_count=row.alert_count,
            open_alert_count=row.open_alert_count,
            alerts=tuple(alerts.get(row.id, ())),
        )
        for row in incidents
    }


async def apply_summary(
    session: AsyncSession, incident: Incident, summary: Summary, actor: str = "system"
) -> bool:
    """Show ``summary`` on the incident; returns whether the text changed.

    A rules summary is always stored as ``summary_rules``; it replaces the shown summary only
    while no model has written one."""
    changed = False
    if summary.generated_by == RULES:
        incident.summary_rules = summary.text
        if incident.summary_generated_by != RULES and incident.summary:
            return False
    if incident.summary != summary.text or incident.summary_generated_by != summary.generated_by:
        changed = True
        incident.summary = summary.text
        incident.summary_generated_by = summary.generated_by
        if summary.generated_by != RULES:
            session.add(
                TimelineEntry(
                    incident_id=incident.id,
                    kind="summary",
                    actor=actor,
                    message=f"summary written by {summary.generated_by}",
                    data={"summary": summary.text},
                )
            )
    return changed
