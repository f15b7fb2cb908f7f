"""Alert signals in: validated and bounded, and findings turned into signals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vigil.analytics.correlation import normalise_severity
from vigil.domain.alerts import AlertSignal
from vigil.domain.findings import Finding

MAX_TITLE = 512
MAX_NAME = 255
MAX_SOURCE = 128
MAX_LABELS = 64
MAX_EVIDENCE = 20

# Finding kind -> alert origin.
FINDING_ORIGINS = {
    "anomaly": "anomaly",
    "prediction": "predictive",
    "log_burst": "log",
    "new_error_template": "log",
    "error_spike": "error",
}


def _text(value: Any, field: str, limit: int, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise ValueError(f"{field}: required")
        return None
    if not isinstance(value, str):
        value = str(value)
    value = value.replace("\x00", "").strip()
    if required and not value:
        raise ValueError(f"{field}: required")
    return value[:limit] or None


def _labels(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{field}: must be an object of label names to values")
    out: dict[str, str] = {}
    for key, item in list(value.items())[:MAX_LABELS]:
        out[str(key)[:MAX_NAME]] = "" if item is None else str(item)[:1024]
    return out


def parse_signal(raw: Mapping[str, Any]) -> AlertSignal:
    """An AlertSignal from a bus or API dict; ValueError naming the field when unusable.
    Over-long values are cut to what the store holds, so one odd signal cannot fail a batch."""
    if not isinstance(raw, Mapping):
        raise ValueError("signal: must be an object")
    origin = _text(raw.get("origin"), "origin", 32, required=True)
    title = _text(raw.get("title"), "title", MAX_TITLE, required=True)
    time_ns = raw.get("time_ns")
    if isinstance(time_ns, bool) or not isinstance(time_ns, int | float) or time_ns <= 0:
        raise ValueError("time_ns: a positive number of nanoseconds since the epoch")
    evidence = raw.get("evidence") or []
    if not isinstance(evidence, list) or not all(isinstance(e, Mapping) for e in evidence):
        raise ValueError("evidence: must be a list of objects")
    annotations = raw.get("annotations") or {}
    if not isinstance(annotations, Mapping):
        raise ValueError("annotations: must be an object")
    assert origin is not None and title is not None
    return AlertSignal(
        origin=origin,
        title=title,
        severity=normalise_severity(raw.get("severity")),  # type: ignore[arg-type]
        time_ns=int(time_ns),
        host=_text(raw.get("host"), "host", MAX_NAME),
        service=_text(raw.get("service"), "service", MAX_NAME),
        description=_text(raw.get("description"), "description", 16_384),
        labels=_labels(raw.get("labels"), "labels"),
        annotations=dict(annotations),
        fingerprint=_text(raw.get("fingerprint"), "fingerprint", 512),
        resolved=bool(raw.get("resolved")),
        source=_text(raw.get("source"), "source", MAX_SOURCE),
        evidence=[dict(e) for e in evidence[:MAX_EVIDENCE]],
    )


def finding_to_signal(finding: Finding) -> AlertSignal:
    """A finding as an alert signal: its kind:key is the origin's own fingerprint, so updates
    re-fire one alert and ``resolved`` resolves it; the finding itself is the evidence."""
    origin = FINDING_ORIGINS.get(finding.kind, "anomaly")
    evidence = {
        "type": "finding",
        "kind": finding.kind,
        "key": finding.key,
        "score": finding.score,
        **{k: v for k, v in finding.evidence.items() if k not in ("type", "kind", "key")},
    }
    labels = {"finding_kind": finding.kind, "series": finding.key}
    for name in ("template_id", "method", "measurement", "field"):
        value = finding.evidence.get(name)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            labels[name] = str(value)
    return parse_signal(
        {
            "origin": origin,
            "title": finding.title,
            "severity": finding.severity,
            "time_ns": finding.time_ns,
            "host": finding.host,
            "service": finding.service,
            "labels": labels,
            "fingerprint": f"{finding.kind}:{finding.key}",
            "resolved": finding.state == "resolved",
            "evidence": [evidence],
        }
    )


def parse_finding(raw: Mapping[str, Any]) -> Finding:
    if not isinstance(raw, Mapping):
        raise ValueError("finding: must be an object")
    try:
        finding = Finding.from_dict(dict(raw))
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]}: required") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"finding: {exc}") from None
    if finding.state not in ("open", "update", "resolved"):
        raise ValueError("state: must be open, update or resolved")
    return finding
