"""PagerDuty Events API v2: trigger, acknowledge and resolve one PagerDuty alert per Vigil alert,
tied together by the same ``dedup_key``.

The integration (routing) key in the body is the credential. Success is 202; 400 means the
event is invalid (not retried); 429 and 5xx are retried with backoff.
"""

from __future__ import annotations

from typing import Any

import httpx

from vigil.alerting.notifications.base import (
    USER_AGENT,
    Channel,
    DeliveryError,
    SendResult,
    check_http_url,
    headline,
    http_failure,
    transport_failure,
)

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
ACTION = {
    "trigger": "trigger",
    "escalate": "trigger",
    "test": "trigger",
    "acknowledge": "acknowledge",
    "resolve": "resolve",
}


def pagerduty_event(message: dict[str, Any], routing_key: str, dedup_key: str) -> dict[str, Any]:
    action = ACTION.get(message.get("event", "trigger"), "trigger")
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key[:255]}
    if action != "trigger":
        return body
    alert = message.get("alert") or {}
    incident = message.get("incident") or {}
    custom = {
        key: alert.get(key)
        for key in ("id", "status", "origin", "source", "count", "fingerprint", "labels", "description")
        if alert.get(key) not in (None, "", {})
    }
    if message.get("note"):
        custom["note"] = message["note"]
    payload: dict[str, Any] = {
        "summary": headline(message)[:1024],
        "source": alert.get("host") or alert.get("service") or alert.get("origin") or "vigil",
        "severity": SEVERITY.get(str(alert.get("severity")), "warning"),
        "class": alert.get("origin"),
        "custom_details": custom,
    }
    if alert.get("first_seen"):
        payload["timestamp"] = alert["first_seen"]
    if alert.get("service"):
        payload["component"] = alert["service"]
    if incident.get("id"):
        payload["group"] = f"vigil-incident-{incident['id']}"
    body.update(payload=payload, client="Vigil")
    return body


class PagerDutyNotifier:
    type: str = "pagerduty"
    secret_fields: tuple[str, ...] = ("routing_key",)

    def validate(self, config: dict[str, Any], secrets: dict[str, Any]) -> None:
        key = secrets.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            raise ValueError("secrets.routing_key: the 32-character integration key of a PagerDuty service")
        if config.get("url") is not None:
            check_http_url(config["url"], "config.url")

    async def send(
        self, channel: Channel, message: dict[str, Any], *, dedup_key: str, http: httpx.AsyncClient
    ) -> SendResult:
        url = channel.config.get("url") or DEFAULT_URL
        event = pagerduty_event(message, channel.secrets["routing_key"], dedup_key)
        try:
            response = await http.post(url, json=event, headers={"User-Agent": USER_AGENT})
        except httpx.HTTPError as exc:
            raise transport_failure(exc, "PagerDuty") from exc
        if response.status_code != 202:
            raise http_failure(response, "PagerDuty")
        try:
            answer = response.json()
        except ValueError as exc:
            raise DeliveryError("PagerDuty answered 202 without JSON", retryable=False, status=202) from exc
        return SendResult(
            202, f"{answer.get('status', '?')}: {answer.get('message', '')} ({answer.get('dedup_key')})"
        )
