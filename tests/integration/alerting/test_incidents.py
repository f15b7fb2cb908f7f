"""The incidents API on both profiles: grouping, detail with summary and timeline, actions that
cascade to alerts, manual regrouping, grouping rules that force groups by label."""

from __future__ import annotations

from tests.integration.alerting.helpers import now_ns, signal
from tests.integration.conftest import Api
from tests.unit.alerting import scenarios
from vigil.alerting.service import AlertService


def service(api: Api) -> AlertService:
    return AlertService(api.backends.db, api.backends.bus, rules_ttl_s=0)


async def test_incidents_group_related_alerts_and_keep_a_summary(api: Api) -> None:
    base = now_ns(200)
    await service(api).ingest([s.signal(base) for s in scenarios.DISK_FILLING + scenarios.CPU_SPIKE])
    page = (await api.client.get("/api/v1/incidents")).json()
    assert len(page["items"]) == 2
    disk = next(i for i in page["items"] if i["hosts"] == ["web-03"])
    assert disk["alert_count"] == 4 and disk["open_alert_count"] == 4 and disk["severity"] == "critical"
    assert disk["summary_generated_by"] == "rules" and "4 alerts" in disk["summary"]
    assert set(disk["categories"]) >= {"disk"}
    detail = (await api.client.get(f"/api/v1/incidents/{disk['id']}")).json()
    assert [a["origin"] for a in detail["alerts"]] == ["anomaly", "predictive", "log", "error"]
    kinds = [t["kind"] for t in detail["timeline"]]
    assert kinds[0] == "created" and kinds.count("joined") == 4
    assert any("same host web-03" in r for r in detail["timeline"][-1]["data"]["reasons"])
    by_host = (await api.client.get("/api/v1/incidents", params={"host": "node-7"})).json()["items"]
    assert [i["hosts"] for i in by_host] == [["node-7"]]
    assert (await api.client.get("/api/v1/incidents", params={"severity": "low"})).json()["items"] == []
    alerts = (await api.client.get(f"/api/v1/incidents/{disk['id']}/alerts", params={"limit": 3})).json()
    assert len(alerts["items"]) == 3 and alerts["next_cursor"]


async def test_incident_actions_cascade_to_alerts(api: Api) -> None:
    await service(api).ingest([s.signal(now_ns(100)) for s in scenarios.BAD_DEPLOY])
    (incident,) = (await api.client.get("/api/v1/incidents")).json()["items"]
    url = f"/api/v1/incidents/{incident['id']}"
    acked = await api.client.post(f"{url}/acknowledge", json={"note": "rolling back"})
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    alerts = (await api.client.get("/api/v1/alerts", params={"incident_id": incident["id"]})).json()["items"]
    assert {a["status"] for a in alerts} == {"acknowledged"}
    assert (await api.client.post(f"{url}/assign", json={"assignee": "bob"})).json()["assignee"] == "bob"
    assert (await api.client.post(f"{url}/notes", json={"text": "rollback started"})).status_code == 200
    patched = await api.client.patch(url, json={"title": "Bad deploy of checkout 2.4.1", "severity": "high"})
    assert patched.json()["title"] == "Bad deploy of checkout 2.4.1" and patched.json()["severity"] == "high"
    resolved = await api.client.post(f"{url}/resolve", json={"note": "rolled back"})
    assert resolved.json()["status"] == "resolved" and resolved.json()["open_alert_count"] == 0
    alerts = (await api.client.get("/api/v1/alerts", params={"incident_id": incident["id"]})).json()["items"]
    assert {(a["status"], a["resolve_reason"]) for a in alerts} == {("resolved", "incident")}
    conflict = await api.client.post(f"{url}/acknowledge")
    assert conflict.status_code == 409 and conflict.json()["detail"].startswith("status:")
    timeline = (await api.client.get(f"{url}/timeline", params={"limit": 500})).json()["items"]
    assert {"status", "assigned", "note", "title", "severity"} <= {t["kind"] for t in timeline}
    audit = (await api.client.get("/api/v1/audit", params={"target_type": "incident"})).json()["items"]
    assert [e["action"] for e in audit][:2] == ["incident.resolve", "incident.update"]


async def test_alert_acknowledgement_acknowledges_its_incident(api: Api) -> None:
    await service(api).ingest([signal(title="Payments 5xx", service="payments", fingerprint="p")])
    (alert,) = (await api.client.get("/api/v1/alerts")).json()["items"]
    await api.client.post(f"/api/v1/alerts/{alert['id']}/acknowledge")
    incident = (await api.client.get(f"/api/v1/incidents/{alert['incident_id']}")).json()
    assert incident["status"] == "acknowledged" and incident["acknowledged_at"] is not None


async def test_moving_an_alert_between_incidents(api: Api) -> None:
    await service(api).ingest(
        [
            signal(title="DB slow", host="db-1", fingerprint="a"),
            signal(title="Cache evictions", host="cache-9", fingerprint="b", severity="critical"),
        ]
    )
    first, second = sorted((await api.client.get("/api/v1/incidents")).json()["items"], key=lambda i: i["id"])
    moved_alert = (await api.client.get("/api/v1/alerts", params={"host": "cache-9"})).json()["items"][0]
    moved = await api.client.post(
        f"/api/v1/incidents/{first['id']}/alerts", json={"alert_id": moved_alert["id"]}
    )
    assert moved.status_code == 200
    assert moved.json()["alert_count"] == 2 and moved.json()["severity"] == "critical"
    assert sorted(moved.json()["hosts"]) == ["cache-9", "db-1"]
    emptied = (await api.client.get(f"/api/v1/incidents/{second['id']}")).json()
    assert emptied["alert_count"] == 0 and emptied["status"] == "resolved"
    missing = await api.client.post(f"/api/v1/incidents/{first['id']}/alerts", json={"alert_id": 424242})
    assert missing.status_code == 409 and missing.json()["detail"].startswith("alert_id:")


async def test_grouping_rules_force_groups_by_label(api: Api) -> None:
    created = await api.client.post("/api/v1/incidents/grouping-rules", json=scenarios.CLUSTER_RULE)
    assert created.status_code == 201, created.text
    assert (
        await api.client.post("/api/v1/incidents/grouping-rules", json=scenarios.CLUSTER_RULE)
    ).status_code == 409
    bad = await api.client.post(
        "/api/v1/incidents/grouping-rules",
        json={**scenarios.CLUSTER_RULE, "name": "bad", "matchers": [{"name": "x", "op": "=~", "value": "("}]},
    )
    assert bad.status_code == 422 and "matchers[0].value" in bad.json()["detail"]
    await service(api).ingest([s.signal(now_ns(10)) for s in scenarios.CLUSTERS])
    items = (await api.client.get("/api/v1/incidents")).json()["items"]
    by_key = {i["rule_key"]: i for i in items}
    assert len(items) == 2
    eu = next(v for k, v in by_key.items() if k and k.endswith("cluster=eu-1"))
    assert eu["alert_count"] == 2 and sorted(eu["hosts"]) == ["k8s-eu-1", "k8s-eu-7"]
    rule_id = created.json()["id"]
    disabled = await api.client.patch(f"/api/v1/incidents/grouping-rules/{rule_id}", json={"enabled": False})
    assert disabled.json()["enabled"] is False
    assert (await api.client.delete(f"/api/v1/incidents/grouping-rules/{rule_id}")).status_code == 204
    assert (await api.client.get("/api/v1/incidents/grouping-rules")).json() == []
