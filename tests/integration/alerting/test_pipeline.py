"""Signals and findings through the bus and the correlate stage, on both profiles: dedup,
resolution, evidence, poison input, lifecycle events, live broadcasts, correlation scenarios,
flapping and the alerting clock."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, select

from tests.integration.alerting.helpers import drain, now_ns, publish_findings, publish_signals, signal
from tests.unit.alerting import scenarios
from vigil.alerting.ops import AlertingOptions
from vigil.alerting.service import AlertService
from vigil.alerting.timers import AlertTimers
from vigil.analytics.correlation import FlapPolicy
from vigil.backends import Backends
from vigil.domain import codec
from vigil.domain.findings import Finding
from vigil.pipeline import topology
from vigil.pipeline.stages.correlate import AlertSignalsStage, FindingsStage
from vigil.store.models import Alert, Incident, TimelineEntry


def stages(backends: Backends, **options: object) -> list[AlertSignalsStage | FindingsStage]:
    service = AlertService(backends.db, backends.bus, rules_ttl_s=0, options=AlertingOptions(**options))  # type: ignore[arg-type]
    return [AlertSignalsStage(service), FindingsStage(service)]


async def alerts(backends: Backends) -> list[Alert]:
    async with backends.db.session() as session:
        return list((await session.execute(select(Alert).order_by(Alert.id))).scalars())


async def incidents(backends: Backends) -> list[Incident]:
    async with backends.db.session() as session:
        return list((await session.execute(select(Incident).order_by(Incident.id))).scalars())


async def test_signals_dedup_resolve_and_announce_changes(backends: Backends) -> None:
    await backends.bus.ensure_group(topology.ALERT_CHANGES, "test")
    async with backends.bus.subscribe(topology.LIVE_ALERTS) as live:
        await publish_signals(
            backends, [signal(title="DiskFull", host="web-1", fingerprint="am-1")], source="prom"
        )
        await publish_signals(backends, [signal(title="DiskFull", host="web-1", fingerprint="am-1")] * 2)
        await drain(backends, stages(backends))
        (alert,) = await alerts(backends)
        assert alert.count == 3 and alert.status == "new" and alert.source == "prom"
        await publish_signals(
            backends, [signal(title="DiskFull", host="web-1", fingerprint="am-1", resolved=True)]
        )
        await drain(backends, stages(backends))
        (alert,) = await alerts(backends)
        assert alert.status == "resolved" and alert.resolve_reason == "source"
        (incident,) = await incidents(backends)
        assert incident.status == "resolved" and incident.open_alert_count == 0 and incident.alert_count == 1
        _, first = await asyncio.wait_for(live.__anext__(), timeout=5)
        event_types = [e["type"] for e in codec.decode(first)["events"]]
        assert event_types == ["alert.created", "incident.created"]
    changes = await backends.bus.consume(topology.ALERT_CHANGES, "test", "t", count=100, block_ms=100)
    durable = [codec.decode(m.payload) for m in changes]
    assert [(c["type"], c["alert_id"]) for c in durable if c["alert_id"]] == [
        ("alert.created", alert.id),
        ("alert.resolved", alert.id),
    ]
    assert ("incident.resolved", incident.id) in [(c["type"], c["incident_id"]) for c in durable]
    assert all(c["incident_id"] == incident.id for c in durable)


async def test_alerts_joining_an_incident_update_it_once(backends: Backends) -> None:
    """Features, counts and summary of a stored incident that a batch joins are written in one
    UPDATE: every extra statement is a round trip of the transaction each new alert waits for."""
    service = AlertService(backends.db, backends.bus)
    await service.ingest([signal(title="DiskFull", host="web-1", fingerprint="j-1")])
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(" ".join(statement.split()[:3]).upper())

    event.listen(backends.db.engine.sync_engine, "before_cursor_execute", record)
    try:
        await service.ingest(
            [signal(title="DiskFull", host=f"web-{n}", fingerprint=f"j-{n}") for n in (2, 3)]
        )
    finally:
        event.remove(backends.db.engine.sync_engine, "before_cursor_execute", record)
    (incident,) = await incidents(backends)
    assert (incident.alert_count, incident.open_alert_count) == (3, 3)
    assert sorted(incident.hosts) == ["web-1", "web-2", "web-3"]
    assert incident.summary is not None and incident.summary.startswith("3 alerts (3 still firing) on hosts")
    assert sum(s.startswith("UPDATE INCIDENTS") for s in statements) == 1
    assert not any(s.startswith("UPDATE ALERTS") for s in statements)  # inserted already linked
    assert {s for s in statements if s.startswith("INSERT")} == {
        "INSERT INTO ALERTS",
        "INSERT INTO TIMELINE_ENTRIES",
    }


async def test_findings_become_alerts_with_evidence(backends: Backends) -> None:
    finding = Finding(
        kind="anomaly",
        key="cpu.usage_user{host=web-03}",
        state="open",
        time_ns=now_ns(),
        score=0.93,
        title="cpu.usage_user anomalous on web-03",
        severity="medium",
        host="web-03",
        evidence={
            "observed": 97.0,
            "expected": 22.0,
            "band": [10, 35],
            "methods": ["level"],
            "finding_id": 41,
        },
    )
    await publish_findings(backends, [finding])
    await drain(backends, stages(backends))
    (alert,) = await alerts(backends)
    assert alert.origin == "anomaly" and alert.host == "web-03" and alert.severity == "medium"
    assert alert.evidence[0]["key"] == "cpu.usage_user{host=web-03}"
    assert alert.evidence[0]["finding_id"] == 41 and alert.evidence[0]["observed"] == 97.0
    assert alert.labels["finding_kind"] == "anomaly"
    update = Finding(**{**finding.to_dict(), "state": "update", "severity": "high", "time_ns": now_ns()})
    await publish_findings(backends, [update])
    await drain(backends, stages(backends))
    (alert,) = await alerts(backends)
    assert alert.count == 2 and alert.severity == "high"
    prediction = Finding(
        kind="prediction",
        key="disk.used_percent{host=web-03,path=/var}",
        state="open",
        time_ns=now_ns(),
        score=0.8,
        title="/var on web-03 reaches 100% in ~3.2 days",
        severity="high",
        host="web-03",
        evidence={"eta_s": 276480, "interval_s": [200000, 360000], "threshold": 100},
    )
    resolved = Finding(**{**finding.to_dict(), "state": "resolved", "time_ns": now_ns()})
    await publish_findings(backends, [prediction, resolved])
    await drain(backends, stages(backends))
    by_origin = {a.origin: a for a in await alerts(backends)}
    assert by_origin["anomaly"].status == "resolved"
    assert by_origin["predictive"].status == "new" and by_origin["predictive"].evidence[0]["eta_s"] == 276480


async def test_an_incident_named_after_an_alert_follows_its_title(backends: Backends) -> None:
    forecast = Finding(
        kind="prediction",
        key="mem.used_percent{host=app-02}",
        state="open",
        time_ns=now_ns(),
        score=0.8,
        title="memory on app-02 exhausted in ~70 min",
        severity="critical",
        host="app-02",
        evidence={"eta_s": 4200},
    )
    await publish_findings(backends, [forecast])
    await drain(backends, stages(backends))
    (incident,) = await incidents(backends)
    assert incident.title == "memory on app-02 exhausted in ~70 min"
    sooner = Finding(**{**forecast.to_dict(), "state": "update", "time_ns": now_ns(),
                        "title": "memory on app-02 exhausted in ~22 min"})  # fmt: skip
    await publish_findings(backends, [sooner])
    await drain(backends, stages(backends))
    (alert,) = await alerts(backends)
    (incident,) = await incidents(backends)
    assert alert.count == 2 and alert.title == incident.title == "memory on app-02 exhausted in ~22 min"
    # an incident renamed by hand (or after another alert) keeps its name
    async with backends.db.session() as session:
        stored = await session.get(Incident, incident.id)
        assert stored is not None
        stored.title = "app-02 memory leak"
        await session.commit()
    later = Finding(**{**forecast.to_dict(), "state": "update", "time_ns": now_ns(),
                       "title": "memory on app-02 exhausted in ~10 min"})  # fmt: skip
    await publish_findings(backends, [later])
    await drain(backends, stages(backends))
    (incident,) = await incidents(backends)
    assert incident.title == "app-02 memory leak"


async def test_poison_messages_are_dead_lettered_and_the_rest_processed(backends: Backends) -> None:
    await backends.bus.ensure_group(topology.EXTERNAL_ALERTS, "correlate")
    await backends.bus.publish(topology.EXTERNAL_ALERTS, b"not json")
    await backends.bus.publish(
        topology.EXTERNAL_ALERTS, codec.encode({"kind": "alerts", "items": [{"title": "x"}]})
    )
    await publish_signals(backends, [signal(title="fine")])
    await drain(backends, stages(backends))
    assert [a.title for a in await alerts(backends)] == ["fine"]
    letters = await backends.bus.list_dead_letters()
    reasons = sorted(letter.reason for letter in letters)
    assert len(reasons) == 2
    assert any("items[0].origin: required" in r for r in reasons)
    assert any("not JSON" in r for r in reasons)


async def test_demo_fleet_scenario_through_the_pipeline(backends: Backends) -> None:
    base = now_ns(200)
    for step in scenarios.DEMO_FLEET:  # one message per signal, in time order, as sources send them
        await publish_signals(backends, [step.signal(base)])
    await drain(backends, stages(backends, flap=FlapPolicy(threshold=4, window_s=1800)))
    stored = await alerts(backends)
    failure_of = {}
    for step in scenarios.DEMO_FLEET:
        match = [a for a in stored if a.title == step.title]
        assert match, step.title
        for a in match:
            failure_of[a.id] = step.failure
    groups: dict[str, set[int | None]] = {}
    for a in stored:
        groups.setdefault(failure_of[a.id], set()).add(a.incident_id)
    assert all(len(ids) == 1 and None not in ids for ids in groups.values()), groups
    assert len({next(iter(ids)) for ids in groups.values()}) == 5
    flapping = [a for a in stored if a.origin == "snmp"]
    assert len(flapping) == 1 and flapping[0].flapping and flapping[0].reopened == 2
    async with backends.db.session() as session:
        kinds = set(
            (
                await session.execute(
                    select(TimelineEntry.kind).where(TimelineEntry.alert_id == flapping[0].id)
                )
            ).scalars()
        )
    assert {"created", "reopened", "flapping"} <= kinds
    disk = next(i for i in await incidents(backends) if "web-03" in i.hosts)
    assert disk.severity == "critical" and disk.alert_count == 4
    assert "web-03" in (disk.summary or "") and "disk" in (disk.summary or "")


async def test_timers_auto_resolve_stale_alerts_and_their_incident(backends: Backends) -> None:
    service = AlertService(backends.db, backends.bus, rules_ttl_s=0)
    await service.ingest(
        [
            signal(
                origin="anomaly",
                title="latency anomalous",
                host="api-1",
                time_ns=now_ns(90),
                fingerprint="a1",
            ),
            signal(
                origin="manual", title="check the backups", host="api-1", time_ns=now_ns(90), fingerprint="m1"
            ),
            signal(
                origin="anomaly", title="errors anomalous", host="api-2", time_ns=now_ns(5), fingerprint="a2"
            ),
        ]
    )
    result = await AlertTimers(service).tick()
    assert result.auto_resolved == 1
    by_fp = {a.title: a for a in await alerts(backends)}
    assert by_fp["latency anomalous"].status == "resolved"
    assert by_fp["latency anomalous"].resolve_reason == "timeout"
    assert by_fp["check the backups"].status == "new"  # manual alerts never time out
    assert by_fp["errors anomalous"].status == "new"  # fired recently
    assert (await AlertTimers(service).tick()).auto_resolved == 0


async def test_reopen_within_window_keeps_one_alert_and_flapping_settles(backends: Backends) -> None:
    service = AlertService(
        backends.db,
        backends.bus,
        rules_ttl_s=0,
        options=AlertingOptions(flap=FlapPolicy(threshold=3, window_s=1.0)),
    )
    for resolved in (False, True, False, True, False):
        await service.ingest([signal(title="Link down", host="sw-1", fingerprint="if-1", resolved=resolved)])
    (alert,) = await alerts(backends)
    assert alert.status == "new" and alert.reopened == 2 and alert.flapping
    await asyncio.sleep(1.2)
    assert (await AlertTimers(service).tick()).stopped_flapping == 1
    (alert,) = await alerts(backends)
    assert not alert.flapping
