"""Findings and metrics APIs on both profiles: the findings store folds events into rows, the
findings list filters and pages, the series query returns data + baseline band + anomaly
markers + forecast, the catalogue lists what the store holds, and prediction rules made through
the API decide what the detect stage forecasts."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select

from tests.integration.conftest import Api
from tests.integration.metrics.helpers import collected_findings, fast_options, run_detector
from vigil.backends import Backends
from vigil.domain import codec
from vigil.domain.findings import Finding
from vigil.domain.metrics import Point
from vigil.metrics.baselines import baseline_point
from vigil.metrics.findings import store_findings
from vigil.metrics.series import series_key
from vigil.store.models import AuditEntry, FindingRecord

HOUR_NS = 3_600_000_000_000
NOW_NS = time.time_ns() // 600_000_000_000 * 600_000_000_000  # whole 10 minutes: whole buckets


def _finding(
    state: str,
    time_ns: int,
    opened_ns: int | None,
    *,
    kind: str = "anomaly",
    key: str = "cpu.usage_user{host=web-01}",
    score: float = 0.7,
    severity: str = "medium",
    host: str | None = "web-01",
    service: str | None = None,
) -> Finding:
    evidence: dict[str, object] = {"method": "zscore", "peak": {"time_ns": time_ns, "observed": 9.0}}
    if opened_ns is not None:
        evidence["opened_ns"] = opened_ns
    return Finding(
        kind=kind,
        key=key,
        state=state,
        time_ns=time_ns,
        title=f"{key} {state} at {time_ns}",
        score=score,
        severity=severity,
        host=host,
        service=service,
        evidence=evidence,
    )


async def _rows(backends: Backends) -> list[FindingRecord]:
    async with backends.db.session() as session:
        return list((await session.execute(select(FindingRecord).order_by(FindingRecord.id))).scalars())


async def test_findings_store_folds_replayed_and_reordered_events(backends: Backends) -> None:
    t0 = NOW_NS - HOUR_NS
    opened = _finding("open", t0, t0, score=0.65)
    update = _finding("update", t0 + 60_000_000_000, t0, score=0.9, severity="high")
    resolved = _finding("resolved", t0 + 120_000_000_000, t0, score=0.9, severity="high")
    # out of order, and the open replayed after the resolve (as after a crash)
    await store_findings(backends.db, [update, resolved])
    await store_findings(backends.db, [opened, update])
    rows = await _rows(backends)
    assert len(rows) == 1
    row = rows[0]
    assert row.state == "resolved" and row.score == 0.9 and row.severity == "high"
    assert row.title == resolved.title  # from the newest event
    assert row.opened_at == datetime.fromtimestamp(t0 / 1e9, UTC)
    assert row.resolved_at == datetime.fromtimestamp((t0 + 120_000_000_000) / 1e9, UTC)

    # a new occurrence of the same series is a new row
    await store_findings(backends.db, [_finding("open", t0 + HOUR_NS // 2, t0 + HOUR_NS // 2)])
    assert [r.state for r in await _rows(backends)] == ["resolved", "open"]

    # log findings carry no opened_ns: they attach to the open row of their key
    for state, offset, score in (
        ("open", 0, 0.7),
        ("update", 1, 0.8),
        ("resolved", 2, 0.7),
        ("resolved", 3, 0.7),
    ):
        burst = _finding(
            state, t0 + offset * 60_000_000_000, None, kind="log_burst", key="log_template:7", score=score
        )
        await store_findings(backends.db, [burst])
    logs = [r for r in await _rows(backends) if r.kind == "log_burst"]
    assert len(logs) == 1 and logs[0].state == "resolved" and logs[0].score == 0.8


async def test_findings_stage_dead_letters_garbage(backends: Backends) -> None:
    from vigil.pipeline.runner import Runner
    from vigil.pipeline.stages.metrics_findings import FindingsStoreStage

    stage = FindingsStoreStage(backends.db)
    good = _finding("open", NOW_NS, NOW_NS)
    await backends.bus.ensure_group(stage.topic, stage.group)
    await backends.bus.publish(stage.topic, b"not json")
    await backends.bus.publish(stage.topic, codec.encode_dicts("findings", [{"kind": "anomaly"}]))
    await backends.bus.publish(stage.topic, codec.encode_dicts("findings", [good.to_dict()]))
    runner = Runner(backends.bus, [stage], block_ms=100)
    messages = await backends.bus.consume(stage.topic, stage.group, "t", count=10, block_ms=100)
    await runner.process(stage, messages)
    assert len(await _rows(backends)) == 1
    letters = await backends.bus.list_dead_letters()
    reasons = sorted(letter.reason for letter in letters)
    assert len(reasons) == 2
    assert any("not JSON" in r for r in reasons) and any("key: required" in r for r in reasons)


async def test_findings_list_filters_pages_and_detail(api: Api) -> None:
    findings = []
    for i in range(7):
        t = NOW_NS - (10 - i) * HOUR_NS
        host = "web-01" if i % 2 == 0 else "db-01"
        findings.append(_finding("open", t, t, key=f"cpu.usage_user{{host={host},i={i}}}", host=host))
    findings.append(
        _finding(
            "resolved", NOW_NS - 2 * HOUR_NS, NOW_NS - 4 * HOUR_NS, key="cpu.usage_user{host=web-01,i=6}"
        )
    )
    hour_ago = NOW_NS - HOUR_NS
    predicted = _finding(
        "open", hour_ago, hour_ago, kind="prediction", key="mem.used_percent{host=app-02}", host="app-02",
        service="orders",
    )  # fmt: skip
    await store_findings(api.backends.db, [*findings, predicted])

    page = (await api.client.get("/api/v1/findings", params={"limit": 3})).json()
    assert len(page["items"]) == 3 and page["next_cursor"]
    assert page["items"][0]["kind"] == "prediction"  # newest first
    seen = [item["id"] for item in page["items"]]
    while page["next_cursor"]:
        page = (
            await api.client.get("/api/v1/findings", params={"limit": 3, "cursor": page["next_cursor"]})
        ).json()
        seen += [item["id"] for item in page["items"]]
    assert len(seen) == len(set(seen)) == 8

    only = (await api.client.get("/api/v1/findings", params={"kind": "anomaly", "host": "db-01"})).json()
    assert {i["host"] for i in only["items"]} == {"db-01"} and len(only["items"]) == 3
    resolved = (await api.client.get("/api/v1/findings", params={"state": "resolved"})).json()["items"]
    assert [i["key"] for i in resolved] == ["cpu.usage_user{host=web-01,i=6}"]
    service = (await api.client.get("/api/v1/findings", params={"service": "orders"})).json()["items"]
    assert [i["kind"] for i in service] == ["prediction"]
    window = {
        "start": datetime.fromtimestamp((NOW_NS - 5 * HOUR_NS) / 1e9, UTC).isoformat(),
        "end": datetime.fromtimestamp((NOW_NS - 3 * HOUR_NS) / 1e9, UTC).isoformat(),
    }
    active = (await api.client.get("/api/v1/findings", params=window)).json()["items"]
    # opened before the end, and not resolved before the start
    assert sorted(i["key"] for i in active) == sorted(
        f"cpu.usage_user{{host={'web-01' if i % 2 == 0 else 'db-01'},i={i}}}" for i in range(7)
    )

    detail = (await api.client.get(f"/api/v1/findings/{seen[0]}")).json()
    assert detail["evidence"]["opened_ns"] == NOW_NS - HOUR_NS and detail["method"] == "zscore"
    missing = await api.client.get("/api/v1/findings/999999")
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]
    bad = await api.client.get("/api/v1/findings", params={"cursor": "nonsense"})
    assert bad.status_code == 400 and "cursor" in bad.json()["detail"]
    backwards = await api.client.get(
        "/api/v1/findings", params={"start": window["end"], "end": window["start"]}
    )
    assert backwards.status_code == 422 and "end" in backwards.json()["detail"]
    bad_kind = await api.client.get("/api/v1/findings", params={"kind": "weird"})
    assert bad_kind.status_code == 422


async def test_series_query_draws_data_band_markers_and_forecast(api: Api) -> None:
    backends = api.backends
    start = NOW_NS - 30 * HOUR_NS  # more than a day: a trend must span one to be forecast
    minutes = 30 * 60
    tags = {"host": "web-03", "path": "/var"}
    points, baselines = [], []
    for i in range(minutes):
        t = start + i * 60_000_000_000
        used = 40.0 + i / 60 * 1.5 + 0.2 * math.sin(i)  # 1.5 %/h: 100 % 10 h after the end
        points.append(Point("disk", {"used_percent": used}, tags, t))
        points.append(Point("disk", {"used_percent": 20.0}, {"host": "web-04", "path": "/"}, t))
        baselines.append(baseline_point("disk", "used_percent", tags, t, used - 0.1, used - 2, used + 2, 0.1))
    await backends.metrics.write(points + baselines)
    key = series_key("disk", "used_percent", tags)
    peak_ns = NOW_NS - 3 * HOUR_NS
    await store_findings(backends.db, [_finding("open", peak_ns, peak_ns, key=key, host="web-03")])

    params: dict[str, str | int] = {
        "measurement": "disk",
        "field": "used_percent",
        "tag.host": "web-03",
        "start": datetime.fromtimestamp(start / 1e9, UTC).isoformat(),
        "end": datetime.fromtimestamp(NOW_NS / 1e9, UTC).isoformat(),
        "interval": 600,
    }
    answer = await api.client.get("/api/v1/metrics/series", params=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["interval_s"] == 600 and not body["truncated"]
    [series] = body["series"]
    assert series["key"] == key and series["tags"] == tags
    values = [v for v in series["data"]["values"] if v is not None]
    assert len(series["data"]["times_ns"]) == 180 and len(values) == 180
    band = series["baseline"]
    assert len(band["expected"]) == 180
    assert all(
        lo < ex < hi for lo, ex, hi in zip(band["lower"], band["expected"], band["upper"], strict=True) if ex
    )
    [marker] = series["anomalies"]
    assert marker["state"] == "open" and marker["peak_value"] == 9.0
    forecast = series["forecast"]
    assert series["prediction_rule"] == "default:disk_used" and forecast["threshold"] == 100.0
    assert 1.3 < forecast["trend_per_hour"] < 1.7
    assert 8 * 3600 < forecast["eta_s"] < 12 * 3600
    curve = forecast["curve"]
    assert curve["times_ns"][0] < NOW_NS < curve["times_ns"][-1]
    assert all(
        lo <= ex <= hi for lo, ex, hi in zip(curve["lower"], curve["expected"], curve["upper"], strict=True)
    )

    by_key = await api.client.get("/api/v1/metrics/series", params={"series": key, "start": params["start"]})
    assert [s["key"] for s in by_key.json()["series"]] == [key]
    every = {"measurement": "disk", "field": "used_percent", "forecast": "false"}
    both = (await api.client.get("/api/v1/metrics/series", params=every)).json()
    assert [s["tags"]["host"] for s in both["series"]] == ["web-03", "web-04"]
    assert all(s["forecast"] is None for s in both["series"])

    refusals: list[tuple[dict[str, str | int], str]] = [
        ({"field": "used_percent"}, "measurement"),
        ({"measurement": "disk"}, "field"),
        ({"series": "no-field"}, "series"),
        ({"measurement": "disk", "field": "x", "tag.": "a"}, "tag."),
        ({"measurement": "disk", "field": "x", "interval": 1, "start": "2020-01-01T00:00:00Z"}, "interval"),
        ({"measurement": "disk", "field": "x", "start": params["end"], "end": params["start"]}, "end"),
    ]
    for query, field in refusals:
        refused = await api.client.get("/api/v1/metrics/series", params=query)
        assert refused.status_code == 422, (query, refused.text)
        assert refused.json()["detail"].startswith(field), refused.json()

    assert "disk" in (await api.client.get("/api/v1/metrics/measurements")).json()["items"]
    assert "vigil_baseline" not in (await api.client.get("/api/v1/metrics/measurements")).json()["items"]
    internal = await api.client.get("/api/v1/metrics/measurements", params={"internal": "true"})
    assert "vigil_baseline" in internal.json()["items"]
    fields = await api.client.get("/api/v1/metrics/fields", params={"measurement": "disk"})
    assert fields.json()["items"] == ["used_percent"]
    keys = await api.client.get("/api/v1/metrics/tag-keys", params={"measurement": "disk"})
    assert keys.json()["items"] == ["host", "path"]
    hosts = await api.client.get("/api/v1/metrics/tag-values", params={"measurement": "disk", "key": "host"})
    assert hosts.json()["items"] == ["web-03", "web-04"]
    sets = await api.client.get("/api/v1/metrics/tag-sets", params={"measurement": "disk", "limit": 1})
    assert sets.json() == {"items": [{"host": "web-03", "path": "/var"}], "truncated": True}
    assert (await api.client.get("/api/v1/metrics/fields")).status_code == 422


async def test_prediction_rules_from_the_api_drive_the_detect_stage(api: Api) -> None:
    client = api.client
    created = await client.post(
        "/api/v1/metrics/prediction-rules",
        json={"name": "queue depth", "measurement": "app_queue", "field": "depth", "threshold": 5000,
              "tags": {"queue": "orders*"}, "title": "queue {queue} on {host} full {eta}", "priority": 10},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    rule = created.json()
    duplicate = await client.post(
        "/api/v1/metrics/prediction-rules", json={"name": "queue depth", "measurement": "x", "field": "y"}
    )
    assert duplicate.status_code == 409 and duplicate.json()["detail"].startswith("name")
    invalid = await client.post(
        "/api/v1/metrics/prediction-rules",
        json={"name": "n", "measurement": "x", "field": "y", "direction": "up"},
    )
    assert invalid.status_code == 422
    ignore = await client.post(
        "/api/v1/metrics/prediction-rules",
        json={"name": "no tmpfs", "measurement": "disk", "field": "used_percent", "action": "ignore",
              "tags": {"fstype": "tmpfs"}},
    )  # fmt: skip
    assert ignore.status_code == 201
    listed = (await client.get("/api/v1/metrics/prediction-rules")).json()
    assert [r["name"] for r in listed["items"]] == ["queue depth", "no tmpfs"]
    assert "default:disk_used" in {r["id"] for r in listed["defaults"]}
    patched = await client.patch(
        f"/api/v1/metrics/prediction-rules/{rule['id']}", json={"horizon_s": 86400 * 3}
    )
    assert patched.status_code == 200 and patched.json()["horizon_s"] == 86400 * 3
    null = await client.patch(f"/api/v1/metrics/prediction-rules/{rule['id']}", json={"threshold": None})
    assert null.status_code == 422 and null.json()["detail"].startswith("threshold")
    async with api.backends.db.session() as session:
        actions = set((await session.execute(select(AuditEntry.action))).scalars())
    assert {"prediction_rule.create", "prediction_rule.update"} <= actions

    # for 30 h (a trend must span a day): a queue growing 100/h towards 5,000, and a tmpfs
    # filling (ignored by the second rule)
    start_s = NOW_NS // 1_000_000_000 - 30 * 3600
    rng = np.random.default_rng(3)
    messages = []
    for hour in range(30):
        points = []
        for m in range(0, 60, 2):
            t = start_s + hour * 3600 + m * 60
            depth = 1000 + (t - start_s) / 36 + rng.normal(0, 5)
            points.append(
                Point("app_queue", {"depth": depth}, {"host": "mq-1", "queue": "orders-eu"}, t * 10**9)
            )
            points.append(Point("disk", {"used_percent": 10 + (t - start_s) / 2000},
                                {"host": "mq-1", "path": "/run", "fstype": "tmpfs"}, t * 10**9))  # fmt: skip
        messages.append(codec.encode_points(points))
    await api.backends.bus.ensure_group("test.findings.rules", "test")
    await run_detector(
        api.backends, messages, topic="test.metrics.rules", findings_topic="test.findings.rules",
        options=fast_options(2),
    )  # fmt: skip
    findings = await collected_findings(api.backends.bus, "test.findings.rules")
    predictions = [f for f in findings if f["kind"] == "prediction"]
    assert {f["key"] for f in predictions} == {
        series_key("app_queue", "depth", {"host": "mq-1", "queue": "orders-eu"})
    }
    first = predictions[0]
    assert first["evidence"]["rule"] == f"rule:{rule['id']}" and first["evidence"]["threshold"] == 5000
    assert first["title"].startswith("queue orders-eu on mq-1 full in ~")

    deleted = await client.delete(f"/api/v1/metrics/prediction-rules/{rule['id']}")
    assert deleted.status_code == 204
    assert (await client.get(f"/api/v1/metrics/prediction-rules/{rule['id']}")).status_code == 404
