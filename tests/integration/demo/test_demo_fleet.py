"""The simulated fleet against a running Vigil, on both profiles: what `vigil up --demo` does
(demo sources and tokens in the database, then telemetry over HTTP through the real webhooks and
the real sentry-sdk), compressed in time. Everything sent must be stored: metrics queryable,
every log line kept, Sentry errors grouped with their release, alerts on the bus."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from types import MappingProxyType
from typing import Any

from sqlalchemy import func, select

from tests.integration.conftest import Api
from tests.integration.demo.conftest import drain
from tests.live_server import LiveServer
from vigil.demo.fleet import (
    DEMO_SOURCE_TYPES,
    MIN_HOSTS,
    SENT_UNTIL_KEY,
    ensure_demo_sources,
    run_demo_in_process,
)
from vigil.demo.runner import DemoOptions, DemoRunner
from vigil.demo.scenarios import TIMELINE, Incident
from vigil.demo.sender import HttpSink
from vigil.demo.telemetry import ErrorReport
from vigil.domain import codec
from vigil.domain.metrics import MetricQuery
from vigil.pipeline import topology
from vigil.pipeline.stages.ingestion import ingestion_stages
from vigil.pipeline.stages.logs import LogWorker
from vigil.store.models import ApiToken, ErrorGroup, LogLine, Source

SPY = "demo-test-spy"


class RecordingSink(HttpSink):
    """The real HTTP sink, remembering which application failures it reported: the background
    errors are random arrivals in wall-clock windows, so a short run may not raise every kind."""

    problems: set[str]

    async def errors(self, reports: list[ErrorReport]) -> None:
        self.problems.update(r.problem for r in reports)
        await super().errors(reports)


def quieter_timeline() -> tuple[Incident, ...]:
    """The real script with a tenth of the deploy's error rate: same shapes, fewer SDK posts."""
    out = []
    for incident in TIMELINE:
        if incident.kind == "bad_deploy":
            incident = dataclasses.replace(
                incident, params=MappingProxyType({**incident.params, "errors_per_s": 0.05})
            )
        out.append(incident)
    return tuple(out)


async def test_demo_sources_are_idempotent_and_tokens_rotate(api: Api) -> None:
    first = await ensure_demo_sources(api.backends)
    second = await ensure_demo_sources(api.backends)
    assert first.telegraf != second.telegraf and first.sentry_project == second.sentry_project
    async with api.backends.db.session() as session:
        sources = (await session.execute(select(Source).where(Source.name.like("demo-%")))).scalars().all()
        assert sorted(s.type for s in sources) == sorted(DEMO_SOURCE_TYPES)
        tokens = (
            (await session.execute(select(ApiToken).where(ApiToken.name == "demo fleet"))).scalars().all()
        )
        assert len(tokens) == 8
        assert sum(t.revoked_at is None for t in tokens) == 4  # the first start's tokens are revoked
        assert all(t.scopes == ["ingest"] and t.source_id is not None for t in tokens)
    # the old token no longer gets in; the new one does
    async with api.anonymous() as client:
        old = await client.post(
            "/webhooks/logs",
            content=b'{"message":"x"}',
            headers={"Authorization": f"Bearer {first.logs}", "Content-Type": "application/json"},
        )
        new = await client.post(
            "/webhooks/logs",
            content=b'{"message":"x"}',
            headers={"Authorization": f"Bearer {second.logs}", "Content-Type": "application/json"},
        )
    assert (old.status_code, new.status_code) == (401, 204)  # fmt: skip


async def test_fleet_telemetry_arrives_through_the_real_endpoints(api: Api, live: LiveServer) -> None:
    backends = api.backends
    tokens = await ensure_demo_sources(backends)
    await backends.bus.ensure_group(topology.EXTERNAL_ALERTS, SPY)
    stages = ingestion_stages(backends)
    logs = LogWorker(backends, shards=1, block_ms=50, lease_ttl_ms=3000)
    log_stopping = asyncio.Event()
    log_task = asyncio.create_task(logs.run(log_stopping))

    stopping = asyncio.Event()
    sink = RecordingSink(live.url, tokens, stopping)
    sink.problems = set()
    # 20 simulated minutes of history, then 15 simulated minutes live in ~3 s: the deploy, the
    # flapping port, the OOM kill and the CPU spike all happen
    options = DemoOptions(hosts=MIN_HOSTS, seed=5, speed=300, backfill_s=1200, duration_s=3.0, interval_s=30,
                          incidents=quieter_timeline())  # fmt: skip
    runner = DemoRunner(options, sink)
    started = time.time()
    try:
        await runner.run(stopping)
    finally:
        await sink.close()
    assert runner.timeline is not None
    anchor = runner.timeline.anchor
    stats = sink.stats
    assert stats.failed == 0 and stats.rejected == 0, stats
    assert stats.points > 1000 and stats.logs > 100 and stats.errors > 5 and stats.alerts > 3, stats

    assert await drain(backends, stages) > 0
    await logs.drain(timeout_s=30)
    log_stopping.set()
    await log_task

    # metrics: queryable per host, with the incidents' shapes
    window = (int((anchor - 1300) * 1e9), int((anchor + 3600) * 1e9))
    users = await backends.metrics.query(MetricQuery("cpu", "usage_user", *window, aggregation="max",
                                                     group_by=("host",)))  # fmt: skip
    peaks = {s.tags["host"]: s.values[0] for s in users}
    assert set(peaks) == {h.name for h in runner.fleet.hosts if h.is_linux}
    assert peaks["db-01"] is not None and peaks["db-01"] > 70, peaks  # the CPU spike
    # the others stay at their daily level (app-02's GC works hard before its OOM kill)
    assert all(v is not None and v < 60 for host, v in peaks.items() if host not in ("db-01", "app-02")), (
        peaks
    )
    assert max(peaks, key=lambda host: peaks[host] or 0) == "db-01", peaks
    on_var = MetricQuery.where_from({"host": "web-03", "path": "/var"})
    disk = await backends.metrics.query(
        MetricQuery("disk", "used_percent", *window, aggregation="min", where=on_var)
    )
    assert disk and disk[0].values[0] is not None and disk[0].values[0] > 88, disk  # filling for 8 h
    port = MetricQuery.where_from({"ifName": "Gi1/0/24"})
    flaps = await backends.metrics.query(
        MetricQuery("interface", "ifOperStatus", *window, aggregation="max", where=port)
    )
    assert flaps and flaps[0].values[0] == 2, flaps  # seen down

    async with backends.db.session() as session:
        # logs: every line kept, the incidents' among them
        stored = (await session.execute(select(func.count()).select_from(LogLine))).scalar_one()
        assert stored == stats.logs, (stored, stats)
        oom = await session.execute(
            select(LogLine).where(LogLine.message.like("Out of memory: Killed process%"))
        )
        oom_lines = oom.scalars().all()
        assert [line.host for line in oom_lines] == ["app-02"] and oom_lines[0].service == "kernel"
        assert oom_lines[0].source == "demo-logs"
        # Sentry: the bad release's exceptions grouped, with the release they came with
        groups = {g.title: g for g in (await session.execute(select(ErrorGroup))).scalars()}
        currency = groups.get("KeyError: 'currency'")
        assert currency is not None and currency.count >= 2, sorted(groups)
        assert currency.last_release == "checkout@2.15.0" and currency.source == "demo-sentry"
        assert currency.last_service == "checkout" and currency.last_host in ("app-01", "app-03")
        # one group per kind of failure raised (each kind raises one exception type at one place)
        assert len(groups) == len(sink.problems), (sorted(groups), sorted(sink.problems))
        if "gateway_timeout" in sink.problems:
            assert "GatewayTimeout: POST https://pay.example.net/v1/charges timed out after 10s" in groups
        # every demo source reported healthy
        health = {s.name: s.status for s in (await session.execute(select(Source))).scalars()}
        assert {health[f"demo-{t}"] for t in DEMO_SOURCE_TYPES} == {"ok"}

    # Alertmanager notifications reached the alerts topic, firing and resolving
    signals: list[dict[str, Any]] = []
    while messages := await backends.bus.consume(
        topology.EXTERNAL_ALERTS, SPY, "spy", count=500, block_ms=20
    ):
        await backends.bus.ack(topology.EXTERNAL_ALERTS, SPY, [m.id for m in messages])
        batches = [codec.decode(m.payload) for m in messages]
        signals.extend(
            item for batch in batches if batch["source"] == "demo-alertmanager" for item in batch["items"]
        )
    titles = {(s["title"].split(":")[0], s["resolved"]) for s in signals}
    assert {("SNMPInterfaceDown", False), ("SNMPInterfaceDown", True), ("NodeFilesystemAlmostFull", False),
            ("HostHighCpuLoad", False)} <= titles  # fmt: skip
    assert time.time() - started < 60


async def test_up_demo_after_a_restart_backfills_only_the_gap(api: Api, live: LiveServer) -> None:
    """`vigil up --demo` remembers how far it got, so a restart does not send history twice."""
    backends = api.backends
    await ensure_demo_sources(backends)
    began = time.time()
    async with backends.db.session() as session:
        row = (await session.execute(select(Source).where(Source.name == "demo-telegraf"))).scalar_one()
        row.config = {**row.config, SENT_UNTIL_KEY: began - 300}
    stopping = asyncio.Event()
    task = asyncio.create_task(run_demo_in_process(backends, live.url, stopping))
    await asyncio.sleep(3)
    stopping.set()
    await asyncio.wait_for(task, 60)
    await drain(backends, ingestion_stages(backends))

    def count(start: float, end: float) -> MetricQuery:
        return MetricQuery("cpu", "usage_user", int(start * 1e9), int(end * 1e9), aggregation="count")

    before = await backends.metrics.query(count(began - 86400, began - 360))
    assert all(v in (None, 0) for s in before for v in s.values)  # no day of history again
    recent = await backends.metrics.query(count(began - 300, time.time() + 60))
    assert sum(v or 0 for s in recent for v in s.values) >= 20 * 4  # the gap, every host
    async with backends.db.session() as session:
        row = (await session.execute(select(Source).where(Source.name == "demo-telegraf"))).scalar_one()
        assert row.config[SENT_UNTIL_KEY] >= began  # progress recorded for the next restart
