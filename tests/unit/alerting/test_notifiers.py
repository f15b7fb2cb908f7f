"""Notifier payloads, validation and error classification (without a network)."""

from __future__ import annotations

import hashlib
import hmac
import re

import httpx
import pytest

from vigil.alerting.notifications import NOTIFIERS
from vigil.alerting.notifications.base import http_failure, plain_text, retry_after
from vigil.alerting.notifications.email import build_email
from vigil.alerting.notifications.pagerduty import pagerduty_event
from vigil.alerting.notifications.slack import slack_payload
from vigil.alerting.notifications.webhook import sign

MESSAGE = {
    "event": "trigger",
    "alert": {
        "id": 12,
        "title": "Disk 97% on web-1",
        "severity": "critical",
        "status": "new",
        "origin": "anomaly",
        "host": "web-1",
        "service": "nginx",
        "count": 3,
        "first_seen": "2026-11-30T10:00:00+00:00",
        "labels": {"path": "/var"},
        "description": "<b>/var</b> & friends",
    },
    "incident": {"id": 4, "title": "web-1 disk"},
}


def test_slack_message_has_fallback_text_and_blocks() -> None:
    payload = slack_payload(MESSAGE)
    assert payload["text"] == ":red_circle: [CRITICAL] Disk 97% on web-1"
    assert payload["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "[CRITICAL] Disk 97% on web-1", "emoji": True},
    }
    section = payload["blocks"][1]["text"]["text"]
    assert "*Host:* web-1" in section and "&lt;b&gt;/var&lt;/b&gt; &amp; friends" in section
    resolved = slack_payload({**MESSAGE, "event": "resolve"})
    assert resolved["text"].startswith(":white_check_mark:") and "(resolved)" in resolved["text"]
    long = slack_payload({**MESSAGE, "alert": {**MESSAGE["alert"], "title": "x" * 400}})
    assert len(long["blocks"][0]["text"]["text"]) == 150


def test_pagerduty_events_share_the_dedup_key() -> None:
    trigger = pagerduty_event(MESSAGE, "k" * 32, "vigil-alert-12")
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == "vigil-alert-12"
    payload = trigger["payload"]
    assert (
        payload["severity"] == "critical" and payload["source"] == "web-1" and payload["component"] == "nginx"
    )
    assert payload["group"] == "vigil-incident-4" and payload["custom_details"]["labels"] == {"path": "/var"}
    assert pagerduty_event({**MESSAGE, "event": "resolve"}, "k" * 32, "vigil-alert-12") == {
        "routing_key": "k" * 32,
        "event_action": "resolve",
        "dedup_key": "vigil-alert-12",
    }
    high = pagerduty_event({**MESSAGE, "alert": {**MESSAGE["alert"], "severity": "high"}}, "k" * 32, "d")
    assert high["payload"]["severity"] == "error"


def test_webhook_signature_covers_timestamp_and_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"secret-secret-secret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("secret-secret-secret", "1700000000", body) == f"sha256={expected}"
    assert sign("secret-secret-secret", "1700000001", body) != sign(
        "secret-secret-secret", "1700000000", body
    )


def test_email_threads_per_alert() -> None:
    email = build_email({"from": "vigil@x.org", "to": ["a@x.org", "b@x.org"]}, MESSAGE, "vigil-alert-12")
    assert email["Subject"] == "[CRITICAL] Disk 97% on web-1" and email["To"] == "a@x.org, b@x.org"
    assert email["References"] == "<vigil-alert-12@vigil>"
    assert "Incident: #4 web-1 disk" in email.get_content()
    assert plain_text(MESSAGE).splitlines()[0] == "[CRITICAL] Disk 97% on web-1"


@pytest.mark.parametrize(
    ("kind", "config", "secrets", "field"),
    [
        ("slack", {}, {"webhook_url": "ftp://x"}, "secrets.webhook_url"),
        ("pagerduty", {}, {"routing_key": "x" * 31}, "secrets.routing_key"),
        ("pagerduty", {"url": "nope"}, {"routing_key": "x" * 32}, "config.url"),
        ("webhook", {}, {}, "config.url"),
        ("webhook", {"url": "https://h", "headers": {"Host": "x"}}, {}, "config.headers"),
        ("webhook", {"url": "https://h"}, {"hmac_secret": "short"}, "secrets.hmac_secret"),
        ("email", {"host": "h", "from": "a@b.c", "to": []}, {}, "config.to"),
        ("email", {"host": "h", "from": "a@b.c", "to": ["nobody"]}, {}, "config.to[0]"),
        ("email", {"host": "h", "from": "a@b.c", "to": ["x@y.z"], "port": 0}, {}, "config.port"),
        ("email", {"host": "h", "from": "a@b.c", "to": ["x@y.z"]}, {"password": "p"}, "config.username"),
    ],
)
def test_validation_names_the_field(
    kind: str, config: dict[str, object], secrets: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(field) + ":"):
        NOTIFIERS[kind].validate(config, secrets)


def test_only_transient_http_errors_are_retried() -> None:
    def failure(status: int, headers: dict[str, str] | None = None) -> tuple[bool, float | None]:
        error = http_failure(httpx.Response(status, text="nope", headers=headers), "X")
        return error.retryable, error.retry_after_s

    assert failure(500) == (True, None)
    assert failure(429, {"Retry-After": "30"}) == (True, 30.0)
    assert failure(408) == (True, None)
    assert failure(400) == (False, None)
    assert failure(404) == (False, None)
    assert retry_after(httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert retry_after(httpx.Response(503)) is None
