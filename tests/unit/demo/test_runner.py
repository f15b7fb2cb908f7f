"""The runner's clock: backfill in time order, live windows that tile simulated time, --speed,
--duration, stopping, and the hosts of the fleet."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from vigil.demo.fleet import MIN_HOSTS, build_fleet
from vigil.demo.runner import DemoOptions, DemoRunner, sample_times
from vigil.demo.scenarios import TIMELINE
from vigil.demo.sender import SendStats
from vigil.demo.telemetry import ErrorReport
from vigil.ingest.line_protocol import parse
from vigil.ingest.telegraf_json import parse_telegraf_json

WALL = 1_780_000_005.0  # the runner's "now": aligned down to the 10 s interval, the anchor is ..000


class RecordingSink:
    """Keeps what the runner delivers (already parsed, to check it)."""

    def __init__(self) -> None:
        self.stats = SendStats()
        self.metric_times: list[int] = []
        self.metric_requests = 0
        self.log_times: list[str] = []
        self.reports: list[ErrorReport] = []
        self.notifications: list[dict[str, Any]] = []

    async def metrics(self, body: bytes, fmt: str, count: int) -> None:
        if fmt == "json":
            points, errors = parse_telegraf_json(body, None, 0)
        else:
            result = parse(body)
            points, errors = result.points, result.errors
        assert errors == [] and len(points) == count
        self.metric_times.extend(p.time_ns or 0 for p in points)
        self.metric_requests += 1
        self.stats.points += count

    async def logs(self, records: list[dict[str, Any]]) -> None:
        self.log_times.extend(r["timestamp"] for r in records)
        self.stats.logs += len(records)

    async def alerts(self, payload: dict[str, Any]) -> None:
        self.notifications.append(payload)
        self.stats.alerts += 1

    async def errors(self, reports: list[ErrorReport]) -> None:
        self.reports.extend(reports)
        self.stats.errors += len(reports)

    async def close(self) -> None:
        pass


def test_samples_fall_on_multiples_of_the_step() -> None:
    assert sample_times(95.0, 130.0, 10.0) == [100.0, 110.0, 120.0, 130.0]
    assert sample_times(100.0, 100.0, 10.0) == []
    assert sample_times(0.0, 25.0, 60.0) == []


async def test_backfill_sends_history_in_order_then_goes_live_for_the_duration() -> None:
    sink = RecordingSink()
    options = DemoOptions(hosts=MIN_HOSTS, backfill_s=5 * 3600, backfill_recent_s=3600, speed=600,
                          duration_s=0.6, min_tick_s=0.2, interval_s=30)  # fmt: skip
    runner = DemoRunner(options, sink, clock=lambda: WALL)
    started = time.monotonic()
    await runner.run(asyncio.Event())
    assert time.monotonic() - started < 10
    anchor = 1_780_000_000
    seconds = sorted({t // 10**9 for t in sink.metric_times})
    backfill = [t for t in seconds if t <= anchor]
    live = [t for t in seconds if t > anchor]
    # older history every 5 min, the last hour every minute, then every 30 simulated s
    assert 0 < backfill[0] - (anchor - 5 * 3600) <= 300 and backfill[0] % 300 == 0
    assert {b - a for a, b in itertools.pairwise(backfill) if b <= anchor - 3600 - 300} == {300}
    assert {b - a for a, b in itertools.pairwise(backfill) if a >= anchor - 3600} == {60}
    assert live and {b - a for a, b in itertools.pairwise(live)} == {30}
    # at 600x, 0.6 real seconds are ~6 simulated minutes (generous bounds: CI machines are slow)
    assert 120 <= live[-1] - anchor <= 1800
    assert runner.sim_now is not None and runner.sim_now >= live[-1]
    # logs only in the recent part of the backfill, and live
    assert sink.log_times and min(sink.log_times) > _iso(anchor - 3600 - 300)
    assert min(r.t for r in sink.reports) < anchor - 3 * 3600  # errors throughout
    # the alert already firing at the anchor is re-sent when going live
    firing = [
        a for a in sink.notifications if a["alerts"][0]["labels"]["alertname"] == "NodeFilesystemAlmostFull"
    ]
    assert len(firing) == 2 and all(a["status"] == "firing" for a in firing)
    # live sends one request per host and round, as separate Telegraf agents would
    assert sink.metric_requests > 2 * MIN_HOSTS


async def test_stopping_ends_the_live_loop_promptly() -> None:
    sink = RecordingSink()
    stopping = asyncio.Event()
    runner = DemoRunner(DemoOptions(hosts=MIN_HOSTS, speed=1, interval_s=10), sink)
    task = asyncio.create_task(runner.run(stopping))
    await asyncio.sleep(0.3)
    stopping.set()
    started = time.monotonic()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 2


async def test_speed_one_follows_the_wall_clock() -> None:
    sink = RecordingSink()
    wall = time.time()
    runner = DemoRunner(DemoOptions(hosts=MIN_HOSTS, interval_s=0.5, duration_s=1.2, min_tick_s=0.1), sink)
    await runner.run(asyncio.Event())
    assert sink.metric_times
    newest = max(sink.metric_times) / 1e9
    assert wall <= newest <= time.time() + 0.5


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="speed"):
        DemoOptions(speed=0)
    with pytest.raises(ValueError, match="backfill"):
        DemoOptions(backfill_s=-1)


def test_fleet_sizes_keep_the_incident_hosts() -> None:
    incident_hosts = {i.host for i in TIMELINE}
    for count in (MIN_HOSTS, 20, 33):
        fleet = build_fleet(count, 1)
        names = [h.name for h in fleet.hosts]
        assert len(names) == len(set(names)) == count
        assert len({h.ip for h in fleet.hosts}) == count
        assert incident_hosts <= set(names)
        assert {"app-01", "app-03"} <= {h.name for h in fleet.running("checkout")}
    big = build_fleet(33, 1)
    assert big.host("app-05") is not None and big.host("k8s-node-04") is not None
    assert {h.telegraf_format for h in big.hosts} == {"influx", "json"}
    with pytest.raises(ValueError, match="at least"):
        build_fleet(MIN_HOSTS - 1, 1)


def _iso(t: float) -> str:
    from vigil.demo.telemetry import iso

    return iso(t)
