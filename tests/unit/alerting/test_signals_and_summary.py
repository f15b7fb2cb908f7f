"""Signal validation, findings as signals, the template summary and change folding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil.alerting.events import ChangeSet
from vigil.alerting.signals import finding_to_signal, parse_finding, parse_signal
from vigil.alerting.summary import AlertBrief, IncidentSnapshot, TemplateSummarizer
from vigil.domain.findings import Finding
from vigil.store.models import Alert, Incident

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def test_parse_signal_normalises_and_bounds() -> None:
    s = parse_signal(
        {
            "origin": "alertmanager",
            "title": "  x" + "y" * 600,
            "severity": "WARNING",
            "time_ns": 1.5e18,
            "labels": {"a": 1, "b": None},
            "host": "",
            "evidence": [{"k": 1}] * 30,
        }
    )
    assert len(s.title) == 512 and s.title.startswith("x")
    assert s.severity == "medium" and s.time_ns == 1_500_000_000_000_000_000
    assert s.labels == {"a": "1", "b": ""} and s.host is None and len(s.evidence) == 20


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"title": "t", "time_ns": 1}, "origin"),
        ({"origin": "o", "time_ns": 1}, "title"),
        ({"origin": "o", "title": "t", "time_ns": -5}, "time_ns"),
        ({"origin": "o", "title": "t", "time_ns": True}, "time_ns"),
        ({"origin": "o", "title": "t", "time_ns": 1, "labels": ["a"]}, "labels"),
        ({"origin": "o", "title": "t", "time_ns": 1, "evidence": ["a"]}, "evidence"),
    ],
)
def test_parse_signal_names_the_bad_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        parse_signal(raw)


def test_findings_map_to_origins_with_their_key_as_fingerprint() -> None:
    base = {
        "key": "k{host=a}",
        "time_ns": 1,
        "title": "t",
        "score": 0.5,
        "severity": "high",
        "host": "a",
        "evidence": {"template_id": "t-9", "observed": 3},
    }
    origins = {
        kind: finding_to_signal(parse_finding({**base, "kind": kind, "state": "open"})).origin
        for kind in ("anomaly", "prediction", "log_burst", "new_error_template", "error_spike")
    }
    assert origins == {
        "anomaly": "anomaly",
        "prediction": "predictive",
        "log_burst": "log",
        "new_error_template": "log",
        "error_spike": "error",
    }
    log = finding_to_signal(Finding(**{**base, "kind": "log_burst", "state": "resolved"}))  # type: ignore[arg-type]
    assert log.resolved and log.fingerprint == "log_burst:k{host=a}" and log.labels["template_id"] == "t-9"
    assert log.evidence == [
        {
            "type": "finding",
            "kind": "log_burst",
            "key": "k{host=a}",
            "score": 0.5,
            "template_id": "t-9",
            "observed": 3,
        }
    ]
    with pytest.raises(ValueError, match=r"^state:"):
        parse_finding({**base, "kind": "anomaly", "state": "closed"})
    with pytest.raises(ValueError, match=r"^kind: required"):
        parse_finding({k: v for k, v in base.items()})


def _brief(id_: int, title: str, severity: str, minutes: int, origin: str = "anomaly") -> AlertBrief:
    at = T0 + timedelta(minutes=minutes)
    return AlertBrief(id_, title, severity, "new", origin, "web-03", None, at, at, 1)


def test_template_summary_says_where_since_when_how_bad_and_what_is_new() -> None:
    snapshot = IncidentSnapshot(
        id=1,
        title="t",
        severity="critical",
        status="acknowledged",
        started_at=T0,
        acknowledged_at=T0 + timedelta(minutes=30),
        resolved_at=None,
        assignee="alice",
        hosts=("web-03",),
        services=("nginx", "web-api"),
        categories=("disk",),
        alert_count=3,
        open_alert_count=2,
        alerts=(
            _brief(3, "No space left on device", "critical", 180, "log"),
            _brief(2, "/var full in 3 days", "high", 20, "predictive"),
            _brief(1, "disk anomalous", "medium", 0),
        ),
    )
    text = TemplateSummarizer().render(snapshot)
    assert text == (
        "3 alerts (2 still firing) on host web-03 and services nginx, web-api since 2026-11-30 10:00 UTC. "
        "Most severe (critical): No space left on device. First sign: disk anomalous (anomaly, "
        "2026-11-30 10:00 UTC). Kind of problem: disk. Acknowledged 2026-11-30 10:30 UTC by alice."
    )


def test_changes_fold_updates_into_earlier_events() -> None:
    alert = Alert(
        id=7,
        fingerprint="f",
        origin="o",
        title="t",
        severity="high",
        status="new",
        count=1,
        first_seen=T0,
        last_seen=T0,
        suppressed=False,
        flapping=False,
    )
    incident = Incident(
        id=3,
        title="t",
        severity="high",
        status="new",
        started_at=T0,
        alert_count=1,
        open_alert_count=1,
        hosts=[],
        services=[],
    )
    changes = ChangeSet()
    changes.alert("alert.created", alert)
    changes.incident("incident.created", incident)
    changes.alert("alert.updated", alert, durable=False)
    alert.count = 2
    changes.alert("alert.resolved", alert)
    changes.render()
    assert [(e["type"], durable) for e, durable in changes.rendered] == [
        ("alert.created", True),
        ("incident.created", True),
        ("alert.resolved", True),
    ]
    assert changes.rendered[0][0]["alert"]["count"] == 2  # snapshots show the final state
