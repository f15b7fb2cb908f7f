"""Announcing alert and incident changes once they are committed.

Two audiences: the durable ``topology.ALERT_CHANGES`` topic (enrichment/RCA and anything else
that must see every lifecycle change; shape documented in ``pipeline/topology.py``), and the
``topology.LIVE_ALERTS`` broadcast that every API replica forwards to its ``/ws/alerts``
clients. One broadcast carries a whole batch of changes:
``{"type": "alerts", "events": [{"type", "alert"?, "incident"?, "time_ns"}, ...]}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vigil.bus.base import Bus
from vigil.domain import codec
from vigil.pipeline import topology
from vigil.store.models import Alert, Incident

log = logging.getLogger(__name__)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def alert_brief(alert: Alert) -> dict[str, Any]:
    """The alert as live clients see it (the list view's columns)."""
    return {
        "id": alert.id,
        "fingerprint": alert.fingerprint,
        "origin": alert.origin,
        "source": alert.source,
        "title": alert.title,
        "severity": alert.severity,
        "status": alert.status,
        "host": alert.host,
        "service": alert.service,
        "count": alert.count,
        "first_seen": _iso(alert.first_seen),
        "last_seen": _iso(alert.last_seen),
        "assignee": alert.assignee,
        "suppressed": alert.suppressed,
        "flapping": alert.flapping,
        "incident_id": alert.incident_id,
    }


def incident_brief(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "assignee": incident.assignee,
        "alert_count": incident.alert_count,
        "open_alert_count": incident.open_alert_count,
        "hosts": list(incident.hosts or ()),
        "services": list(incident.services or ()),
        "started_at": _iso(incident.started_at),
        "resolved_at": _iso(incident.resolved_at),
        "summary": incident.summary,
    }


@dataclass
class Change:
    type: str  # alert.created | alert.updated | alert.resolved | incident.created | ...
    alert: Alert | None = None
    incident: Incident | None = None
    durable: bool = True  # False: live clients only (a re-fire that changes nothing else)


@dataclass
class ChangeSet:
    """Changes made in one transaction; rendered after the flush, announced after commit."""

    items: list[Change] = field(default_factory=list)
    rendered: list[tuple[dict[str, Any], bool]] = field(default_factory=list)

    def alert(self, type_: str, alert: Alert, durable: bool = True) -> None:
        self.items.append(Change(type_, alert=alert, durable=durable))

    def incident(self, type_: str, incident: Incident, durable: bool = True) -> None:
        self.items.append(Change(type_, incident=incident, durable=durable))

    def render(self) -> None:
        """Snapshot the rows (ids assigned, still in the transaction) in their final state.
        Updates of a row already announced in this batch fold into its earlier event."""
        time_ns = time.time_ns()
        entries: list[tuple[str, Alert | Incident, bool]] = []
        index: dict[tuple[str, int], int] = {}
        for change in self.items:
            row: Alert | Incident | None = change.alert if change.alert is not None else change.incident
            assert row is not None and row.id is not None
            key = ("alert" if change.alert is not None else "incident", row.id)
            if key in index and change.type.endswith(".updated"):
                type_, earlier, durable = entries[index[key]]
                entries[index[key]] = (type_, earlier, durable or change.durable)
                continue
            index[key] = len(entries)
            entries.append((change.type, row, change.durable))
        self.rendered = []
        for type_, row, durable in entries:
            event: dict[str, Any] = {"type": type_, "time_ns": time_ns}
            if isinstance(row, Alert):
                event["alert"] = alert_brief(row)
            else:
                event["incident"] = incident_brief(row)
            self.rendered.append((event, durable))
        self.items.clear()

    def __bool__(self) -> bool:
        return bool(self.items or self.rendered)


async def publish_changes(bus: Bus, changes: ChangeSet) -> None:
    """Announce committed changes. The data is already stored, so a bus failure here is
    logged rather than raised (the pipeline would otherwise re-apply the whole batch)."""
    if changes.items:
        changes.render()
    if not changes.rendered:
        return
    events = [event for event, _ in changes.rendered]
    durable = []
    for event, is_durable in changes.rendered:
        if not is_durable:
            continue
        alert = event.get("alert")
        incident = event.get("incident")
        durable.append(
            codec.encode(
                {
                    "type": event["type"],
                    "alert_id": alert["id"] if alert else None,
                    "incident_id": incident["id"] if incident else (alert or {}).get("incident_id"),
                    "time_ns": event["time_ns"],
                }
            )
        )

    async def broadcast() -> None:
        try:
            await bus.broadcast(topology.LIVE_ALERTS, codec.encode({"type": "alerts", "events": events}))
        except Exception as exc:  # live updates are best effort
            log.warning("could not broadcast %d alert changes: %s", len(events), exc)

    async def publish() -> None:
        try:
            await bus.publish_many(topology.ALERT_CHANGES, durable)
        except Exception as exc:
            log.error(
                "could not publish %d alert changes to %s: %s", len(durable), topology.ALERT_CHANGES, exc
            )

    if durable:
        await asyncio.gather(broadcast(), publish())
    else:
        await broadcast()
