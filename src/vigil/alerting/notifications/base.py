"""What every notification channel shares: the message, the notifier protocol, errors that say
whether a retry can help, and a plain-text rendering."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from vigil import __version__

USER_AGENT = f"Vigil/{__version__}"
EVENTS = ("trigger", "acknowledge", "resolve", "escalate", "test")


class DeliveryError(Exception):
    """A send failed. ``retryable`` says whether trying again later can succeed."""

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Channel:
    id: int
    name: str
    type: str
    config: dict[str, Any]
    secrets: dict[str, Any]


@dataclass(frozen=True)
class SendResult:
    status: int | None
    detail: str


class Notifier(Protocol):
    type: str
    secret_fields: tuple[str, ...]  # kept encrypted, never returned by the API

    def validate(self, config: dict[str, Any], secrets: dict[str, Any]) -> None:
        """Raise ValueError naming the bad field (``config.url: ...``)."""

    async def send(
        self, channel: Channel, message: dict[str, Any], *, dedup_key: str, http: httpx.AsyncClient
    ) -> SendResult: ...


def check_http_url(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: required")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{field}: must be an http:// or https:// URL")
    return value


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value.strip()):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import UTC, datetime

    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def http_failure(response: httpx.Response, service: str) -> DeliveryError:
    """An HTTP error answer as a DeliveryError: throttling, timeouts and server errors are
    worth retrying; other client errors (bad key, bad payload) are not."""
    status = response.status_code
    body = response.text.strip().replace("\n", " ")[:300]
    retryable = status in (408, 425, 429) or status >= 500
    return DeliveryError(
        f"{service} answered {status}: {body or response.reason_phrase}",
        retryable=retryable,
        status=status,
        retry_after_s=retry_after(response) if status in (429, 503) else None,
    )


def transport_failure(exc: Exception, service: str) -> DeliveryError:
    return DeliveryError(f"{service} unreachable: {type(exc).__name__}: {exc}", retryable=True)


def headline(message: dict[str, Any]) -> str:
    """One line: "[CRITICAL] Disk full on web-03 (resolved)"."""
    alert = message.get("alert") or {}
    event = message.get("event", "trigger")
    suffix = {
        "resolve": " (resolved)",
        "acknowledge": " (acknowledged)",
        "escalate": f" (escalated, level {message.get('escalation_level', '?')})",
        "test": " (test notification)",
    }.get(event, "")
    severity = str(alert.get("severity", "")).upper()
    return f"[{severity}] {alert.get('title', 'alert')}{suffix}"


def details(message: dict[str, Any]) -> list[tuple[str, str]]:
    """The facts worth showing, as (label, value), skipping empty ones."""
    alert = message.get("alert") or {}
    incident = message.get("incident") or {}
    facts = [
        ("Status", alert.get("status")),
        ("Host", alert.get("host")),
        ("Service", alert.get("service")),
        ("Origin", alert.get("origin")),
        ("Source", alert.get("source")),
        ("Fired", f"{alert.get('count')} time(s)" if alert.get("count") else None),
        ("First seen", alert.get("first_seen")),
        (
            "Incident",
            f"#{incident['id']} {incident.get('title', '')}".strip() if incident.get("id") else None,
        ),
        ("Description", alert.get("description")),
        ("Note", message.get("note")),
    ]
    return [(label, str(value)) for label, value in facts if value not in (None, "")]


def plain_text(message: dict[str, Any]) -> str:
    lines = [headline(message), ""]
    lines += [f"{label}: {value}" for label, value in details(message)]
    alert = message.get("alert") or {}
    if alert.get("id"):
        lines += ["", f"Vigil alert #{alert['id']}"]
    return "\n".join(lines)
