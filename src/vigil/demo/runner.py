"""Running the simulated fleet: a simulated clock, the backfill, then the live loop.

The clock: the demo *anchor* is the moment it goes live (the incident timeline is relative to
it). ``--backfill`` first sends the history before the anchor as fast as Vigil accepts it, in
time order, one chunk (``backfill_chunk_s`` of simulated time) at a time: metrics every
``backfill_step_s`` (5 min, the resolution forecasts use), errors and alerts throughout; in the
last ``backfill_recent_s`` metrics every ``backfill_recent_step_s`` (so detectors warm up close
to the live cadence) and the logs as well. Older logs would cost the log pipeline far more than
they teach it: its burst baselines look back an hour.

Then the live loop sends every ``interval_s`` of simulated time, as Telegraf would. At
``--speed N`` the simulated clock runs N times faster than the real one: the loop ticks at most
every ``min_tick_s`` real seconds and sends every sample the simulated time passed over. At
speed 1 the simulated clock *is* the wall clock, so timestamps are the real time; the first
live window also covers the time the backfill took.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from vigil.demo.fleet import Fleet, build_fleet
from vigil.demo.scenarios import TIMELINE, Incident, Timeline, describe
from vigil.demo.sender import Sink, Stopped
from vigil.demo.telemetry import (
    RENOTIFY_S,
    alert_notifications,
    error_reports,
    fleet_points,
    line_protocol,
    log_lines,
    telegraf_json,
)
from vigil.domain.metrics import Point
from vigil.waiting import sleep_unless

MAX_LINES_PER_REQUEST = 5000


@dataclass(frozen=True, slots=True)
class DemoOptions:
    hosts: int = 20
    seed: int = 1
    speed: float = 1.0
    backfill_s: float = 0.0
    duration_s: float | None = None  # of the live phase, in real seconds; None: until stopped
    interval_s: float = 10.0  # simulated seconds between samples once live (Telegraf's default)
    backfill_step_s: float = 300.0  # simulated seconds between samples in older backfill
    backfill_recent_s: float = 3 * 3600.0  # the last part of the backfill has logs and finer...
    backfill_recent_step_s: float = 60.0  # ...metrics, every this many simulated seconds
    backfill_chunk_s: float = 1800.0  # simulated seconds sent per round of backfill requests
    min_tick_s: float = 0.5  # real seconds between live rounds at most speeds
    incidents: tuple[Incident, ...] = TIMELINE  # the script (tests shorten or quieten it)

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("speed: must be positive")
        if self.backfill_s < 0:
            raise ValueError("backfill: must not be negative")
        if self.interval_s <= 0 or self.backfill_step_s <= 0 or self.backfill_recent_step_s <= 0:
            raise ValueError("interval: must be positive")
        if self.duration_s is not None and self.duration_s < 0:
            raise ValueError("duration: must not be negative")


def sample_times(a: float, b: float, step: float) -> list[float]:
    """Multiples of ``step`` in (a, b], so every run samples the same instants."""
    first = math.floor(a / step) + 1
    last = math.floor(b / step)
    return [k * step for k in range(first, last + 1)]


class DemoRunner:
    def __init__(
        self,
        options: DemoOptions,
        sink: Sink,
        *,
        progress: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.sink = sink
        self.fleet: Fleet = build_fleet(options.hosts, options.seed)
        self._progress = progress or (lambda _: None)
        self._clock = clock
        self._monotonic = monotonic
        self.timeline: Timeline | None = None
        self.sim_now: float | None = None  # simulated time sent up to

    async def run(self, stopping: asyncio.Event) -> None:
        """Backfill, then live until ``stopping`` is set or the duration is over."""
        options = self.options
        started_wall, started_mono = self._clock(), self._monotonic()
        anchor = math.floor(started_wall / options.interval_s) * options.interval_s
        self.timeline = Timeline(anchor, options.incidents, options.seed)
        self._progress(
            f"{len(self.fleet.hosts)} hosts, seed {options.seed}, speed {options.speed:g}x; incidents "
            "(start → peak → end, relative to going live):"
        )
        for line in describe(self.timeline):
            self._progress("  " + line)
        try:
            if options.backfill_s > 0:
                await self._backfill(anchor - options.backfill_s, anchor, stopping)
            await self._live(anchor, started_mono - (started_wall - anchor), stopping)
        except Stopped:
            pass

    # --- backfill ----------------------------------------------------------------------------

    async def _backfill(self, start: float, end: float, stopping: asyncio.Event) -> None:
        options = self.options
        began = self._monotonic()
        self._progress(f"backfilling {options.backfill_s / 3600:g} h of history...")
        chunk_start = start
        reported = 0.0
        # on a coarse sample, so the cadence changes without a gap
        recent = (
            math.floor((end - options.backfill_recent_s) / options.backfill_step_s) * options.backfill_step_s
        )
        while chunk_start < end and not stopping.is_set():
            chunk_end = min(end, chunk_start + options.backfill_chunk_s)
            if chunk_start < recent < chunk_end:
                chunk_end = recent
            if chunk_start >= recent:
                await self.send_window(chunk_start, chunk_end, options.backfill_recent_step_s, per_host=False)
            else:
                await self.send_window(
                    chunk_start, chunk_end, options.backfill_step_s, per_host=False, logs=False
                )
            chunk_start = chunk_end
            done = (chunk_start - start) / (end - start)
            if done - reported >= 0.25 or chunk_start >= end:
                reported = done
                self._progress(
                    f"backfill {done:4.0%} ({self._monotonic() - began:.0f} s): {self.sink.stats.summary()}"
                )

    # --- live --------------------------------------------------------------------------------

    async def _live(self, anchor: float, anchor_mono: float, stopping: asyncio.Event) -> None:
        options = self.options
        live_start = self._monotonic()
        # At speed 1 simulated time is wall time; otherwise it starts at the anchor now.
        origin = anchor_mono if options.speed == 1 else live_start
        tick = max(options.interval_s / options.speed, options.min_tick_s)
        sim_prev = anchor
        renotify_next: float | None = None  # first live round: re-send what is already firing
        last_report = live_start
        self._progress(f"live: sending every {options.interval_s:g} simulated s (every {tick:.2f} real s)")
        next_tick = live_start
        while not stopping.is_set():
            now = self._monotonic()
            sim_now = anchor + (now - origin) * options.speed
            if sim_now > sim_prev:
                renotify = sim_now if renotify_next is None else renotify_next
                await self.send_window(
                    sim_prev, sim_now, options.interval_s, per_host=True, renotify_at=renotify
                )
                if renotify_next is None or renotify_next <= sim_now:
                    renotify_next = anchor + (math.floor((sim_now - anchor) / RENOTIFY_S) + 1) * RENOTIFY_S
                sim_prev = sim_now
            if now - last_report >= 60:
                last_report = now
                self._progress(
                    f"live +{(sim_now - anchor) / 60:.1f} simulated min: {self.sink.stats.summary()}"
                )
            if options.duration_s is not None and now - live_start >= options.duration_s:
                break
            next_tick += tick
            delay = max(0.0, next_tick - self._monotonic())
            if options.duration_s is not None:
                delay = min(delay, max(0.0, live_start + options.duration_s - self._monotonic()))
            await sleep_unless(stopping, delay)

    # --- one window of simulated time --------------------------------------------------------

    async def send_window(
        self,
        a: float,
        b: float,
        step: float,
        *,
        per_host: bool,
        logs: bool = True,
        renotify_at: float | None = None,
    ) -> None:
        """Generate and send everything the fleet emits in (a, b]."""
        assert self.timeline is not None
        timeline, fleet = self.timeline, self.fleet
        by_host: dict[str, list[Point]] = {h.name: [] for h in fleet.hosts}
        for t in sample_times(a, b, step):
            for name, points in fleet_points(fleet, t, timeline).items():
                by_host[name].extend(points)
            await asyncio.sleep(0)  # generation is CPU work: let an in-process API breathe
        sends: list[Coroutine[Any, Any, None]] = []
        if per_host:
            for host in fleet.hosts:
                sends.extend(self._metric_requests(by_host[host.name], host.telegraf_format))
        else:
            for fmt in ("influx", "json"):
                points = [p for h in fleet.hosts if h.telegraf_format == fmt for p in by_host[h.name]]
                sends.extend(self._metric_requests(points, fmt))
        if logs:
            sends.append(self.sink.logs([line.record() for line in log_lines(fleet, timeline, a, b)]))
        reports = error_reports(fleet, timeline, a, b)
        sends.append(self.sink.errors(reports))
        results = await asyncio.gather(*sends, return_exceptions=True)
        for notification in alert_notifications(timeline, a, b, renotify_at):
            await self.sink.alerts(notification)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self.sim_now = b

    def _metric_requests(self, points: list[Point], fmt: str) -> list[Coroutine[Any, Any, None]]:
        out: list[Coroutine[Any, Any, None]] = []
        for i in range(0, len(points), MAX_LINES_PER_REQUEST):
            chunk = points[i : i + MAX_LINES_PER_REQUEST]
            body = telegraf_json(chunk) if fmt == "json" else line_protocol(chunk)
            out.append(self.sink.metrics(body, "json" if fmt == "json" else "influx", len(chunk)))
        return out
