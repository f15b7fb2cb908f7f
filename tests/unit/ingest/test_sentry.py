"""Sentry wire formats: auth, envelopes by byte length, events, usage counts, webhooks."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest

from vigil.ingest.sentry import (
    SentryError,
    Usage,
    event_from_payload,
    key_from_dsn,
    parse_auth_header,
    parse_envelope,
    parse_event_json,
    sentry_keys,
    verify_signature,
    webhook_to_telemetry,
)

NOW = 1_800_000_000 * 10**9
EVENT_ID = "9ec79c33ec9942ab8353589fcb2e04dc"


def test_auth_header_and_dsn() -> None:
    header = "Sentry sentry_version=7, sentry_client=myagent/1.0, sentry_key=abc123"
    assert parse_auth_header(header)["sentry_key"] == "abc123"
    assert key_from_dsn("https://abc123@o42.ingest.sentry.io/4505") == "abc123"
    assert key_from_dsn("https://o42.ingest.sentry.io/4505") is None
    assert sentry_keys(header, None, "http://abc123@h/1") == {"abc123"}
    assert sentry_keys(header, "other", None) == {"abc123", "other"}


def test_the_reference_envelope_with_byte_lengths() -> None:
    body = (
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","sent_at":"2024-05-01T10:00:00.000Z"}\n'
        b'{"type":"event","length":63}\n'
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","level":"error"}\n'
        b'{"type":"attachment","length":5,"filename":"log.txt","content_type":"text/plain"}\n'
        b"hello"
    )
    envelope = parse_envelope(body)
    assert envelope.headers["event_id"] == EVENT_ID
    assert [(item.type, item.payload) for item in envelope.items] == [
        ("event", b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","level":"error"}'),
        ("attachment", b"hello"),
    ]


def test_length_counts_bytes_and_payloads_may_hold_newlines() -> None:
    payload = '{"message":"zürich\\nline"}\n\nraw\nbytes'.encode()
    body = b"{}\n" + orjson.dumps({"type": "attachment", "length": len(payload)}) + b"\n" + payload + b"\n"
    body += b'{"type":"event"}\n{"level":"info"}\n'
    items = parse_envelope(body).items
    assert items[0].payload == payload
    assert items[1].payload == b'{"level":"info"}'  # no length: up to the newline


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"not json\n", "envelope header"),
        (b'{}\n{"length":2}\nab', "'type' is required"),
        (b'{}\n{"type":"event","length":50}\n{}', "only 2 follow"),
        (b'{}\n{"type":"event","length":2}\n{}X', "not followed by a newline"),
        (b'{}\n{"type":"event","length":-1}\n', "non-negative"),
    ],
)
def test_malformed_envelopes_name_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(SentryError, match=message):
        parse_envelope(body)


def test_event_normalisation_from_the_reference_payload() -> None:
    data = {
        "event_id": EVENT_ID,
        "timestamp": "2024-05-01T10:00:00Z",
        "level": "error",
        "platform": "python",
        "server_name": "worker-3",
        "release": "aiops@1.4.0",
        "environment": "production",
        "message": {"formatted": "disk full on /var"},
        "tags": [["region", "eu-west-1"], ["service", "ingest"]],
        "fingerprint": ["{{ default }}", "disk-full"],
        "exception": {
            "values": [
                {"type": "KeyError", "value": "cause"},
                {
                    "type": "OSError",
                    "value": "[Errno 28] No space left on device",
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": "worker.py",
                                "function": "main",
                                "lineno": 10,
                                "in_app": True,
                                "module": "app.worker",
                            },
                            {
                                "filename": "store.py",
                                "function": "flush",
                                "lineno": 88,
                                "in_app": True,
                                "context_line": "    fh.write(buf)",
                            },
                        ]
                    },
                },
            ]
        },
    }
    event = event_from_payload(data, "42", NOW)
    assert event.event_id == EVENT_ID
    assert event.time_ns == 1_714_557_600 * 10**9
    assert (event.exception_type, event.exception_value) == ("OSError", "[Errno 28] No space left on device")
    assert [f.function for f in event.frames] == ["main", "flush"]  # innermost last
    assert event.frames[1].context_line == "    fh.write(buf)"
    assert event.message == "disk full on /var"
    assert event.host == "worker-3" and event.service == "ingest"
    assert event.tags == {"region": "eu-west-1", "service": "ingest"}
    assert event.fingerprint == ["{{ default }}", "disk-full"]
    assert (event.project, event.release, event.environment) == ("42", "aiops@1.4.0", "production")


def test_event_defaults_and_odd_values() -> None:
    event = event_from_payload(
        {"timestamp": 1714557600.5, "level": "warn", "logentry": {"message": "x"}}, "1", NOW
    )
    assert len(event.event_id) == 32 and event.level == "warning"
    assert event.time_ns == 1_714_557_600_500_000_000
    assert event.message == "x"
    assert event_from_payload({"level": "loud"}, "1", NOW, EVENT_ID).level == "error"
    assert event_from_payload({}, "1", NOW, EVENT_ID).event_id == EVENT_ID
    with pytest.raises(SentryError, match="timestamp"):
        event_from_payload({"timestamp": "noon"}, "1", NOW)
    with pytest.raises(SentryError, match="JSON"):
        parse_event_json(b"{oops", "1", NOW)
    with pytest.raises(SentryError) as too_big:
        parse_event_json(b"{" + b" " * (1 << 20) + b"}", "1", NOW)
    assert too_big.value.status == 413


def test_usage_counts_items_and_sessions() -> None:
    usage = Usage()
    usage.add("event")
    usage.add("transaction")
    usage.add("transaction")
    usage.add_sessions(b'{"sid":"x","status":"crashed","attrs":{"release":"r"}}', aggregated=False)
    usage.add_sessions(b'{"aggregates":[{"started":"t","exited":3,"errored":1}]}', aggregated=True)
    points = {p.tags["item"]: p for p in usage.points("7", NOW)}
    assert points["event"].fields == {"count": 1}
    assert points["transaction"].fields == {"count": 2}
    assert points["session"].fields == {
        "count": 5,
        "status_crashed": 1,
        "status_errored": 1,
        "status_exited": 3,
    }
    assert all(p.measurement == "sentry" and p.tags["project"] == "7" for p in points.values())


def test_webhook_signature() -> None:
    body = b'{"action":"created"}'
    good = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert verify_signature("s3cret", body, good)
    assert verify_signature("s3cret", body, good.upper())
    assert not verify_signature("s3cret", body + b" ", good)
    assert not verify_signature("other", body, good)
    assert not verify_signature("s3cret", body, None)


def test_issue_webhooks_raise_and_resolve_one_alert() -> None:
    issue = {
        "id": "1170820242",
        "shortId": "FRONT-A",
        "title": "Error: boom",
        "culprit": "app in f",
        "level": "error",
        "project": {"slug": "front"},
        "web_url": "https://sentry/issues/1",
        "count": "3",
    }
    [raised], events = webhook_to_telemetry(
        "issue", {"action": "created", "data": {"issue": issue}}, "s", NOW
    )
    [resolved], _ = webhook_to_telemetry("issue", {"action": "resolved", "data": {"issue": issue}}, "s", NOW)
    assert events == []
    assert raised.fingerprint == resolved.fingerprint == "sentry-issue:1170820242"
    assert (raised.resolved, resolved.resolved) == (False, True)
    assert raised.severity == "high" and raised.service == "front" and raised.origin == "error"
    assert raised.annotations["web_url"] == "https://sentry/issues/1"
    assigned, _ = webhook_to_telemetry("issue", {"action": "assigned", "data": {"issue": issue}}, "s", NOW)
    assert assigned == []


def test_event_alert_and_error_webhooks_carry_events() -> None:
    event = {
        "event_id": EVENT_ID,
        "project": 5,
        "issue_id": "77",
        "title": "ZeroDivisionError: x",
        "level": "fatal",
        "exception": {"values": [{"type": "ZeroDivisionError", "value": "x"}]},
    }
    signals, events = webhook_to_telemetry(
        "event_alert",
        {"action": "triggered", "data": {"event": event, "triggered_rule": "Paging"}},
        None,
        NOW,
    )
    assert [e.exception_type for e in events] == ["ZeroDivisionError"]
    assert signals[0].severity == "critical" and signals[0].fingerprint == "sentry-issue:77"
    assert signals[0].title.startswith("Paging: ")
    signals, events = webhook_to_telemetry(
        "error", {"action": "created", "data": {"error": event}}, None, NOW
    )
    assert signals == [] and events[0].project == "5"


def test_metric_alert_webhooks() -> None:
    data = {"metric_alert": {"id": "9", "alert_rule": {"name": "p95 latency"}}, "description_title": "Slow"}
    [critical], _ = webhook_to_telemetry("metric_alert", {"action": "critical", "data": data}, None, NOW)
    [resolved], _ = webhook_to_telemetry("metric_alert", {"action": "resolved", "data": data}, None, NOW)
    assert critical.severity == "critical" and not critical.resolved and resolved.resolved
    assert critical.fingerprint == resolved.fingerprint == "sentry-metric-alert:9"


def test_other_resources_carry_nothing_and_bad_shapes_are_errors() -> None:
    assert webhook_to_telemetry("installation", {"action": "created", "data": {}}, None, NOW) == ([], [])
    with pytest.raises(SentryError, match="data"):
        webhook_to_telemetry("issue", {"action": "created"}, None, NOW)
    with pytest.raises(SentryError, match=r"data\.issue"):
        webhook_to_telemetry("issue", {"action": "created", "data": {}}, None, NOW)
