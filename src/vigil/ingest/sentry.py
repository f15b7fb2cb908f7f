"""Sentry's wire formats: SDK authentication, envelopes, events, and integration webhooks.

* Auth: the DSN's public key, from ``X-Sentry-Auth: Sentry sentry_key=...``, ``?sentry_key=``
  or the envelope header's ``dsn``. Vigil's ingest token *is* that key
  (DSN ``http://<token>@<host>:<port>/<project_id>``).
* Envelopes: a header line, then items, each an item-header line and a payload that is exactly
  ``length`` bytes when the header says so, else runs to the next newline. Unknown item types
  are skipped, as the protocol requires.
* Events (envelope ``event`` items and legacy ``/store/`` bodies) become ``ErrorEvent``s;
  transactions, sessions and events are also counted as the ``sentry`` measurement.
* Integration-platform webhooks are verified with HMAC-SHA256 of the raw body and become alert
  signals (issues, metric alerts, issue alerts) and error events (full events they carry).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from vigil.domain.alerts import AlertSignal, Severity
from vigil.domain.errors import ErrorEvent, StackFrame
from vigil.domain.metrics import Point
from vigil.ingest.timestamps import to_ns

MAX_EVENT_BYTES = 1 << 20  # Sentry's own limit for one event or transaction item
MAX_FRAMES = 250  # innermost frames kept per event, as Sentry trims
LEVELS = ("fatal", "error", "warning", "info", "debug")
USAGE_MEASUREMENT = "sentry"

_EVENT_ID = re.compile(r"^[0-9a-f]{32}$")
_LEVEL_SEVERITY: dict[str, Severity] = {
    "fatal": "critical",
    "error": "high",
    "warning": "medium",
    "info": "low",
    "debug": "low",
}


class SentryError(ValueError):
    """The request is malformed; ``status`` is 400, or 413 for an oversize item."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# --- authentication ----------------------------------------------------------------------------


def parse_auth_header(value: str) -> dict[str, str]:
    """``Sentry sentry_key=abc, sentry_version=7`` → {"sentry_key": "abc", ...}."""
    text = value.strip()
    if text[:7].lower() == "sentry ":
        text = text[7:]
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, val = part.strip().partition("=")
        if sep and key:
            out[key.strip()] = val.strip()
    return out


def key_from_dsn(dsn: str) -> str | None:
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return None
    return parts.username or None


def sentry_keys(header: str | None, query_key: str | None, envelope_dsn: str | None) -> set[str]:
    """Every key the request presents; more than one distinct key is a conflict."""
    keys = set()
    if header:
        key = parse_auth_header(header).get("sentry_key")
        if key:
            keys.add(key)
    if query_key:
        keys.add(query_key)
    if envelope_dsn:
        key = key_from_dsn(envelope_dsn)
        if key:
            keys.add(key)
    return keys


# --- envelopes ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Item:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))


@dataclass(slots=True)
class Envelope:
    headers: dict[str, Any]
    items: list[Item] = field(default_factory=list)


def _line(body: bytes, start: int) -> tuple[bytes, int]:
    end = body.find(b"\n", start)
    if end < 0:
        return body[start:], len(body)
    return body[start:end], end + 1


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SentryError(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SentryError(f"{what}: must be a JSON object")
    return value


def parse_envelope(body: bytes) -> Envelope:
    if not body.strip():
        raise SentryError("envelope: empty body")
    header_line, position = _line(body, 0)
    envelope = Envelope(_json_object(header_line, "envelope header"))
    number = 0
    while position < len(body):
        line, after = _line(body, position)
        if not line.strip():
            position = after  # tolerate blank lines between items and at the end
            continue
        number += 1
        headers = _json_object(line, f"item {number} header")
        if "type" not in headers:
            raise SentryError(f"item {number} header: 'type' is required")
        length = headers.get("length")
        if length is None:
            payload, position = _line(body, after)
        else:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                raise SentryError(f"item {number} header: 'length' must be a non-negative integer")
            payload = body[after : after + length]
            if len(payload) != length:
                raise SentryError(f"item {number}: length says {length} bytes but only {len(payload)} follow")
            position = after + length
            if position < len(body):
                if body[position : position + 1] != b"\n":
                    raise SentryError(f"item {number}: payload not followed by a newline")
                position += 1
        envelope.items.append(Item(headers, payload))
    return envelope


# --- events ------------------------------------------------------------------------------------


def normalise_event_id(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.replace("-", "").lower()
    return text if _EVENT_ID.match(text) else None


def _text(value: Any, limit: int = 8192) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:limit]


def _message(data: dict[str, Any]) -> str | None:
    for key in ("logentry", "message"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return _text(value)
        if isinstance(value, dict):
            formatted = value.get("formatted") or value.get("message")
            if isinstance(formatted, str) and formatted:
                return _text(formatted)
    return None


def _tags(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        out: dict[str, str] = {}
        for pair in value:
            if isinstance(pair, list | tuple) and len(pair) == 2 and pair[1] is not None:
                out[str(pair[0])] = str(pair[1])
        return out
    return {}


def _frames(stacktrace: Any) -> list[StackFrame]:
    if not isinstance(stacktrace, dict):
        return []
    raw = stacktrace.get("frames")
    if not isinstance(raw, list):
        return []
    frames: list[StackFrame] = []
    for item in raw[-MAX_FRAMES:]:
        if not isinstance(item, dict):
            continue
        lineno = item.get("lineno")
        in_app = item.get("in_app")
        frames.append(
            StackFrame(
                filename=_text(item.get("filename") or item.get("abs_path"), 512),
                function=_text(item.get("function"), 512),
                module=_text(item.get("module"), 512),
                lineno=lineno if isinstance(lineno, int) and not isinstance(lineno, bool) else None,
                in_app=in_app if isinstance(in_app, bool) else None,
                context_line=_text(item.get("context_line"), 1024),
            )
        )
    return frames


def _exception(data: dict[str, Any]) -> tuple[dict[str, Any] | None, list[StackFrame]]:
    """The most recent exception (chained ones come cause first) and its frames."""
    container = data.get("exception")
    values = container.get("values") if isinstance(container, dict) else container
    if not isinstance(values, list):
        return None, []
    exceptions = [v for v in values if isinstance(v, dict)]
    if not exceptions:
        return None, []
    latest = exceptions[-1]
    frames = _frames(latest.get("stacktrace"))
    if not frames:
        # Some SDKs put the crashing thread's stack under "threads" instead.
        threads = data.get("threads")
        thread_values = threads.get("values") if isinstance(threads, dict) else None
        for thread in thread_values or []:
            if isinstance(thread, dict) and thread.get("crashed"):
                frames = _frames(thread.get("stacktrace"))
    return latest, frames


def event_from_payload(data: Any, project: str, now_ns: int, event_id: str | None = None) -> ErrorEvent:
    """An ``ErrorEvent`` from a Sentry event object. Raises SentryError when it is not one."""
    if not isinstance(data, dict):
        raise SentryError("event: must be a JSON object")
    identifier = normalise_event_id(data.get("event_id")) or event_id or uuid.uuid4().hex
    stamp = data.get("timestamp")
    try:
        time_ns = now_ns if stamp is None else to_ns(stamp, "s" if isinstance(stamp, int | float) else None)
    except ValueError as exc:
        raise SentryError(f"event.timestamp: {exc}") from None
    level = str(data.get("level") or "error").lower()
    if level == "warn":
        level = "warning"
    if level not in LEVELS:
        level = "error"
    exception, frames = _exception(data)
    fingerprint = data.get("fingerprint")
    if isinstance(fingerprint, list) and fingerprint:
        fingerprint = [str(part) for part in fingerprint]
    else:
        fingerprint = None
    tags = _tags(data.get("tags"))
    return ErrorEvent(
        event_id=identifier,
        time_ns=time_ns,
        project=project,
        level=level,
        exception_type=_text(exception.get("type"), 255) if exception else None,
        exception_value=_text(exception.get("value")) if exception else None,
        message=_message(data),
        frames=frames,
        fingerprint=fingerprint,
        release=_text(data.get("release"), 255),
        environment=_text(data.get("environment"), 64),
        platform=_text(data.get("platform"), 64),
        host=_text(data.get("server_name"), 255),
        service=tags.get("service"),
        transaction=_text(data.get("transaction") or data.get("culprit"), 255),
        tags=tags,
        raw=data,
    )


def parse_event_json(payload: bytes, project: str, now_ns: int, event_id: str | None = None) -> ErrorEvent:
    if len(payload) > MAX_EVENT_BYTES:
        raise SentryError(f"event: {len(payload)} bytes is over Sentry's 1 MB limit per event", 413)
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise SentryError(f"event: not valid JSON ({exc})") from None
    return event_from_payload(data, project, now_ns, event_id)


# --- counting ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Usage:
    """What an envelope held, by item type; sessions also by status."""

    items: dict[str, int] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)

    def add(self, item_type: str, count: int = 1) -> None:
        self.items[item_type] = self.items.get(item_type, 0) + count

    def add_sessions(self, payload: bytes, aggregated: bool) -> None:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(data, dict):
            return
        if not aggregated:
            self.add("session")
            status = str(data.get("status") or "ok")
            self.sessions[status] = self.sessions.get(status, 0) + 1
            return
        for bucket in data.get("aggregates") or []:
            if not isinstance(bucket, dict):
                continue
            for status in ("exited", "errored", "crashed", "abnormal"):
                count = bucket.get(status)
                if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                    self.sessions[status] = self.sessions.get(status, 0) + count
                    self.add("session", count)

    def points(self, project: str, time_ns: int) -> list[Point]:
        """One point per item type: measurement ``sentry``, tags project and item, field count
        (sessions add one integer field per status)."""
        out = []
        for item_type, count in sorted(self.items.items()):
            fields: dict[str, int | float | bool | str] = {"count": count}
            if item_type == "session":
                fields.update({f"status_{k}": v for k, v in sorted(self.sessions.items())})
            out.append(Point(USAGE_MEASUREMENT, fields, {"project": project, "item": item_type}, time_ns))
        return out


COUNTED_ITEMS = frozenset(
    {
        "event",
        "transaction",
        "attachment",
        "profile",
        "replay_event",
        "check_in",
        "feedback",
        "user_report",
        "log",
        "span",
    }
)


# --- integration-platform webhooks -------------------------------------------------------------


def verify_signature(secret: str, body: bytes, signature: str | None) -> bool:
    """``Sentry-Hook-Signature`` is the hex HMAC-SHA256 of the raw body under the client secret."""
    if not signature:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def severity_of(level: Any) -> Severity:
    return _LEVEL_SEVERITY.get(str(level or "error").lower(), "high")


def webhook_to_telemetry(
    resource: str, document: Any, source: str | None, now_ns: int
) -> tuple[list[AlertSignal], list[ErrorEvent]]:
    """Alert signals and error events carried by one integration webhook.

    ``issue`` created/unresolved raise an alert and resolved/archived resolve it;
    ``event_alert`` raises one per triggered rule (and carries the event); ``metric_alert``
    critical/warning raise and resolved resolves; ``error`` carries an event. Other resources
    (installation, comment...) carry nothing to ingest."""
    if not isinstance(document, dict):
        raise SentryError("body: must be a JSON object with 'action' and 'data'")
    action = str(document.get("action") or "")
    data = document.get("data")
    if not isinstance(data, dict):
        raise SentryError("data: must be an object")
    signals: list[AlertSignal] = []
    events: list[ErrorEvent] = []
    if resource == "issue":
        issue = data.get("issue")
        if not isinstance(issue, dict):
            raise SentryError("data.issue: must be an object")
        if action in ("created", "unresolved", "resolved", "archived", "ignored"):
            signals.append(
                _issue_signal(issue, action in ("resolved", "archived", "ignored"), source, now_ns)
            )
    elif resource == "event_alert":
        event = data.get("event")
        if not isinstance(event, dict):
            raise SentryError("data.event: must be an object")
        project = str(event.get("project") or "sentry")
        error = event_from_payload(event, project, now_ns)
        events.append(error)
        rule = str(data.get("triggered_rule") or "Sentry issue alert")
        signals.append(
            AlertSignal(
                origin="error",
                title=f"{rule}: {event.get('title') or error.exception_type or error.message or 'event'}"[
                    :512
                ],
                severity=severity_of(error.level),
                time_ns=error.time_ns,
                host=error.host,
                service=error.service,
                description=error.exception_value or error.message,
                labels={"sentry_project": project, "level": error.level, "rule": rule},
                annotations=_urls(event),
                fingerprint=f"sentry-issue:{event.get('issue_id') or error.event_id}",
                source=source,
            )
        )
    elif resource == "metric_alert":
        alert = data.get("metric_alert")
        if not isinstance(alert, dict):
            raise SentryError("data.metric_alert: must be an object")
        if action in ("critical", "warning", "resolved"):
            signals.append(
                AlertSignal(
                    origin="error",
                    title=str(data.get("description_title") or alert.get("title") or "Sentry metric alert")[
                        :512
                    ],
                    severity="critical" if action == "critical" else "medium",
                    time_ns=now_ns,
                    description=_text(data.get("description_text")),
                    labels={"sentry_alert_rule": str((alert.get("alert_rule") or {}).get("name") or "")},
                    annotations={"url": data["web_url"]} if isinstance(data.get("web_url"), str) else {},
                    fingerprint=f"sentry-metric-alert:{alert.get('id')}",
                    resolved=action == "resolved",
                    source=source,
                )
            )
    elif resource == "error":
        carried = data.get("error")
        if not isinstance(carried, dict):
            raise SentryError("data.error: must be an object")
        events.append(event_from_payload(carried, str(carried.get("project") or "sentry"), now_ns))
    return signals, events


def _issue_signal(issue: dict[str, Any], resolved: bool, source: str | None, now_ns: int) -> AlertSignal:
    project = issue.get("project")
    if not isinstance(project, dict):
        project = {}
    slug = str(project.get("slug") or project.get("id") or "")
    annotations = _urls(issue)
    if issue.get("culprit"):
        annotations["culprit"] = str(issue["culprit"])
    if issue.get("count") is not None:
        annotations["count"] = issue["count"]
    return AlertSignal(
        origin="error",
        title=str(issue.get("title") or "Sentry issue")[:512],
        severity=severity_of(issue.get("level")),
        time_ns=now_ns,
        service=slug or None,
        description=_text(issue.get("culprit")),
        labels={
            k: v
            for k, v in {
                "sentry_project": slug,
                "short_id": str(issue.get("shortId") or ""),
                "level": str(issue.get("level") or ""),
            }.items()
            if v
        },
        annotations=annotations,
        fingerprint=f"sentry-issue:{issue.get('id')}",
        resolved=resolved,
        source=source,
    )


def _urls(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: obj[key] for key in ("web_url", "url", "issue_url") if isinstance(obj.get(key), str)}
