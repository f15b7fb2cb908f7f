"""Silences and maintenance windows on both profiles: matching alerts are stored but suppressed,
existing ones are suppressed at once, ending a silence releases them, recurring windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.integration.alerting.helpers import signal
from tests.integration.conftest import Api
from vigil.alerting.service import AlertService


def service(api: Api) -> AlertService:
    return AlertService(api.backends.db, api.backends.bus, rules_ttl_s=0)


def in_one_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


async def test_silence_suppresses_matching_alerts_until_it_ends(api: Api) -> None:
    await service(api).ingest([signal(title="Disk warm", host="web-1", fingerprint="before")])
    silence = await api.client.post(
        "/api/v1/silences",
        json={
            "name": "web maintenance",
            "matchers": [{"name": "host", "op": "=~", "value": "web-.*"}],
            "ends_at": in_one_hour(),
            "comment": "kernel upgrades",
        },
    )
    assert silence.status_code == 201, silence.text
    assert silence.json()["active_now"] is True and silence.json()["created_by"] == "token:test"
    await service(api).ingest(
        [
            signal(title="Nginx down", host="web-2", fingerprint="during"),
            signal(title="DB down", host="db-1", fingerprint="other"),
        ]
    )
    alerts = {a["host"]: a for a in (await api.client.get("/api/v1/alerts")).json()["items"]}
    assert alerts["web-1"]["status"] == "suppressed"  # was firing before: suppressed at once
    assert alerts["web-2"]["status"] == "suppressed" and alerts["web-2"]["incident_id"] is None
    assert alerts["db-1"]["status"] == "new" and alerts["db-1"]["incident_id"] is not None
    detail = (await api.client.get(f"/api/v1/alerts/{alerts['web-2']['id']}")).json()
    assert detail["silence_ids"] == [silence.json()["id"]]
    assert any(t["kind"] == "suppressed" for t in detail["timeline"])
    suppressed = (await api.client.get("/api/v1/alerts", params={"suppressed": True})).json()["items"]
    assert {a["host"] for a in suppressed} == {"web-1", "web-2"}

    ended = await api.client.delete(f"/api/v1/silences/{silence.json()['id']}")
    assert ended.status_code == 200 and ended.json()["expired"] is True
    alerts = {a["host"]: a for a in (await api.client.get("/api/v1/alerts")).json()["items"]}
    assert alerts["web-2"]["status"] == "new" and alerts["web-2"]["incident_id"] is not None
    assert (await api.client.get("/api/v1/silences")).json() == []
    assert len((await api.client.get("/api/v1/silences", params={"state": "expired"})).json()) == 1


async def test_recurring_maintenance_windows(api: Api) -> None:
    now = datetime.now(UTC)
    start = (now - timedelta(minutes=30)).strftime("%H:%M")
    end = (now + timedelta(minutes=30)).strftime("%H:%M")
    weekly = await api.client.post(
        "/api/v1/silences",
        json={
            "name": "nightly batch",
            "kind": "maintenance",
            "matchers": [{"name": "service", "op": "=", "value": "etl"}],
            "recurrence": {
                "type": "weekly",
                "days": [now.weekday(), (now.weekday() - 1) % 7],
                "start": start,
                "end": end,
                "timezone": "UTC",
            },
        },
    )
    assert weekly.status_code == 201, weekly.text
    assert weekly.json()["active_now"] is True and weekly.json()["kind"] == "maintenance"
    assert weekly.json()["next_start"] is not None  # the same time next week
    later = await api.client.post(
        "/api/v1/silences",
        json={
            "name": "saturday patching",
            "matchers": [{"name": "host", "op": "=", "value": "x"}],
            "recurrence": {
                "type": "cron",
                "cron": "0 3 * * sat",
                "duration_minutes": 120,
                "timezone": "Europe/Paris",
            },
        },
    )
    assert later.status_code == 201
    next_start = datetime.fromisoformat(later.json()["next_start"])
    assert next_start.astimezone(UTC).weekday() in (4, 5) and next_start > now
    await service(api).ingest([signal(title="ETL lagging", service="etl", fingerprint="etl")])
    (alert,) = (await api.client.get("/api/v1/alerts")).json()["items"]
    assert alert["status"] == "suppressed"


async def test_silence_validation_names_the_field(api: Api) -> None:
    base = {"name": "x", "matchers": [{"name": "host", "op": "=", "value": "a"}]}
    missing_end = await api.client.post("/api/v1/silences", json=base)
    assert missing_end.status_code == 422 and "ends_at" in missing_end.json()["detail"]
    naive = await api.client.post("/api/v1/silences", json={**base, "ends_at": "2030-01-01T00:00:00"})
    assert naive.status_code == 422 and "timezone" in naive.json()["detail"]
    backwards = await api.client.post(
        "/api/v1/silences",
        json={
            **base,
            "starts_at": in_one_hour(),
            "ends_at": datetime.now(UTC).isoformat(),
        },
    )
    assert backwards.status_code == 422 and "ends_at" in backwards.json()["detail"]
    bad_days = await api.client.post(
        "/api/v1/silences",
        json={
            **base,
            "recurrence": {"type": "weekly", "days": ["someday"], "start": "01:00", "end": "02:00"},
        },
    )
    assert bad_days.status_code == 422 and "recurrence.days" in bad_days.json()["detail"]
    bad_regex = await api.client.post(
        "/api/v1/silences",
        json={
            **base,
            "matchers": [{"name": "host", "op": "=~", "value": "[web"}],
            "ends_at": in_one_hour(),
        },
    )
    assert bad_regex.status_code == 422 and "matchers[0].value" in bad_regex.json()["detail"]
    no_matchers = await api.client.post(
        "/api/v1/silences", json={"name": "x", "matchers": [], "ends_at": in_one_hour()}
    )
    assert no_matchers.status_code == 422 and "matchers" in no_matchers.json()["detail"]
    assert (await api.client.get("/api/v1/silences/12345")).status_code == 404


async def test_preview_and_update(api: Api) -> None:
    await service(api).ingest(
        [
            signal(title="a", host="web-1", fingerprint="1"),
            signal(title="b", host="web-2", fingerprint="2"),
            signal(title="c", host="db-1", fingerprint="3"),
        ]
    )
    preview = await api.client.post(
        "/api/v1/silences/preview",
        json={
            "name": "p",
            "matchers": [{"name": "host", "op": "=~", "value": "web-.*"}],
            "ends_at": in_one_hour(),
        },
    )
    assert preview.json()["matching_open_alerts"] == 2
    assert {a["host"] for a in preview.json()["alerts"]} == {"web-1", "web-2"}
    created = (
        await api.client.post(
            "/api/v1/silences",
            json={
                "name": "db",
                "matchers": [{"name": "host", "op": "=", "value": "db-1"}],
                "ends_at": in_one_hour(),
            },
        )
    ).json()
    assert {a["host"]: a["status"] for a in (await api.client.get("/api/v1/alerts")).json()["items"]}[
        "db-1"
    ] == "suppressed"
    changed = await api.client.patch(
        f"/api/v1/silences/{created['id']}",
        json={"matchers": [{"name": "host", "op": "=", "value": "web-1"}]},
    )
    assert changed.status_code == 200
    statuses = {a["host"]: a["status"] for a in (await api.client.get("/api/v1/alerts")).json()["items"]}
    assert statuses == {"web-1": "suppressed", "web-2": "new", "db-1": "new"}
    audit = (await api.client.get("/api/v1/audit", params={"target_type": "silence"})).json()["items"]
    assert [e["action"] for e in audit] == ["silence.update", "silence.create"]
