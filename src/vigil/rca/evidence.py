"""Evidence for a root-cause analysis: plain records in, ranked-ready ``Evidence`` out.

The gatherer (``vigil.rca.gather``) reads records from the stores; everything here is pure, so
the benchmark and the tests build the same evidence from scripted records. Sources:

- alerts in the window, whatever raised them. Findings (metric anomalies, predictions, log
  bursts, new error templates) become alerts carrying the finding as evidence, so this one
  source covers every detector; alerts from elsewhere (Alertmanager, SNMP, Redfish, Sentry)
  come with it.
- log templates first seen in the window, with their classification (failure type).
- error groups first seen (or regressed) in the window, with the release they appeared in.
- releases first seen in the window (from error events), each with the release it replaced.
- changes and automation runs, from any ``ChangeSource`` registered with the RCA service.

Ids ``E1, E2, ...`` follow onset order, so E1 is always the first thing that went wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vigil.analytics.rca_ranking import Evidence, categorise

FINDING_KINDS = {
    "anomaly": "metric_anomaly",
    "prediction": "prediction",
    "log_burst": "log_burst",
    "new_error_template": "new_log_template",
    "error_spike": "error_group",
}
SEVERITY_SCORE = {"critical": 0.9, "high": 0.75, "medium": 0.5, "low": 0.3}
LOG_CATEGORIES = {
    "disk_space",
    "out_of_memory",
    "service_crash",
    "auth_failure",
    "network",
    "timeout",
    "config_error",
    "hardware",
    "dependency_down",
}


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: int
    origin: str
    title: str
    severity: str
    first_seen: float  # epoch seconds
    host: str | None = None
    service: str | None = None
    last_seen: float | None = None
    resolved_at: float | None = None
    count: int = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    evidence: Sequence[Mapping[str, Any]] = ()
    incident_id: int | None = None


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    id: int
    template: str
    first_seen: float
    count: int = 1
    failure_type: str = "none"
    severity: str = "low"
    component: str | None = None
    hosts: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    example: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorGroupRecord:
    id: int
    title: str
    first_seen: float
    last_seen: float
    count: int = 1
    culprit: str | None = None
    exception_type: str | None = None
    level: str = "error"
    first_release: str | None = None
    last_release: str | None = None
    host: str | None = None
    service: str | None = None
    regressed_at: float | None = None


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    service: str
    release: str
    first_seen: float
    previous: str | None = None
    host: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """A deploy, configuration change or automation run, from a registered change source."""

    id: str
    kind: str  # change | automation_run
    title: str
    at: float
    host: str | None = None
    service: str | None = None
    status: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _finding(alert: AlertRecord) -> Mapping[str, Any] | None:
    for item in alert.evidence:
        if item.get("type") == "finding" or item.get("kind") in FINDING_KINDS:
            return item
    return None


def _number(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def alert_evidence(alert: AlertRecord) -> dict[str, Any]:
    """The Evidence fields for one alert (without an id)."""
    finding = _finding(alert)
    ref: dict[str, Any] = {"alert_id": alert.id}
    if alert.incident_id is not None:
        ref["incident_id"] = alert.incident_id
    if finding is not None:
        kind = FINDING_KINDS.get(str(finding.get("kind")), "metric_anomaly")
        subject = str(finding.get("key") or alert.labels.get("series") or alert.title)
        failure = finding.get("failure_type") or alert.labels.get("failure_type")
        category = (
            str(failure)
            if failure in LOG_CATEGORIES
            else categorise(
                str(finding.get("measurement") or ""), str(finding.get("field") or ""), subject, alert.title
            )
        )
        if finding.get("template_id") is not None:
            ref["template_id"] = finding["template_id"]
        details = {
            k: finding[k]
            for k in (
                "observed",
                "expected",
                "lower",
                "upper",
                "method",
                "methods",
                "eta_s",
                "eta_seconds",
                "eta",
                "exhausted_at",
                "threshold",
                "measurement",
                "field",
                "template",
                "rate",
                "baseline_rate",
            )
            if k in finding
        }
        return {
            "kind": kind,
            "title": alert.title,
            "subject": subject,
            "category": category,
            "score": _clamp(_number(finding.get("score"), SEVERITY_SCORE.get(alert.severity, 0.5))),
            "is_new": kind == "new_log_template",
            "ref": ref,
            "details": {"origin": alert.origin, "severity": alert.severity, "count": alert.count, **details},
        }
    if alert.origin == "error":
        return {
            "kind": "error_group",
            "title": alert.title,
            "subject": alert.labels.get("fingerprint") or alert.title,
            "category": "errors",
            "score": SEVERITY_SCORE.get(alert.severity, 0.5),
            "is_new": True,
            "release": alert.labels.get("release") or None,
            "ref": ref,
            "details": {"origin": alert.origin, "severity": alert.severity, "count": alert.count},
        }
    category = categorise(alert.title, *(str(v) for v in alert.labels.values()))
    return {
        "kind": "alert",
        "title": alert.title,
        "subject": alert.labels.get("alertname") or alert.title,
        "category": category,
        "score": SEVERITY_SCORE.get(alert.severity, 0.5),
        "ref": ref,
        "details": {"origin": alert.origin, "severity": alert.severity, "count": alert.count},
    }


def template_evidence(t: TemplateRecord) -> dict[str, Any]:
    where = f" on {', '.join(t.hosts[:3])}" if t.hosts else ""
    category = t.failure_type if t.failure_type in LOG_CATEGORIES else None
    return {
        "kind": "new_log_template",
        "title": f"New log message{where}: {t.template[:200]}",
        "subject": f"template:{t.id}",
        "category": category,
        "score": SEVERITY_SCORE.get(t.severity, 0.4),
        "is_new": True,
        "ref": {"template_id": t.id},
        "details": {
            "template": t.template[:500],
            "count": t.count,
            "failure_type": t.failure_type,
            "severity": t.severity,
            "component": t.component,
            "example": (t.example or "")[:500],
        },
        "host": t.hosts[0] if t.hosts else None,
        "service": t.services[0] if t.services else None,
    }


def error_group_evidence(g: ErrorGroupRecord, window_start: float) -> dict[str, Any]:
    new = g.first_seen >= window_start
    regressed = g.regressed_at is not None and g.regressed_at >= window_start
    state = "new" if new else "regressed" if regressed else "recurring"
    release = g.first_release if new else g.last_release
    onset = g.first_seen if new else (g.regressed_at or g.first_seen) if regressed else g.last_seen
    return {
        "kind": "error_group",
        "title": f"{state.capitalize()} error: {g.title[:200]}"
        + (f" (release {release})" if release else ""),
        "subject": f"error_group:{g.id}",
        "category": "errors",
        "score": 0.8 if g.level in ("fatal", "error") else 0.5,
        "is_new": new or regressed,
        "release": release,
        "onset": onset,
        "ref": {"error_group_id": g.id},
        "details": {
            "culprit": g.culprit,
            "exception_type": g.exception_type,
            "count": g.count,
            "state": state,
            "first_release": g.first_release,
            "last_release": g.last_release,
        },
        "host": g.host,
        "service": g.service,
    }


def release_evidence(r: ReleaseRecord) -> dict[str, Any]:
    replaced = f", replacing {r.previous}" if r.previous else ""
    return {
        "kind": "release",
        "title": f"Release {r.release} of {r.service} first seen {_clock(r.first_seen)}{replaced}",
        "subject": r.release,
        "category": None,
        "score": 0.7,
        "ref": {"release": r.release},
        "details": {"previous": r.previous},
        "host": r.host,
        "service": r.service,
        "onset": r.first_seen,
    }


def change_evidence(c: ChangeRecord) -> dict[str, Any]:
    return {
        "kind": c.kind if c.kind in ("change", "automation_run") else "change",
        "title": c.title,
        "subject": c.id,
        "category": None,
        "score": 0.7,
        "ref": {"change_id": c.id},
        "details": {"status": c.status, **dict(c.details)},
        "host": c.host,
        "service": c.service,
        "onset": c.at,
    }


def build_evidence(
    *,
    alerts: Iterable[AlertRecord] = (),
    templates: Iterable[TemplateRecord] = (),
    error_groups: Iterable[ErrorGroupRecord] = (),
    releases: Iterable[ReleaseRecord] = (),
    changes: Iterable[ChangeRecord] = (),
    window_start: float,
) -> list[Evidence]:
    """All evidence, ids assigned in onset order. A template or error group already carried by
    an alert is not repeated."""
    drafts: list[dict[str, Any]] = []
    alert_templates: set[str] = set()
    alert_groups: set[str] = set()
    for alert in alerts:
        draft = alert_evidence(alert)
        draft.setdefault("onset", alert.first_seen)
        draft.setdefault("host", alert.host)
        draft.setdefault("service", alert.service)
        if (template_id := draft["ref"].get("template_id")) is not None:
            alert_templates.add(str(template_id))
        for item in alert.evidence:
            if item.get("type") == "error_group" and item.get("id") is not None:
                alert_groups.add(str(item["id"]))
        drafts.append(draft)
    for template in templates:
        if str(template.id) not in alert_templates:
            drafts.append({**template_evidence(template), "onset": template.first_seen})
    for group in error_groups:
        if str(group.id) not in alert_groups:
            drafts.append(error_group_evidence(group, window_start))
    drafts.extend(release_evidence(r) for r in releases)
    drafts.extend(change_evidence(c) for c in changes)
    drafts.sort(key=lambda d: (d["onset"], d["kind"], d["title"]))
    return [
        Evidence(
            id=f"E{i + 1}",
            kind=d["kind"],
            title=d["title"],
            onset=float(d["onset"]),
            host=d.get("host"),
            service=d.get("service"),
            score=float(d.get("score", 0.5)),
            subject=str(d.get("subject") or ""),
            category=d.get("category"),
            is_new=bool(d.get("is_new")),
            release=d.get("release"),
            ref=d.get("ref") or {},
            details={k: v for k, v in (d.get("details") or {}).items() if v is not None},
        )
        for i, d in enumerate(drafts)
    ]


def describe(e: Evidence, start: float) -> str:
    """One line per evidence item, as the explanation prompt and the rules text show it."""
    lead = start - e.onset
    when = f"{abs(lead) / 60:.0f} min {'before' if lead >= 0 else 'after'} the start"
    places = (f"host {e.host}" if e.host else "", f"service {e.service}" if e.service else "")
    where = ", ".join(p for p in places if p)
    facts = []
    for key in ("observed", "expected", "eta_s", "count", "failure_type", "state", "previous", "example"):
        if key in e.details and e.details[key] not in ("", None):
            facts.append(f"{key}={str(e.details[key])[:160]}")
    text = f"[{e.id}] {e.kind.replace('_', ' ')}: {e.title} ({when}{'; ' + where if where else ''})"
    return text + (f" [{'; '.join(facts)}]" if facts else "")
