"""The log stage end to end from bus messages, on both profiles: storage with template ids and
parameters, classification, findings, live broadcast, metrics, redelivery, restarts and
several workers agreeing on ids."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from tests.integration.logs.conftest import BASE_NS, RunningWorker, make_worker, publish, sample_records
from vigil.backends import Backends
from vigil.bus.base import Message
from vigil.collectors.leases import LocalLeases, LocalLeaseTable, RedisLeases
from vigil.domain import codec
from vigil.domain.logs import LogRecord
from vigil.domain.metrics import MetricQuery
from vigil.pipeline import topology
from vigil.store.models.logs import LogLine, LogMinerState, LogTemplate


async def _templates(backends: Backends) -> dict[tuple[str, int], str]:
    async with backends.db.session() as session:
        rows = (await session.execute(select(LogTemplate))).scalars()
        return {(r.source, r.local_id): r.template for r in rows}


async def _lines(backends: Backends) -> list[LogLine]:
    async with backends.db.session() as session:
        return list((await session.execute(select(LogLine).order_by(LogLine.id))).scalars())


async def test_lines_stored_with_templates_params_and_labels(
    backends: Backends, log_worker: RunningWorker
) -> None:
    await backends.bus.ensure_group(topology.FINDINGS, "test")
    async with backends.bus.subscribe(topology.LIVE_LOGS) as live:
        await publish(backends, sample_records(60))
        await publish(
            backends, [LogRecord(BASE_NS, "kernel: Out of memory: Killed process 4242 (java)")], "other"
        )
        await log_worker.drain()
        channel, payload = await asyncio.wait_for(live.__anext__(), timeout=5)
    assert channel == topology.LIVE_LOGS
    broadcast = codec.decode(payload)["items"]
    assert broadcast and {"id", "message", "template_id", "failure_type"} <= set(broadcast[0])

    lines = await _lines(backends)
    assert len(lines) == 61
    ssh = [line for line in lines if line.service == "sshd"]
    assert len({line.template_id for line in ssh}) == 1
    first = ssh[0]
    assert first.params and "10.0.0.0" in first.params and first.host == "web-0" and first.os == "linux"

    async with backends.db.session() as session:
        templates = {r.id: r for r in (await session.execute(select(LogTemplate))).scalars()}
    ssh_template = templates[first.template_id]
    assert ssh_template.template.startswith("Failed password for")
    assert "<*>" in ssh_template.template
    assert ssh_template.count == 20 and ssh_template.source == "app"
    assert ssh_template.failure_type == "auth_failure" and ssh_template.label_method == "rule"
    assert 0 < len(ssh_template.examples) <= 5
    disk = next(t for t in templates.values() if "No space left" in t.template)
    assert disk.failure_type == "disk_space" and disk.severity == "high"
    oom = next(t for t in templates.values() if t.source == "other")
    assert oom.failure_type == "out_of_memory"

    # A new error-class template is a finding, published once per template.
    findings = []
    for _ in range(20):
        for message in await backends.bus.consume(topology.FINDINGS, "test", "t", count=100, block_ms=100):
            findings.extend(codec.decode(message.payload)["items"])
        if len(findings) >= 3:
            break
    kinds = {(f["kind"], f["evidence"]["failure_type"]) for f in findings}
    assert ("new_error_template", "disk_space") in kinds
    assert ("new_error_template", "out_of_memory") in kinds
    assert all(f["kind"] == "new_error_template" for f in findings)
    assert len(findings) == len({f["key"] for f in findings})


async def test_template_counts_written_as_metrics(backends: Backends) -> None:
    running = RunningWorker(backends, make_worker(backends, signal_interval_s=0.0))
    await running.start()
    now = time.time_ns()
    records = [LogRecord(now - 120_000_000_000 + i, f"job {i} done", host="db-1") for i in range(7)]
    await publish(backends, records)
    await running.drain()
    await running.stop()  # flushes signals
    series = await backends.metrics.query(
        MetricQuery(
            "log_template_count", "count", now - 600_000_000_000, now, aggregation="sum", group_by=("host",)
        )
    )
    assert sum(v or 0 for s in series for v in s.values) == 7
    assert {s.tags.get("host") for s in series} == {"db-1"}


async def test_redelivered_message_is_not_stored_twice(backends: Backends, log_worker: RunningWorker) -> None:
    payload = codec.encode_dicts("logs", [r.to_dict() for r in sample_records(6)], "app")
    message_id = await backends.bus.publish(topology.LOGS, payload)
    await log_worker.drain()
    assert len(await _lines(backends)) == 6
    for consumer, _ in log_worker.worker.consumers.values():
        await consumer.process([Message(message_id, topology.LOGS, payload, deliveries=2)])
    assert len(await _lines(backends)) == 6


async def test_poison_message_dead_lettered_once(backends: Backends, log_worker: RunningWorker) -> None:
    await backends.bus.publish(topology.LOGS, b'{"kind": "logs", "items": [{"no": "message"}]}')
    await publish(backends, sample_records(3))
    await log_worker.drain()
    assert await backends.bus.dead_letter_count() == 1
    assert len(await _lines(backends)) == 3


async def test_restart_continues_with_same_ids(backends: Backends) -> None:
    records = sample_records(90)
    first = RunningWorker(backends, make_worker(backends))
    await first.start()
    await publish(backends, records[:45])
    await first.drain()
    await first.stop()  # snapshots on the way out
    async with backends.db.session() as session:
        assert (await session.execute(select(func.count()).select_from(LogMinerState))).scalar_one() >= 1
    second = RunningWorker(backends, make_worker(backends))
    await second.start()
    await publish(backends, records[45:])
    await second.drain()
    await second.stop()
    lines = await _lines(backends)
    by_message_shape = {}
    for line in lines:
        by_message_shape.setdefault(line.service, set()).add(line.template_id)
    # Each kind of line kept one template across the restart.
    assert all(len(ids) == 1 for ids in by_message_shape.values()), by_message_shape


async def test_crash_without_snapshot_replays_stored_lines(backends: Backends) -> None:
    records = sample_records(60)
    first = RunningWorker(backends, make_worker(backends, snapshot_interval_s=3600))
    await first.start()
    await publish(backends, records[:30])
    await first.drain()
    # A crash: consumers vanish without their final snapshot.
    for consumer, _ in first.worker.consumers.values():
        consumer.lost = True
    await first.stop()
    await first.worker.leases.release([first.worker.lease_name(s) for s in range(first.worker.shards)])
    async with backends.db.session() as session:
        assert (await session.execute(select(func.count()).select_from(LogMinerState))).scalar_one() == 0
    before = await _templates(backends)
    second = RunningWorker(backends, make_worker(backends))
    await second.start()
    await publish(backends, records[30:])
    await second.drain()
    await second.stop()
    after = await _templates(backends)
    assert set(before) <= set(after)
    lines = await _lines(backends)
    for service in ("sshd", "kernel", "nginx"):
        assert len({line.template_id for line in lines if line.service == service}) == 1


def _leases(backends: Backends, table: LocalLeaseTable, owner: str) -> LocalLeases | RedisLeases:
    settings = backends.settings
    if settings.redis_url:
        return RedisLeases(settings.redis_url, settings.redis_prefix, owner)
    return LocalLeases(owner, table)


async def test_two_workers_give_the_ids_of_one(backends: Backends) -> None:
    # Many sources, so both workers own some (owners "w1"/"w2" hash to two shards each);
    # the same input as a single-worker run on "solo" sources.
    def batch(prefix: str, k: int) -> list[LogRecord]:
        records = []
        for i in range(40):
            source = f"{prefix}{i % 6}"
            message = [
                f"session {i} opened for user u{i % 4} by (uid=0)",
                f"Connection closed by 10.1.{k}.{i} port {5000 + i}",
                f"worker node-{i % 7} heartbeat ok in {i} ms",
                f"disk /dev/sd{'abcd'[i % 4]} usage {50 + i}%",
            ][(i + k) % 4]
            records.append(LogRecord(BASE_NS + k * 1000 + i, message, source=source, host="h"))
        return records

    table = LocalLeaseTable()
    a = RunningWorker(backends, make_worker(backends, shards=4, leases=_leases(backends, table, "w1")))
    b = RunningWorker(backends, make_worker(backends, shards=4, leases=_leases(backends, table, "w2")))
    a.task = asyncio.create_task(a.worker.run(a.stopping))
    b.task = asyncio.create_task(b.worker.run(b.stopping))
    deadline = time.monotonic() + 15
    while len(a.worker.consumers) + len(b.worker.consumers) < 4 or not (
        a.worker.consumers and b.worker.consumers
    ):
        assert time.monotonic() < deadline, "shards not spread over both workers"
        await asyncio.sleep(0.05)
    assert not set(a.worker.consumers) & set(b.worker.consumers)
    for k in range(5):
        await publish(backends, batch("multi", k), None)
    await a.drain()
    await b.drain()
    await a.stop()
    await b.stop()

    solo = RunningWorker(backends, make_worker(backends, shards=4))
    await solo.start()
    for k in range(5):
        await publish(backends, batch("solo", k), None)
    await solo.drain()
    await solo.stop()

    templates = await _templates(backends)
    multi = {(s.removeprefix("multi"), i): t for (s, i), t in templates.items() if s.startswith("multi")}
    single = {(s.removeprefix("solo"), i): t for (s, i), t in templates.items() if s.startswith("solo")}
    assert multi and multi == single


async def test_burst_of_a_template_is_a_finding(backends: Backends) -> None:
    await backends.bus.ensure_group(topology.FINDINGS, "test")
    minute = 60_000_000_000
    start = (time.time_ns() - 40 * minute) // minute * minute
    records = []
    for m in range(35):
        for k in range(60 if m == 30 else 3):
            records.append(
                LogRecord(start + m * minute + k * 1000, f"cache refresh {k} took {m} ms", host="c1")
            )
    running = RunningWorker(backends, make_worker(backends, signal_interval_s=0.0))
    await running.start()
    await publish(backends, records)
    await running.drain()
    await running.stop()
    findings = []
    for message in await backends.bus.consume(topology.FINDINGS, "test", "t", count=100, block_ms=200):
        findings.extend(codec.decode(message.payload)["items"])
    bursts = [f for f in findings if f["kind"] == "log_burst"]
    assert [(f["state"], f["evidence"]["count"]) for f in bursts] == [("open", 60), ("resolved", 3)]
    assert bursts[0]["host"] == "c1" and bursts[0]["time_ns"] == start + 30 * minute
