"""Bus topics, consumer groups and live channels: the pipeline's wiring in one place.

Each data kind has one topic. Every stage that needs a kind reads its topic as its own consumer
group, so each stage sees every message, and replicas of a stage share the work.
"""

from __future__ import annotations

# Topics (durable, consumer groups)
METRICS = "ingest.metrics"  # batches of metric points
LOGS = "ingest.logs"  # batches of log records
ERRORS = "ingest.errors"  # application error events (Sentry)
EXTERNAL_ALERTS = "ingest.alerts"  # alerts raised elsewhere (Alertmanager, device health...)
FINDINGS = "findings"  # anomalies, predictions, log signals -> correlation
# Alert/incident lifecycle -> enrichment (RCA), notifications. Payload (codec JSON):
# {"type": "alert.created" | "alert.updated" | "alert.resolved" | "incident.created" |
#  "incident.updated" | "incident.resolved", "alert_id": int | None, "incident_id": int | None,
#  "time_ns": int}
ALERT_CHANGES = "alerts.changed"

# Broadcast channels (Pub/Sub, not durable): live updates for the API's WebSockets.
LIVE_ALERTS = "live.alerts"
LIVE_METRICS = "live.metrics"
# API replicas announce which series their /ws/metrics clients watch, so the live-metrics
# stage broadcasts only those points: {"replica": str, "series": [filter...], "ttl_s": float}
LIVE_METRICS_INTEREST = "live.metrics.interest"
LIVE_LOGS = "live.logs"

# (topic, group) of every pipeline consumer, for /metrics backlog and lag.
_GROUPS: list[tuple[str, str]] = [
    (METRICS, "ingest"),
    (LOGS, "ingest"),
    (ERRORS, "ingest"),
    (EXTERNAL_ALERTS, "ingest"),
]


def register_group(topic: str, group: str) -> None:
    """Stages declare their (topic, group) here so /metrics reports their backlog."""
    if (topic, group) not in _GROUPS:
        _GROUPS.append((topic, group))


def consumer_groups() -> list[tuple[str, str]]:
    return list(_GROUPS)
