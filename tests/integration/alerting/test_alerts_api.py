"""The alerts API on both profiles: manual alerts, dedup, filters, grouping, cursors, actions with
audit and timeline, dry run, fingerprint rules, and errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.integration.alerting.helpers import now_ns, signal
from tests.integration.conftest import Api
from vigil.alerting.service import AlertService
from vigil.store.models import AuditEntry


async def _ingest(api: Api, *signals: object) -> None:
    await AlertService(api.backends.db, api.backends.bus, rules_ttl_s=0).ingest(list(signals))  # type: ignore[arg-type]


async def test_manual_alert_dedups_and_lists_with_filters(api: Api) -> None:
    body = {
        "title": "Checkout latency high",
        "severity": "high",
        "host": "web-1",
        "service": "checkout",
        "fingerprint": "checkout-latency",
        "labels": {"team": "payments"},
    }
    first = await api.client.post("/api/v1/alerts", json=body)
    assert first.status_code == 201, first.text
    again = await api.client.post("/api/v1/alerts", json={**body, "title": "Checkout latency very high"})
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["count"] == 2 and again.json()["title"] == "Checkout latency very high"
    other = await api.client.post(
        "/api/v1/alerts", json={"title": "Disk full", "severity": "critical", "host": "db-1"}
    )
    assert other.status_code == 201
    page = (await api.client.get("/api/v1/alerts")).json()
    assert [a["id"] for a in page["items"]] == [other.json()["id"], first.json()["id"]]  # newest first
    critical = (await api.client.get("/api/v1/alerts", params={"severity": "critical"})).json()["items"]
    assert [a["host"] for a in critical] == ["db-1"]
    by_text = (await api.client.get("/api/v1/alerts", params={"q": "LATENCY"})).json()["items"]
    assert [a["id"] for a in by_text] == [first.json()["id"]]
    assert (await api.client.get("/api/v1/alerts", params={"q": "100%_"})).json()["items"] == []
    by_service = (
        await api.client.get("/api/v1/alerts", params={"service": "checkout", "origin": "manual"})
    ).json()
    assert len(by_service["items"]) == 1
    assert (await api.client.get("/api/v1/alerts", params={"status": "resolved"})).json()["items"] == []
    assert len((await api.client.get("/api/v1/alerts", params={"status": "open"})).json()["items"]) == 2


async def test_cursor_pagination_walks_every_alert_once(api: Api) -> None:
    base = now_ns(60)
    await _ingest(
        api,
        *[
            signal(title=f"alert {i}", fingerprint=f"fp-{i}", time_ns=base + (i // 3) * 10**9)
            for i in range(23)
        ],
    )
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = (await api.client.get("/api/v1/alerts", params=params)).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 23 and len(set(seen)) == 23
    bad = await api.client.get("/api/v1/alerts", params={"cursor": "not-a-cursor!"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("cursor:")


async def test_time_range_and_grouping(api: Api) -> None:
    old = now_ns(180)
    await _ingest(
        api,
        signal(title="old", host="a", fingerprint="1", time_ns=old),
        signal(title="new a", host="a", fingerprint="2", severity="critical"),
        signal(title="new b", host="b", fingerprint="3", severity="low"),
    )
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    recent = (await api.client.get("/api/v1/alerts", params={"since": since})).json()["items"]
    assert sorted(a["title"] for a in recent) == ["new a", "new b"]
    naive = await api.client.get("/api/v1/alerts", params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and "since" in naive.json()["detail"]
    groups = (await api.client.get("/api/v1/alerts/groups", params={"by": "host"})).json()
    assert groups["by"] == "host"
    assert [(g["key"], g["count"]) for g in groups["groups"]] == [("a", 2), ("b", 1)]
    assert groups["groups"][0]["by_severity"] == {"critical": 1, "high": 1, "medium": 0, "low": 0}
    severities = (
        await api.client.get("/api/v1/alerts/groups", params={"by": "severity", "since": since})
    ).json()
    assert {g["key"]: g["count"] for g in severities["groups"]} == {"critical": 1, "low": 1}


async def test_actions_are_audited_and_on_the_timeline(api: Api) -> None:
    alert = (
        await api.client.post("/api/v1/alerts", json={"title": "Queue backlog", "severity": "high"})
    ).json()
    url = f"/api/v1/alerts/{alert['id']}"
    acked = await api.client.post(f"{url}/acknowledge", json={"note": "looking"})
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    assert acked.json()["acknowledged_at"] is not None
    assigned = await api.client.post(f"{url}/assign", json={"assignee": "alice"})
    assert assigned.json()["assignee"] == "alice"
    started = await api.client.patch(url, json={"status": "in_progress"})
    assert started.json()["status"] == "in_progress"
    assert (await api.client.post(f"{url}/notes", json={"text": "restarted the consumer"})).status_code == 200
    resolved = await api.client.post(f"{url}/resolve", json={"note": "drained"})
    assert resolved.json()["status"] == "resolved" and resolved.json()["resolve_reason"] == "manual"
    # Resolved alerts cannot be acknowledged: a clear conflict naming the field.
    conflict = await api.client.post(f"{url}/acknowledge")
    assert conflict.status_code == 409 and conflict.json()["detail"].startswith("status:")
    detail = (await api.client.get(url)).json()
    kinds = [t["kind"] for t in detail["timeline"]]
    assert kinds == ["created", "joined", "status", "assigned", "status", "note", "status"]
    assert (
        detail["timeline"][2]["actor"] == "token:test" and detail["timeline"][2]["data"]["note"] == "looking"
    )
    assert detail["timeline"][5]["message"] == "restarted the consumer"
    timeline = (await api.client.get(f"{url}/timeline", params={"limit": 5})).json()
    assert len(timeline["items"]) == 5 and timeline["next_cursor"]
    rest = (await api.client.get(f"{url}/timeline", params={"cursor": timeline["next_cursor"]})).json()
    assert [t["kind"] for t in rest["items"]] == ["note", "status"]
    audit = (
        await api.client.get("/api/v1/audit", params={"target_type": "alert", "target_id": alert["id"]})
    ).json()
    actions = [e["action"] for e in audit["items"]]
    assert actions == [
        "alert.resolve",
        "alert.note",
        "alert.update",
        "alert.assign",
        "alert.acknowledge",
        "alert.create",
    ]
    ack_entry = audit["items"][4]
    assert ack_entry["before"]["status"] == "new" and ack_entry["after"]["status"] == "acknowledged"


async def test_escalate_and_automation_and_not_found(api: Api) -> None:
    alert = (
        await api.client.post("/api/v1/alerts", json={"title": "Payments down", "severity": "critical"})
    ).json()
    url = f"/api/v1/alerts/{alert['id']}"
    escalated = await api.client.post(f"{url}/escalate", json={"note": "need the DBA"})
    assert escalated.status_code == 200
    detail = (await api.client.get(url)).json()
    assert detail["escalation_level"] == 1
    assert detail["timeline"][-1]["kind"] == "escalated" and "need the DBA" in str(
        detail["timeline"][-1]["data"]
    )
    automation = await api.client.post(f"{url}/automation")
    assert automation.status_code == 501
    assert automation.headers["content-type"].startswith("application/problem+json")
    assert "automation not configured" in automation.json()["detail"]
    assert (await api.client.get(url)).json()["timeline"][-1]["kind"] == "automation"
    missing = await api.client.post("/api/v1/alerts/999999/acknowledge")
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]
    bad = await api.client.post("/api/v1/alerts", json={"title": "", "severity": "urgent"})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"title", "severity"}


async def test_viewer_can_read_but_not_act(api: Api) -> None:
    alert = (await api.client.post("/api/v1/alerts", json={"title": "x"})).json()
    async with api.as_token(await api.token("viewer")) as viewer:
        assert (await viewer.get(f"/api/v1/alerts/{alert['id']}")).status_code == 200
        denied = await viewer.post(f"/api/v1/alerts/{alert['id']}/acknowledge")
        assert denied.status_code == 403


async def test_dry_run_shows_fingerprint_alert_and_incident_without_writing(api: Api) -> None:
    sample = {
        "origin": "alertmanager",
        "title": "DiskFull on web-3",
        "severity": "critical",
        "host": "web-3",
        "fingerprint": "am-123",
    }
    fresh = (await api.client.post("/api/v1/alerts/dry-run", json=sample)).json()
    assert fresh["alert"]["action"] == "create"
    assert fresh["fingerprint_fields"] == ["fingerprint"] and "own fingerprint" in fresh["fingerprint_reason"]
    assert fresh["incident"]["action"] == "create"
    assert (await api.client.get("/api/v1/alerts")).json()["items"] == []  # nothing written
    await _ingest(api, signal(**{**sample, "time_ns": now_ns()}))
    again = (await api.client.post("/api/v1/alerts/dry-run", json=sample)).json()
    existing = (await api.client.get("/api/v1/alerts")).json()["items"][0]
    assert again["fingerprint"] == fresh["fingerprint"]
    assert again["alert"] == {"action": "refire", "alert_id": existing["id"], "count": 2}
    assert again["incident"] == {
        "action": "keep",
        "incident_id": existing["incident_id"],
        "reasons": ["the alert already belongs to this incident"],
    }
    related = (
        await api.client.post(
            "/api/v1/alerts/dry-run",
            json={
                "origin": "log",
                "title": "No space left on device",
                "host": "web-3",
                "fingerprint": "tpl-9",
            },
        )
    ).json()
    assert related["incident"]["action"] == "join"
    assert related["incident"]["incident_id"] == existing["incident_id"]
    assert any("same host web-3" in r for r in related["incident"]["reasons"])
    assert (await api.client.get(f"/api/v1/alerts/{existing['id']}")).json()["count"] == 1


async def test_fingerprint_rules_change_deduplication(api: Api) -> None:
    rule = await api.client.put(
        "/api/v1/alerts/fingerprint-rules/alertmanager",
        json={"fields": ["labels.alertname", "service"], "auto_resolve_minutes": 30},
    )
    assert rule.status_code == 200, rule.text
    assert rule.json()["fields"] == ["labels.alertname", "service"]
    svc = AlertService(api.backends.db, api.backends.bus, rules_ttl_s=0)
    await svc.ingest(
        [
            signal(
                title="Down on a", host="a", service="api", labels={"alertname": "Down"}, fingerprint="x1"
            ),
            signal(
                title="Down on b", host="b", service="api", labels={"alertname": "Down"}, fingerprint="x2"
            ),
        ]
    )
    items = (await api.client.get("/api/v1/alerts")).json()["items"]
    assert len(items) == 1 and items[0]["count"] == 2
    bad = await api.client.put("/api/v1/alerts/fingerprint-rules/alertmanager", json={"fields": ["hostname"]})
    assert bad.status_code == 422 and "hostname" in bad.json()["detail"]
    listed = (await api.client.get("/api/v1/alerts/fingerprint-rules")).json()
    assert [r["origin"] for r in listed] == ["alertmanager"]
    assert (await api.client.delete("/api/v1/alerts/fingerprint-rules/alertmanager")).status_code == 204
    assert (await api.client.delete("/api/v1/alerts/fingerprint-rules/alertmanager")).status_code == 404
    async with api.backends.db.session() as session:
        from sqlalchemy import select

        actions = set((await session.execute(select(AuditEntry.action))).scalars())
    assert {"fingerprint_rule.put", "fingerprint_rule.delete"} <= actions
