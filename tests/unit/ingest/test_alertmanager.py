"""Alertmanager webhook v4 into alert signals."""

from __future__ import annotations

import orjson
import pytest

from vigil.ingest.alertmanager import AlertmanagerError, parse_alertmanager, severity_of

PAYLOAD = {
    "version": "4",
    "groupKey": '{}/{severity="critical"}:{alertname="DiskFull"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "aiops",
    "groupLabels": {"alertname": "DiskFull"},
    "commonLabels": {"alertname": "DiskFull", "severity": "critical", "job": "node"},
    "commonAnnotations": {"summary": "Disk almost full"},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "DiskFull",
                "instance": "web1:9100",
                "severity": "critical",
                "job": "node",
            },
            "annotations": {"summary": "Disk almost full", "description": "/var at 97%"},
            "startsAt": "2024-05-01T10:00:00.123Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
            "fingerprint": "1a30ba71cca2921f",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "HighLoad", "host": "db2", "severity": "warning", "service": "postgres"},
            "annotations": {},
            "startsAt": "2024-05-01T09:00:00Z",
            "endsAt": "2024-05-01T09:30:00.000000001Z",
            "fingerprint": "ffee00",
        },
    ],
}


def test_the_documented_payload() -> None:
    firing, resolved = parse_alertmanager(orjson.dumps(PAYLOAD), "prom")
    assert firing.origin == "alertmanager"
    assert firing.title == "DiskFull: Disk almost full"
    assert (firing.severity, firing.host, firing.service) == ("critical", "web1", "node")
    assert firing.description == "/var at 97%"
    assert firing.fingerprint == "1a30ba71cca2921f"
    assert not firing.resolved
    assert firing.time_ns == 1_714_557_600_123_000_000
    assert firing.labels["instance"] == "web1:9100"
    assert firing.annotations["receiver"] == "aiops"
    assert firing.evidence == [
        {"kind": "link", "title": "Prometheus expression", "url": "http://prometheus:9090/graph?g0.expr=x"}
    ]
    assert firing.source == "prom"
    assert resolved.resolved and resolved.title == "HighLoad"
    assert (resolved.severity, resolved.host, resolved.service) == ("medium", "db2", "postgres")
    assert resolved.time_ns == 1_714_555_800_000_000_001  # the end time, to the nanosecond


@pytest.mark.parametrize(
    ("label", "severity"),
    [
        ("critical", "critical"),
        ("page", "critical"),
        ("error", "high"),
        ("major", "high"),
        ("warning", "medium"),
        ("info", "low"),
        ("none", "low"),
        ("", "medium"),
        ("weird", "medium"),
    ],
)
def test_severity_mapping(label: str, severity: str) -> None:
    assert severity_of({"severity": label} if label else {}) == severity


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": "3"}, "version"),
        ({"alerts": "x"}, "alerts"),
        ({"alerts": [{"status": "firing", "labels": {}}]}, r"alerts\[0\]\.startsAt"),
        ({"alerts": [{"status": "pending", "startsAt": "2024-05-01T10:00:00Z"}]}, r"alerts\[0\]\.status"),
        ({"alerts": [{"startsAt": "yesterday"}]}, "startsAt"),
        ({"alerts": [{"startsAt": "2024-05-01T10:00:00Z", "labels": ["a"]}]}, "labels"),
    ],
)
def test_bad_payloads_name_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(AlertmanagerError, match=message):
        parse_alertmanager(orjson.dumps({**PAYLOAD, **change}), None)


def test_not_json() -> None:
    with pytest.raises(AlertmanagerError, match="JSON"):
        parse_alertmanager(b"<html>", None)
