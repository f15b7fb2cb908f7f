"""Synthetic fleets in compressed time, and running the detect stage over them until drained.

Three days of two-minute points (what warms up a detector and teaches it a daily cycle) are
published in a few hundred milliseconds, with timestamps ending at the last whole hour; the
detectors run on those timestamps, not on the wall clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import delete

from vigil.backends import Backends
from vigil.bus.base import Bus
from vigil.domain import codec
from vigil.domain.metrics import Point
from vigil.ingest.line_protocol import format_lines
from vigil.pipeline.runner import Runner
from vigil.pipeline.stages.detect import DetectOptions, MetricDetector, partition_group
from vigil.pipeline.stages.metrics_findings import FindingsStoreStage
from vigil.store.models import MetricDetectorState

STEP_S = 120
DAYS = 3
N = DAYS * 86400 // STEP_S
END_S = int(time.time()) // 3600 * 3600
START_S = END_S - N * STEP_S
SPIKE_AT = int(N * 0.82)
SHIFT_AT = int(N * 0.88)


@dataclass
class SyntheticSeries:
    measurement: str
    tags: dict[str, str]
    field: str
    values: np.ndarray
    expect: str = "none"  # none | spike | shift | leak


@dataclass
class Fleet:
    series: list[SyntheticSeries] = field(default_factory=list)

    def times_ns(self) -> list[int]:
        return [(START_S + i * STEP_S) * 1_000_000_000 for i in range(N)]

    def messages(self, rows_per_message: int = 30, start: int = 0, stop: int = N) -> list[bytes]:
        """Batches of ``rows_per_message`` time steps of every series, as line protocol and as
        points in turn (the two shapes metric messages come in)."""
        times = self.times_ns()
        out: list[bytes] = []
        for first in range(start, stop, rows_per_message):
            points = [
                Point(s.measurement, {s.field: round(float(s.values[i]), 4)}, dict(s.tags), times[i])
                for i in range(first, min(stop, first + rows_per_message))
                for s in self.series
            ]
            if (first // rows_per_message) % 2 == 0:
                out.append(codec.encode_line_protocol(format_lines(points), source="synthetic"))
            else:
                out.append(codec.encode_points(points, source="synthetic"))
        return out


def daily_cycle(rng: np.random.Generator, level: float, amplitude: float, noise: float) -> np.ndarray:
    t = START_S + np.arange(N) * STEP_S
    return level + amplitude * np.sin(2 * np.pi * (t % 86400) / 86400) + rng.normal(0, noise, N)


def make_fleet(quiet_hosts: int = 1, seed: int = 7) -> Fleet:
    """A daily cycle alone (``quiet_hosts`` of them), a CPU spike, a level shift, a memory leak
    and a flat disk."""
    rng = np.random.default_rng(seed)
    fleet = Fleet()
    for i in range(quiet_hosts):
        fleet.series.append(
            SyntheticSeries(
                "cpu",
                {"host": f"web-{i + 1:02d}", "cpu": "cpu-total"},
                "usage_user",
                daily_cycle(rng, 40, 15, 1.5),
            )
        )
    spike = daily_cycle(rng, 40, 15, 1.5)
    spike[SPIKE_AT : SPIKE_AT + 6] += 45.0
    fleet.series.append(
        SyntheticSeries("cpu", {"host": "api-01", "cpu": "cpu-total"}, "usage_user", spike, expect="spike")
    )
    shift = daily_cycle(rng, 40, 15, 1.5)
    shift[SHIFT_AT:] += 20.0
    fleet.series.append(
        SyntheticSeries("cpu", {"host": "db-01", "cpu": "cpu-total"}, "usage_user", shift, expect="shift")
    )
    # used memory leaks 0.4 %/h from 45 %: 100 % about 4.7 days after the start
    leak = 45.0 + np.arange(N) * STEP_S / 3600 * 0.4 + rng.normal(0, 0.3, N)
    fleet.series.append(SyntheticSeries("mem", {"host": "app-02"}, "used_percent", leak, expect="leak"))
    disk = 41.0 + rng.normal(0, 0.05, N)
    fleet.series.append(
        SyntheticSeries("disk", {"host": "web-03", "path": "/var", "device": "sdb1"}, "used_percent", disk)
    )
    return fleet


def fast_options(partitions: int = 4) -> DetectOptions:
    return DetectOptions(partitions=partitions, block_ms=100, lease_ttl_ms=5000, rules_refresh_s=0.5)


async def drain_groups(bus: Bus, topic: str, partitions: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        busy = False
        for partition in range(partitions):
            try:
                stats = await bus.group_stats(topic, partition_group(partition))
            except KeyError:
                busy = True
                break
            busy = busy or stats.lag > 0 or stats.pending > 0
        if not busy:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"detect partitions of {topic} did not drain in time")


async def wait_for_partitions(detector: MetricDetector, count: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(detector.consumers) < count:
        if time.monotonic() > deadline:
            raise TimeoutError("the detector did not take its partitions")
        await asyncio.sleep(0.02)


async def run_detector(
    backends: Backends,
    messages: Sequence[bytes],
    *,
    topic: str,
    findings_topic: str,
    options: DetectOptions | None = None,
    store_findings: bool = False,
) -> None:
    """Publish ``messages`` to ``topic``, run one detector (and the findings store) until every
    partition has handled them, then stop cleanly."""
    options = options or fast_options()
    detector = MetricDetector(backends, options=options, topic=topic, findings_topic=findings_topic)
    await detector.ensure_groups()
    await backends.bus.publish_many(topic, list(messages))
    stages = [FindingsStoreStage(backends.db)] if store_findings else []
    if store_findings:
        stages[0].topic = findings_topic
    runner = Runner(backends.bus, stages, [detector], block_ms=100)
    await runner.start()
    try:
        await wait_for_partitions(detector, detector.partitions)
        await drain_groups(backends.bus, topic, detector.partitions)
    finally:
        await runner.stop()


async def collected_findings(bus: Bus, topic: str, group: str = "test") -> list[dict]:
    """Every finding published to ``topic`` since ``group`` was created (or last read)."""
    out: list[dict] = []
    while True:
        messages = await bus.consume(topic, group, "reader", count=500, block_ms=50)
        if not messages:
            return out
        for message in messages:
            out.extend(codec.decode(message.payload)["items"])
        await bus.ack(topic, group, [m.id for m in messages])


async def forget_detector_state(backends: Backends) -> None:
    async with backends.db.session() as session:
        await session.execute(delete(MetricDetectorState))


def summary(findings: Sequence[dict]) -> set[tuple[str, str, str, int]]:
    return {(f["kind"], f["key"], f["state"], f["time_ns"]) for f in findings}
