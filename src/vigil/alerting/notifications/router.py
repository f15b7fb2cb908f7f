"""Which channels hear about an alert event, and the delivery rows (an outbox) queued in the
same transaction as the change, so a notification is never lost nor sent for a rolled-back
change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from vigil.alerting.rules import RuleSet
from vigil.store.models import Alert, Incident, NotificationDelivery


def dedup_key(alert_id: int) -> str:
    """One key per Vigil alert: PagerDuty's trigger, acknowledge and resolve meet on it."""
    return f"vigil-alert-{alert_id}"


def route_channels(
    rules: RuleSet, event: str, severity: str, labels: Mapping[str, str]
) -> list[tuple[int, int | None]]:
    """(channel id, route id) for each enabled channel of each route that wants this event,
    each channel once (the first route naming it)."""
    seen: set[int] = set()
    out: list[tuple[int, int | None]] = []
    for route in rules.routes:
        if not route.wants(event, severity, labels):
            continue
        for channel_id in route.channel_ids:
            channel = rules.channels.get(channel_id)
            if channel is None or not channel.enabled or channel_id in seen:
                continue
            seen.add(channel_id)
            out.append((channel_id, route.id))
    return out


def notification_message(
    alert: Alert,
    event: str,
    incident: Incident | None = None,
    *,
    note: str | None = None,
    escalation_level: int | None = None,
) -> dict[str, Any]:
    """What to say, frozen when queued so retries say the same thing."""
    message: dict[str, Any] = {
        "event": event,
        "alert": {
            "id": alert.id,
            "fingerprint": alert.fingerprint,
            "title": alert.title,
            "description": alert.description,
            "severity": alert.severity,
            "status": alert.status,
            "origin": alert.origin,
            "source": alert.source,
            "host": alert.host,
            "service": alert.service,
            "labels": dict(alert.labels or {}),
            "count": alert.count,
            "first_seen": alert.first_seen.isoformat() if alert.first_seen else None,
            "last_seen": alert.last_seen.isoformat() if alert.last_seen else None,
            "assignee": alert.assignee,
        },
        "incident": {"id": incident.id, "title": incident.title} if incident is not None else None,
    }
    if note:
        message["note"] = note
    if escalation_level is not None:
        message["escalation_level"] = escalation_level
    return message


def deliveries(
    alert: Alert,
    message: dict[str, Any],
    targets: Sequence[tuple[int, int | None]],
    now: datetime,
) -> list[NotificationDelivery]:
    return [
        NotificationDelivery(
            channel_id=channel_id,
            route_id=route_id,
            alert_id=alert.id,
            incident_id=alert.incident_id,
            event=message["event"],
            status="pending",
            attempts=0,
            next_attempt_at=now,
            dedup_key=dedup_key(alert.id),
            message=message,
            created_at=now,
        )
        for channel_id, route_id in targets
    ]
