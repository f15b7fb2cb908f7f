"""Notifications on both profiles, against local Slack/PagerDuty/webhook receivers and an SMTP
server: channels and their secrets, routing by severity and labels, delivery with retries and
backoff, PagerDuty resolve on the same dedup key, HMAC-signed webhooks, the delivery log,
escalation of unacknowledged alerts, and nothing sent for silenced or flapping alerts."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select

from tests.fakes.notify_servers import NotifyServer, SmtpServer
from tests.integration.alerting.helpers import signal
from tests.integration.conftest import Api
from vigil.alerting.notifications.dispatcher import DispatchOptions, NotificationDispatcher
from vigil.alerting.service import AlertService
from vigil.alerting.timers import AlertTimers
from vigil.store.models import Alert

ROUTING_KEY = "0123456789abcdef0123456789abcdef"
HMAC_SECRET = "a-webhook-secret-of-some-length"


def service(api: Api) -> AlertService:
    return AlertService(api.backends.db, api.backends.bus, rules_ttl_s=0)


def dispatcher(api: Api, **options: Any) -> NotificationDispatcher:
    defaults: dict[str, Any] = {"backoff_s": (0.05,), "max_attempts": 3}
    return NotificationDispatcher(
        api.backends.db, api.backends.secrets, DispatchOptions(**{**defaults, **options})
    )


async def deliver_all(api: Api, rounds: int = 20) -> None:
    d = dispatcher(api)
    for _ in range(rounds):
        if not await d.dispatch_once():
            await asyncio.sleep(0.06)
            if not await d.dispatch_once():
                return


async def channels(api: Api, fake: NotifyServer, smtp: SmtpServer | None = None) -> dict[str, int]:
    specs: list[dict[str, Any]] = [
        {"name": "ops-slack", "type": "slack", "secrets": {"webhook_url": f"{fake.url}/slack/T0/B0/xyz"}},
        {
            "name": "pager",
            "type": "pagerduty",
            "config": {"url": f"{fake.url}/pagerduty/v2/enqueue"},
            "secrets": {"routing_key": ROUTING_KEY},
        },
        {
            "name": "hook",
            "type": "webhook",
            "config": {"url": f"{fake.url}/webhook/ops", "headers": {"X-Team": "sre"}},
            "secrets": {"hmac_secret": HMAC_SECRET},
        },
    ]
    if smtp is not None:
        specs.append(
            {
                "name": "mail",
                "type": "email",
                "config": {
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "from": "vigil@example.org",
                    "to": ["oncall@example.org"],
                },
            }
        )
    ids = {}
    for spec in specs:
        response = await api.client.post("/api/v1/notifications/channels", json=spec)
        assert response.status_code == 201, response.text
        ids[spec["name"]] = response.json()["id"]
    return ids


async def test_channels_keep_secrets_and_validate(api: Api, notify_server: NotifyServer) -> None:
    ids = await channels(api, notify_server)
    listed = (await api.client.get("/api/v1/notifications/channels")).json()
    assert [c["secret_fields_set"] for c in listed] == [["webhook_url"], ["routing_key"], ["hmac_secret"]]
    assert "xyz" not in str(listed) and ROUTING_KEY not in str(listed)
    bad_key = await api.client.post(
        "/api/v1/notifications/channels",
        json={"name": "p2", "type": "pagerduty", "secrets": {"routing_key": "short"}},
    )
    assert bad_key.status_code == 422 and bad_key.json()["detail"].startswith("secrets.routing_key")
    bad_field = await api.client.post(
        "/api/v1/notifications/channels",
        json={"name": "s2", "type": "slack", "secrets": {"webhook_url": "https://h/x", "token": "t"}},
    )
    assert bad_field.status_code == 422 and "secrets.token" in bad_field.json()["detail"]
    bad_mail = await api.client.post(
        "/api/v1/notifications/channels",
        json={"name": "m", "type": "email", "config": {"host": "smtp", "from": "nobody", "to": ["a@b.c"]}},
    )
    assert bad_mail.status_code == 422 and "config.from" in bad_mail.json()["detail"]
    dup = await api.client.post(
        "/api/v1/notifications/channels",
        json={"name": "ops-slack", "type": "slack", "secrets": {"webhook_url": "https://h/x"}},
    )
    assert dup.status_code == 409
    renamed = await api.client.patch(
        f"/api/v1/notifications/channels/{ids['ops-slack']}", json={"name": "slack-2"}
    )
    assert renamed.json()["name"] == "slack-2" and renamed.json()["secret_fields_set"] == ["webhook_url"]
    async with api.as_token(await api.token("operator")) as operator:
        assert (
            await operator.post(
                "/api/v1/notifications/channels",
                json={"name": "x", "type": "slack", "secrets": {"webhook_url": "https://h/x"}},
            )
        ).status_code == 403
    test = await api.client.post(f"/api/v1/notifications/channels/{ids['ops-slack']}/test")
    assert test.status_code == 200 and test.json()["status"] == "sent"
    assert "Test notification" in notify_server.of("slack")[-1].json()["text"]


async def test_routed_alert_reaches_every_channel_and_resolves_on_pagerduty(
    api: Api, notify_server: NotifyServer, smtp_server: SmtpServer
) -> None:
    ids = await channels(api, notify_server, smtp_server)
    route = await api.client.post(
        "/api/v1/notifications/routes",
        json={
            "name": "urgent",
            "severities": ["critical", "high"],
            "channel_ids": list(ids.values()),
            "matchers": [{"name": "env", "op": "!=", "value": "dev"}],
        },
    )
    assert route.status_code == 201, route.text
    await service(api).ingest(
        [
            signal(
                title="Checkout down",
                severity="critical",
                host="web-1",
                service="checkout",
                fingerprint="c",
                labels={"env": "prod"},
            ),
            signal(title="Cache warm", severity="low", host="cache-1", fingerprint="l"),
            signal(
                title="Dev box down",
                severity="critical",
                host="dev-1",
                fingerprint="d",
                labels={"env": "dev"},
            ),
        ]
    )
    await deliver_all(api)
    log = (await api.client.get("/api/v1/notifications/deliveries")).json()["items"]
    assert (
        len(log) == 4 and {d["status"] for d in log} == {"sent"} and {d["event"] for d in log} == {"trigger"}
    )
    alert = (await api.client.get("/api/v1/alerts", params={"host": "web-1"})).json()["items"][0]

    slack = notify_server.of("slack")[-1].json()
    assert "Checkout down" in slack["text"] and slack["blocks"][0]["type"] == "header"
    (trigger,) = [r.json() for r in notify_server.of("pagerduty")]
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == f"vigil-alert-{alert['id']}"
    assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == "web-1"
    hook = notify_server.of("webhook")[-1]
    expected = hmac.new(
        HMAC_SECRET.encode(), hook.headers["x-vigil-timestamp"].encode() + b"." + hook.body, hashlib.sha256
    ).hexdigest()
    assert hook.headers["x-vigil-signature"] == f"sha256={expected}"
    assert hook.headers["x-team"] == "sre" and hook.json()["alert"]["id"] == alert["id"]
    ((_sender, recipients, email),) = smtp_server.messages
    assert recipients == ["oncall@example.org"] and email["Subject"] == "[CRITICAL] Checkout down"
    assert "Host: web-1" in email.get_payload()

    await api.client.post(f"/api/v1/alerts/{alert['id']}/resolve")
    await deliver_all(api)
    resolve = notify_server.of("pagerduty")[-1].json()
    assert resolve == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }
    assert notify_server.pagerduty_alerts[trigger["dedup_key"]] == "resolved"
    assert "(resolved)" in notify_server.of("slack")[-1].json()["text"]
    per_alert = (await api.client.get(f"/api/v1/alerts/{alert['id']}/deliveries")).json()
    assert [d["event"] for d in per_alert] == ["trigger"] * 4 + ["resolve"] * 4
    timeline = (await api.client.get(f"/api/v1/alerts/{alert['id']}")).json()["timeline"]
    assert sum(1 for t in timeline if t["kind"] == "notified") == 8


async def test_a_notified_new_alert_is_inserted_marked_as_notified(
    api: Api, notify_server: NotifyServer
) -> None:
    """An alert a trigger goes out for is stored with ``notified_at`` at its insert: marked
    afterwards, every notified new alert was inserted and then updated."""
    ids = await channels(api, notify_server)
    await api.client.post("/api/v1/notifications/routes", json={"name": "all", "channel_ids": [ids["pager"]]})
    alerts = service(api)
    await alerts.ingest([signal(title="Orders queue stuck", host="q-1", fingerprint="n-1")])
    engine = api.backends.db.engine.sync_engine
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(" ".join(statement.split()[:2]).upper())

    event.listen(engine, "before_cursor_execute", record)
    try:  # joins the incident the first one opened
        await alerts.ingest([signal(title="Orders queue stuck", host="q-2", fingerprint="n-2")])
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert "UPDATE ALERTS" not in statements
    async with api.backends.db.session() as session:
        first, second = (await session.execute(select(Alert).order_by(Alert.id))).scalars()
    assert second.incident_id == first.incident_id is not None
    assert first.notified_at is not None and second.notified_at is not None
    per_alert = (await api.client.get(f"/api/v1/alerts/{second.id}/deliveries")).json()
    assert [(d["event"], d["channel_id"]) for d in per_alert] == [("trigger", ids["pager"])]


async def test_retries_with_backoff_then_gives_up_on_permanent_errors(
    api: Api, notify_server: NotifyServer
) -> None:
    ids = await channels(api, notify_server)
    await api.client.post(
        "/api/v1/notifications/routes", json={"name": "all", "channel_ids": [ids["ops-slack"], ids["pager"]]}
    )
    notify_server.fail("/slack/", 500, 503)
    notify_server.fail("/pagerduty/", 400, body='{"status":"invalid event"}')
    await service(api).ingest([signal(title="Orders queue stuck", fingerprint="q")])
    d = dispatcher(api, backoff_s=(0.05,), max_attempts=4)
    assert await d.dispatch_once() == 2
    log = {
        x["channel_id"]: x for x in (await api.client.get("/api/v1/notifications/deliveries")).json()["items"]
    }
    assert log[ids["pager"]]["status"] == "failed" and log[ids["pager"]]["response_status"] == 400
    assert log[ids["ops-slack"]]["status"] == "pending" and "500" in log[ids["ops-slack"]]["last_error"]
    for _ in range(10):
        await asyncio.sleep(0.06)
        await d.dispatch_once()
    slack = next(
        x
        for x in (
            await api.client.get("/api/v1/notifications/deliveries", params={"channel_id": ids["ops-slack"]})
        ).json()["items"]
    )
    assert slack["status"] == "sent" and slack["attempts"] == 3
    assert len(notify_server.of("slack")) == 3
    failed = (await api.client.get("/api/v1/notifications/deliveries", params={"status": "failed"})).json()[
        "items"
    ]
    retried = await api.client.post(f"/api/v1/notifications/deliveries/{failed[0]['id']}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    await d.dispatch_once()
    assert notify_server.pagerduty_alerts  # accepted this time
    again = await api.client.post(f"/api/v1/notifications/deliveries/{failed[0]['id']}/retry")
    assert again.status_code == 409


async def test_throttling_honours_retry_after(api: Api, notify_server: NotifyServer) -> None:
    ids = await channels(api, notify_server)
    await api.client.post(
        "/api/v1/notifications/routes", json={"name": "all", "channel_ids": [ids["ops-slack"]]}
    )
    notify_server.fail("/slack/", 429, body="rate_limited", retry_after="120")
    await service(api).ingest([signal(title="Busy", fingerprint="b")])
    await dispatcher(api).dispatch_once()
    (delivery,) = (await api.client.get("/api/v1/notifications/deliveries")).json()["items"]
    wait = datetime.fromisoformat(delivery["next_attempt_at"]) - datetime.now(UTC)
    assert delivery["status"] == "pending" and timedelta(seconds=100) < wait <= timedelta(seconds=120)


async def test_unacknowledged_alerts_escalate(api: Api, notify_server: NotifyServer) -> None:
    ids = await channels(api, notify_server)
    policy = await api.client.post(
        "/api/v1/notifications/escalation-policies",
        json={
            "name": "critical paging",
            "severities": ["critical"],
            "steps": [
                {"after_minutes": 5, "channel_ids": [ids["pager"]]},
                {"after_minutes": 10, "channel_ids": [ids["hook"]]},
            ],
        },
    )
    assert policy.status_code == 201, policy.text
    bad = await api.client.post(
        "/api/v1/notifications/escalation-policies",
        json={
            "name": "x",
            "steps": [
                {"after_minutes": 5, "channel_ids": [ids["pager"]]},
                {"after_minutes": 1, "channel_ids": [ids["hook"]]},
            ],
        },
    )
    assert bad.status_code == 422 and "steps[1].after_minutes" in bad.json()["detail"]
    missing = await api.client.post(
        "/api/v1/notifications/escalation-policies",
        json={"name": "y", "steps": [{"after_minutes": 5, "channel_ids": [999]}]},
    )
    assert missing.status_code == 422 and "steps[0].channel_ids" in missing.json()["detail"]
    svc = service(api)
    await svc.ingest(
        [
            signal(title="Primary DB down", severity="critical", fingerprint="db"),
            signal(title="Replica lag", severity="critical", fingerprint="lag"),
        ]
    )
    lag = (await api.client.get("/api/v1/alerts", params={"q": "Replica"})).json()["items"][0]
    await api.client.post(f"/api/v1/alerts/{lag['id']}/acknowledge")
    timers = AlertTimers(svc)
    now = datetime.now(UTC)
    assert (await timers.tick(now)).escalated == 0
    assert (await timers.tick(now + timedelta(minutes=6))).escalated == 1  # only the unacknowledged one
    assert (await timers.tick(now + timedelta(minutes=12))).escalated == 1  # its second step
    assert (await timers.tick(now + timedelta(minutes=30))).escalated == 0  # no step left
    await deliver_all(api)
    (page,) = [r.json() for r in notify_server.of("pagerduty")]
    assert page["event_action"] == "trigger" and "escalated, level 1" in page["payload"]["summary"]
    assert notify_server.of("webhook")[-1].json()["event"] == "escalate"
    db = (await api.client.get("/api/v1/alerts", params={"q": "Primary"})).json()["items"][0]
    assert (await api.client.get(f"/api/v1/alerts/{db['id']}")).json()["escalation_level"] == 2


async def test_silenced_and_flapping_alerts_are_not_notified(api: Api, notify_server: NotifyServer) -> None:
    ids = await channels(api, notify_server)
    await api.client.post(
        "/api/v1/notifications/routes", json={"name": "all", "channel_ids": [ids["ops-slack"]]}
    )
    await api.client.post(
        "/api/v1/silences",
        json={
            "name": "quiet",
            "matchers": [{"name": "host", "op": "=", "value": "noisy"}],
            "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        },
    )
    svc = service(api)
    await svc.ingest([signal(title="Noisy thing", host="noisy", fingerprint="n")])
    for resolved in (False, True, False, True, False, True, False):
        await svc.ingest([signal(title="Port flapping", host="sw-1", fingerprint="f", resolved=resolved)])
    await deliver_all(api)
    texts = [r.json()["text"] for r in notify_server.of("slack")]
    assert not any("Noisy" in t for t in texts)
    # Flapping starts at the 4th state change: the first triggers and resolves go out, then silence.
    assert 0 < len(texts) < 7
    flapper = (await api.client.get("/api/v1/alerts", params={"host": "sw-1"})).json()["items"][0]
    assert flapper["flapping"] is True
    kinds = [t["kind"] for t in (await api.client.get(f"/api/v1/alerts/{flapper['id']}")).json()["timeline"]]
    assert "notification_held" in kinds
