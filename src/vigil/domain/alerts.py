"""Alert signals from every origin, before deduplication turns them into stored alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")
AlertStatus = Literal["new", "acknowledged", "in_progress", "resolved", "suppressed"]
Origin = Literal[
    "log", "anomaly", "predictive", "error", "alertmanager", "snmp", "redfish", "manual", "external"
]


@dataclass(slots=True)
class AlertSignal:
    """"Something is wrong" (or "it is fine again", with ``resolved``) from one origin.

    The correlate stage turns signals into alerts: same fingerprint → same alert (count and
    last-seen updated); a resolved signal resolves the alert.
    """

    origin: str
    title: str
    severity: Severity
    time_ns: int
    host: str | None = None
    service: str | None = None
    description: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None  # when the origin has its own (Alertmanager does)
    resolved: bool = False
    source: str | None = None  # Vigil source name
    evidence: list[dict[str, Any]] = field(default_factory=list)  # links to findings, logs, errors...

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin, "title": self.title, "severity": self.severity,
            "time_ns": self.time_ns, "host": self.host, "service": self.service,
            "description": self.description, "labels": self.labels, "annotations": self.annotations,
            "fingerprint": self.fingerprint, "resolved": self.resolved, "source": self.source,
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlertSignal:
        return cls(
            origin=d["origin"], title=d["title"], severity=d["severity"], time_ns=int(d["time_ns"]),
            host=d.get("host"), service=d.get("service"), description=d.get("description"),
            labels=dict(d.get("labels") or {}), annotations=dict(d.get("annotations") or {}),
            fingerprint=d.get("fingerprint"), resolved=bool(d.get("resolved")),
            source=d.get("source"), evidence=list(d.get("evidence") or []),
        )
