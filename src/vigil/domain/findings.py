"""Findings: what the detect and predict stages (and log signals) conclude, with evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FindingKind = Literal["anomaly", "prediction", "log_burst", "new_error_template", "error_spike"]
FindingState = Literal["open", "update", "resolved"]


@dataclass(slots=True)
class Finding:
    kind: str  # one of FindingKind
    key: str  # stable identity of what it is about, e.g. "cpu.usage_user{host=web-03}"
    state: str  # one of FindingState
    time_ns: int
    title: str
    score: float  # 0..1
    severity: str  # critical | high | medium | low
    host: str | None = None
    service: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "key": self.key, "state": self.state, "time_ns": self.time_ns,
            "title": self.title, "score": self.score, "severity": self.severity, "host": self.host,
            "service": self.service, "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(
            kind=d["kind"], key=d["key"], state=d["state"], time_ns=int(d["time_ns"]), title=d["title"],
            score=float(d["score"]), severity=d["severity"], host=d.get("host"), service=d.get("service"),
            evidence=dict(d.get("evidence") or {}),
        )
