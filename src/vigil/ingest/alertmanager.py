"""Prometheus Alertmanager's webhook (payload version 4) into alert signals.

Alertmanager sends the whole current state of an alert group on every notification, so the
same alert arrives many times; its ``fingerprint`` is the stable identity that lets the
correlate stage count repeats instead of opening new alerts. A resolved alert (``status:
resolved``, only sent with ``send_resolved``) resolves it.
"""

from __future__ import annotations

from typing import Any

import orjson

from vigil.domain.alerts import AlertSignal, Severity
from vigil.ingest.timestamps import parse_rfc3339

# What teams put in the `severity` label, onto Vigil's four levels.
_SEVERITY: dict[str, Severity] = {
    **dict.fromkeys(("critical", "crit", "page", "emergency", "emerg", "fatal", "disaster", "p1", "sev1"),
                    "critical"),
    **dict.fromkeys(("high", "error", "err", "major", "p2", "sev2"), "high"),
    **dict.fromkeys(("warning", "warn", "medium", "moderate", "average", "p3", "sev3"), "medium"),
    **dict.fromkeys(("low", "minor", "info", "informational", "notice", "none", "debug", "p4", "p5",
                     "sev4", "sev5"), "low"),
}  # fmt: skip
DEFAULT_SEVERITY: Severity = "medium"
_HOST_LABELS = ("host", "hostname", "instance", "node", "nodename")
_SERVICE_LABELS = ("service", "app", "application", "job")


class AlertmanagerError(ValueError):
    """The body is not an Alertmanager webhook payload; the message names the field."""


def severity_of(labels: dict[str, str]) -> Severity:
    return _SEVERITY.get(labels.get("severity", "").strip().lower(), DEFAULT_SEVERITY)


def _host(labels: dict[str, str]) -> str | None:
    for key in _HOST_LABELS:
        value = labels.get(key)
        if value:
            if key == "instance":
                # "web1:9100" → "web1"; keep IPv6 literals and URLs whole.
                head, sep, port = value.rpartition(":")
                if sep and port.isdigit() and "://" not in value and head.count(":") == 0:
                    return head
            return value
    return None


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AlertmanagerError(f"{where}: must be an object of strings")
    return {str(k): str(v) for k, v in value.items() if v is not None}


def parse_alertmanager(body: bytes, source: str | None) -> list[AlertSignal]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise AlertmanagerError(f"body: not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise AlertmanagerError("body: must be a JSON object (Alertmanager webhook payload)")
    version = document.get("version")
    if version is not None and str(version) != "4":
        raise AlertmanagerError(f'version: {version!r} is not supported; Alertmanager sends "4"')
    alerts = document.get("alerts")
    if not isinstance(alerts, list):
        raise AlertmanagerError("alerts: must be an array")
    common = {
        "receiver": document.get("receiver"),
        "group_key": document.get("groupKey"),
        "external_url": document.get("externalURL"),
    }
    signals = []
    for index, alert in enumerate(alerts):
        signals.append(_signal(alert, f"alerts[{index}]", common, source))
    return signals


def _signal(alert: Any, where: str, common: dict[str, Any], source: str | None) -> AlertSignal:
    if not isinstance(alert, dict):
        raise AlertmanagerError(f"{where}: must be an object")
    labels = _strings(alert.get("labels"), f"{where}.labels")
    annotations: dict[str, Any] = _strings(alert.get("annotations"), f"{where}.annotations")
    status = alert.get("status", "firing")
    if status not in ("firing", "resolved"):
        raise AlertmanagerError(f"{where}.status: must be 'firing' or 'resolved', not {status!r}")
    resolved = status == "resolved"
    try:
        starts = parse_rfc3339(str(alert["startsAt"])) if alert.get("startsAt") else None
        ends = parse_rfc3339(str(alert["endsAt"])) if alert.get("endsAt") else None
    except ValueError as exc:
        raise AlertmanagerError(f"{where}: startsAt/endsAt: {exc}") from None
    if starts is None:
        raise AlertmanagerError(f"{where}.startsAt: required")
    time_ns = ends if resolved and ends is not None and ends > starts else starts
    name = labels.get("alertname") or "Alertmanager alert"
    summary = annotations.get("summary") or annotations.get("title")
    title = f"{name}: {summary}" if summary and summary != name else name
    evidence: list[dict[str, Any]] = []
    if alert.get("generatorURL"):
        evidence.append({"kind": "link", "title": "Prometheus expression", "url": str(alert["generatorURL"])})
    annotations.update({k: v for k, v in common.items() if v})
    annotations["starts_at_ns"] = starts
    fingerprint = alert.get("fingerprint")
    return AlertSignal(
        origin="alertmanager",
        title=title[:512],
        severity=severity_of(labels),
        time_ns=time_ns,
        host=_host(labels),
        service=next((labels[k] for k in _SERVICE_LABELS if labels.get(k)), None),
        description=annotations.get("description") or annotations.get("message"),
        labels=labels,
        annotations=annotations,
        fingerprint=str(fingerprint) if fingerprint else None,
        resolved=resolved,
        source=source,
        evidence=evidence,
    )
