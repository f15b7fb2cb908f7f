"""Deterministic ranking of candidate root causes for an incident. Pure: no I/O.

Input: evidence items (metric anomalies, predictions, new or bursting log templates, error
groups, releases and changes, alerts) gathered around the incident's start, and the incident's
scope (start, hosts, services, known topology). Output: hypotheses, best first, each with the
ids of the evidence behind it and the reasons for its place.

Evidence about the same thing is one candidate cause: signals of one failure category on one
host ("disk full on web-03": a disk anomaly, a prediction and a "No space left on device"
template), or one release of one service together with the error groups it introduced.
Candidates are scored on four things, in the spirit of how an SRE reads a timeline:

- timing (0.3): causes come before their effects, so the candidate whose first signal came
  earliest ranks best; rank-based (robust to scale), halved for a candidate that only began
  after the incident started (more likely a consequence), and neutral (0.5) for a condition
  older than the analysis horizon (it was there long before anything broke).
- topology (0.3): on the incident's own hosts or services (1.0), on a host running one of its
  services (0.9), on something they depend on (0.7), unscoped (0.5), elsewhere (0.15).
- specificity (0.3): a specific failure (a change, a new error template naming a failure, a
  resource exhaustion) explains more than a generic symptom (CPU, latency, error rate).
- strength (0.1): the strongest signal's own score, plus a little for corroboration by
  different kinds of evidence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

EVIDENCE_KINDS: Final = (
    "metric_anomaly",
    "prediction",
    "new_log_template",
    "log_burst",
    "error_group",
    "release",
    "change",
    "automation_run",
    "alert",
)
CHANGE_KINDS: Final = frozenset({"release", "change", "automation_run"})

# Failure categories: the log classifier's failure types plus metric families.
RESOURCE: Final = frozenset({"disk_space", "out_of_memory", "hardware"})
FAULT: Final = frozenset({"service_crash", "config_error", "auth_failure", "network"})
SYMPTOM: Final = frozenset({"cpu", "latency", "errors", "traffic", "timeout", "dependency_down"})

CATEGORY_LABELS: Final = {
    "disk_space": "Disk space exhaustion",
    "out_of_memory": "Memory exhaustion",
    "hardware": "Hardware fault",
    "service_crash": "Service crash",
    "config_error": "Configuration error",
    "auth_failure": "Authentication failures",
    "network": "Network fault",
    "cpu": "CPU saturation",
    "latency": "Latency increase",
    "errors": "Error rate increase",
    "traffic": "Traffic change",
    "timeout": "Timeouts",
    "dependency_down": "Dependency unavailable",
}

WEIGHTS: Final = {"timing": 0.3, "topology": 0.3, "specificity": 0.3, "strength": 0.1}
AFTER_START_GRACE_S: Final = 120.0  # detection lags: a signal this soon after the start still counts

# Metric and alert names → category. Order matters: the first match wins ("mem.used_percent"
# is memory, "disk.used_percent" is disk).
_CATEGORY_PATTERNS: Final = (
    ("out_of_memory", re.compile(r"\bmem|memory|swap|\boom|heap|\brss\b", re.I)),
    ("disk_space", re.compile(r"disk|filesystem|\bfs\b|\bdf\b|inode|volume|storage|no space", re.I)),
    (
        "network",
        re.compile(r"\bnet|interface|\bif_?(oper|in|out|hc)|packet|link|bandwidth|\btcp|\bdns|flap", re.I),
    ),
    (
        "hardware",
        re.compile(r"temperature|\bfan\b|power ?supply|\bpsu\b|\becc\b|\bsmart\b|\braid\b|thermal", re.I),
    ),
    ("cpu", re.compile(r"\bcpu|\bload\d*\b|\bsteal\b|iowait|usage_(user|system)", re.I)),
    ("latency", re.compile(r"latency|duration|response_?time|\bp9\d\b|\brtt\b|\bslow", re.I)),
    ("timeout", re.compile(r"time(d)? ?out", re.I)),
    ("errors", re.compile(r"error|exception|\b5xx\b|status_5|fail", re.I)),
    ("traffic", re.compile(r"requests|\brps\b|\bqps\b|connections|throughput", re.I)),
)


def categorise(*texts: str | None) -> str | None:
    """A failure category from metric/alert names and titles, or None."""
    joined = " ".join(t for t in texts if t).replace(".", " ").replace(",", " ")
    for category, pattern in _CATEGORY_PATTERNS:
        if pattern.search(joined):
            return category
    return None


@dataclass(frozen=True, slots=True)
class Evidence:
    id: str  # "E1"...: cited by explanations, stable within one analysis
    kind: str  # one of EVIDENCE_KINDS
    title: str
    onset: float  # epoch seconds when it began
    host: str | None = None
    service: str | None = None
    score: float = 0.5  # 0..1, the source's own strength (anomaly score, burst ratio...)
    subject: str = ""  # what it is about: series key, template id, fingerprint, release...
    category: str | None = None  # failure category when known (see CATEGORY_LABELS)
    is_new: bool = False  # first seen in the window (a new template, a new error group)
    release: str | None = None  # error groups: the release they were first seen in
    ref: Mapping[str, Any] = field(default_factory=dict)  # pointers: alert_id, template_id...
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "onset": self.onset,
            "host": self.host,
            "service": self.service,
            "score": round(self.score, 4),
            "subject": self.subject,
            "category": self.category,
            "is_new": self.is_new,
            "release": self.release,
            "ref": dict(self.ref),
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class Scope:
    """Where and when the incident is, and what is known of the topology around it."""

    start: float
    hosts: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    runs_on: Mapping[str, frozenset[str]] = field(default_factory=dict)  # service -> hosts
    depends_on: Mapping[str, frozenset[str]] = field(default_factory=dict)  # service -> callees
    # Signals that began longer than this before the start are long-standing conditions (an old
    # prediction still open), not changes that could have triggered the incident.
    horizon_s: float = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class Hypothesis:
    rank: int
    key: str
    title: str
    kind: str  # the kind of its most specific evidence
    category: str | None
    host: str | None
    service: str | None
    score: float
    timing: float
    topology: float
    specificity: float
    strength: float
    onset: float
    lead_s: float  # how long before the incident start it began (negative: after)
    evidence_ids: tuple[str, ...]
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "key": self.key,
            "title": self.title,
            "kind": self.kind,
            "category": self.category,
            "host": self.host,
            "service": self.service,
            "score": round(self.score, 4),
            "components": {
                "timing": round(self.timing, 4),
                "topology": round(self.topology, 4),
                "specificity": round(self.specificity, 4),
                "strength": round(self.strength, 4),
            },
            "onset": self.onset,
            "lead_s": round(self.lead_s, 1),
            "evidence_ids": list(self.evidence_ids),
            "reasons": list(self.reasons),
        }


def predicted_exhaustion(e: Evidence) -> float | None:
    """When a prediction expected the resource to run out (epoch seconds), if it says."""
    for key in ("eta_s", "eta_seconds", "eta"):
        value = e.details.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return e.onset + float(value)
    value = e.details.get("exhausted_at")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def specificity(e: Evidence, start: float | None = None) -> float:
    """How much a signal of this kind explains, as opposed to merely showing that something is wrong."""
    category = e.category
    if e.kind in CHANGE_KINDS:
        return 0.85
    if e.kind == "new_log_template":
        if category in RESOURCE or category in FAULT:
            return 0.9
        return 0.55 if category else 0.4
    if e.kind == "error_group":
        return 0.8 if e.is_new else 0.6
    if e.kind == "prediction":
        exhausted_at = predicted_exhaustion(e)
        if exhausted_at is not None and start is not None and exhausted_at > start + 3600:
            return 0.45  # the resource was not expected to run out until well after the incident
        return 0.8 if category in RESOURCE else 0.6
    if e.kind == "log_burst":
        if category in RESOURCE or category in FAULT:
            return 0.75
        return 0.5 if category else 0.3  # a burst of routine messages explains little
    if e.kind == "metric_anomaly":
        # Saturated resources explain the service symptoms (latency, errors) they cause.
        if category in RESOURCE:
            return 0.65
        return {"network": 0.55, "cpu": 0.5}.get(category or "", 0.35)
    # Alerts raised elsewhere (Alertmanager, SNMP, Redfish...): as specific as a burst of log
    # messages naming the same fault when they name one ("link down", "disk failed").
    if category in RESOURCE or category in FAULT:
        return 0.75
    return 0.3


def _reachable(start: frozenset[str], edges: Mapping[str, frozenset[str]], hops: int) -> set[str]:
    seen: set[str] = set()
    frontier = set(start)
    for _ in range(hops):
        frontier = {callee for s in frontier for callee in edges.get(s, ())} - seen - set(start)
        if not frontier:
            break
        seen |= frontier
    return seen


def topology(e: Evidence, scope: Scope) -> tuple[float, str]:
    if (e.host and e.host in scope.hosts) or (e.service and e.service in scope.services):
        where = e.host if e.host in scope.hosts else e.service
        return 1.0, f"on {where}, where the incident is"
    hosts_of_scope_services = {h for s in scope.services for h in scope.runs_on.get(s, ())}
    services_on_host = {s for s, hosts in scope.runs_on.items() if e.host and e.host in hosts}
    if e.host and e.host in hosts_of_scope_services:
        return 0.9, f"on {e.host}, which runs an affected service"
    if e.service and any(h in scope.hosts for h in scope.runs_on.get(e.service, ())):
        return 0.9, f"{e.service} runs on an affected host"
    upstream = _reachable(scope.services, scope.depends_on, hops=2)
    if (e.service and e.service in upstream) or (services_on_host & upstream):
        return 0.7, f"{e.service or e.host} is a dependency of an affected service"
    if not e.host and not e.service:
        return 0.5, "not tied to a host or service"
    return 0.15, f"on {e.host or e.service}, outside the incident"


def _candidate_key(e: Evidence) -> str:
    where = e.host or e.service or "-"
    if e.kind in CHANGE_KINDS:
        return f"{e.kind}:{e.service or e.host or '-'}:{e.subject}"
    if e.category:
        return f"{e.category}@{where}"
    return f"{e.kind}:{e.subject or e.title}@{where}"


def group_candidates(evidence: Sequence[Evidence]) -> dict[str, list[Evidence]]:
    """Evidence about the same thing, by candidate key. Error groups first seen in a release
    that is itself evidence join that release: "release X introduced error Y"."""
    groups: dict[str, list[Evidence]] = {}
    releases = {(e.service or e.host, e.subject): _candidate_key(e) for e in evidence if e.kind == "release"}
    for e in evidence:
        key = _candidate_key(e)
        if e.kind == "error_group" and e.release:
            key = releases.get((e.service or e.host, e.release), key)
        groups.setdefault(key, []).append(e)
    return groups


def _human_duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _title(items: Sequence[Evidence], lead: Evidence) -> str:
    where = lead.host or lead.service
    if lead.kind in CHANGE_KINDS:
        noun = {"release": "Release", "change": "Change", "automation_run": "Automation run"}[lead.kind]
        target = f" of {lead.service or lead.host}" if (lead.service or lead.host) else ""
        text = f"{noun} {lead.subject}{target}"
        errors = [e for e in items if e.kind == "error_group"]
        if errors:
            text += f", followed by {len(errors)} new error group{'s' if len(errors) > 1 else ''}"
        return text
    if lead.category in CATEGORY_LABELS:
        return f"{CATEGORY_LABELS[lead.category]} on {where or 'an unscoped source'}: {lead.title}"
    return f"{lead.title}{f' on {where}' if where and where not in lead.title else ''}"


def rank(evidence: Sequence[Evidence], scope: Scope) -> list[Hypothesis]:
    """Candidate causes, best first. Deterministic: ties break on onset, then key."""
    groups = group_candidates(evidence)
    if not groups:
        return []
    onsets = {key: min(e.onset for e in items) for key, items in groups.items()}
    # Only recent signals compete on timing; a standing condition sits outside the order.
    ordered = sorted({o for o in onsets.values() if scope.start - o <= scope.horizon_s})
    position = {onset: i for i, onset in enumerate(ordered)}
    span = max(1, len(ordered) - 1)

    hypotheses: list[Hypothesis] = []
    for key, items in groups.items():
        onset = onsets[key]
        first = min(items, key=lambda e: (e.onset, e.id))
        timing = 1.0 - 0.7 * position[onset] / span if onset in position else 0.5
        reasons = []
        lead_s = scope.start - onset
        if lead_s >= 0:
            reasons.append(f"began {_human_duration(lead_s)} before the incident ({first.id})")
        else:
            reasons.append(f"began {_human_duration(lead_s)} after the incident started ({first.id})")
        if position.get(onset) == 0 and len(ordered) > 1:
            reasons.append("the earliest signal")
        if -lead_s > AFTER_START_GRACE_S:
            timing *= 0.5
        elif lead_s > scope.horizon_s:
            timing = 0.5
            reasons.append(f"a long-standing condition (open for {_human_duration(lead_s)})")
        places = [topology(e, scope) for e in items]
        topo, topo_reason = max(places, key=lambda p: p[0])
        reasons.append(topo_reason)
        most_specific = max(items, key=lambda e: (specificity(e, scope.start), e.score, -e.onset))
        spec = specificity(most_specific, scope.start)
        if spec >= 0.75:
            reasons.append(f"specific evidence: {most_specific.kind.replace('_', ' ')} ({most_specific.id})")
        elif spec <= 0.4:
            reasons.append("a generic symptom")
        kinds = {e.kind for e in items}
        strength = min(1.0, max(e.score for e in items) + 0.1 * (len(kinds) - 1))
        if len(kinds) > 1:
            reasons.append(f"corroborated by {len(kinds)} kinds of evidence")
        score = (
            WEIGHTS["timing"] * timing
            + WEIGHTS["topology"] * topo
            + WEIGHTS["specificity"] * spec
            + WEIGHTS["strength"] * strength
        )
        hypotheses.append(
            Hypothesis(
                rank=0,
                key=key,
                title=_title(items, most_specific),
                kind=most_specific.kind,
                category=most_specific.category or first.category,
                host=most_specific.host or first.host,
                service=most_specific.service or first.service,
                score=score,
                timing=timing,
                topology=topo,
                specificity=spec,
                strength=strength,
                onset=onset,
                lead_s=lead_s,
                evidence_ids=tuple(e.id for e in sorted(items, key=lambda e: (e.onset, e.id))),
                reasons=tuple(reasons),
            )
        )
    hypotheses.sort(key=lambda h: (-round(h.score, 9), h.onset, h.key))
    return [replace(h, rank=i + 1) for i, h in enumerate(hypotheses)]


def timeline(evidence: Sequence[Evidence], scope: Scope) -> list[dict[str, Any]]:
    """Which came first: evidence in onset order with its lead over the incident start."""
    return [
        {"id": e.id, "onset": e.onset, "lead_s": round(scope.start - e.onset, 1), "title": e.title}
        for e in sorted(evidence, key=lambda e: (e.onset, e.id))
    ]
