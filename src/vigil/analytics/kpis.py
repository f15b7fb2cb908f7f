"""Operational KPIs from incidents and alerts, pure: MTTA, MTTR, MTBF, uptime, counts, trends,
noisy sources and recurring issues.

Definitions (all over a window ``[start, end)``):

- MTTA: mean of acknowledged − detected, over incidents detected in the window and acknowledged.
- MTTR: mean of resolved − started, over incidents resolved in the window.
- Downtime of a service: the union of the intervals [started, resolved or end] of its outage
  incidents (severity in ``outage_severities``, default critical and high), clipped to the
  window. Uptime % = 1 − downtime / window length.
- MTBF of a service: time up / number of failures, where a failure is an outage interval (after
  merging overlapping incidents) that starts in the window; None without failures. The overall
  MTBF uses every outage incident whatever its services.
- Noisy sources: alert sources ranked by firings (a re-fire counts); recurring issues: alert
  fingerprints ranked by how often they came back (new alerts plus reopenings).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

DEFAULT_OUTAGE_SEVERITIES = frozenset({"critical", "high"})


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    id: int
    severity: str
    started_at: datetime
    detected_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    services: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DurationStats:
    count: int
    mean_s: float | None
    median_s: float | None
    p90_s: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> DurationStats:
        if not seconds:
            return cls(0, None, None, None)
        ordered = sorted(seconds)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        return cls(len(ordered), statistics.fmean(ordered), statistics.median(ordered), p90)


def mtta(incidents: Iterable[IncidentRecord], start: datetime, end: datetime) -> DurationStats:
    return DurationStats.of(
        [
            max(0.0, (i.acknowledged_at - i.detected_at).total_seconds())
            for i in incidents
            if i.acknowledged_at is not None and start <= i.detected_at < end
        ]
    )


def mttr(incidents: Iterable[IncidentRecord], start: datetime, end: datetime) -> DurationStats:
    return DurationStats.of(
        [
            max(0.0, (i.resolved_at - i.started_at).total_seconds())
            for i in incidents
            if i.resolved_at is not None and start <= i.resolved_at < end
        ]
    )


@dataclass(frozen=True, slots=True)
class Availability:
    uptime_pct: float
    downtime_s: float
    failures: int
    mtbf_s: float | None


def availability(
    incidents: Iterable[IncidentRecord],
    start: datetime,
    end: datetime,
    *,
    service: str | None = None,
    outage_severities: frozenset[str] = DEFAULT_OUTAGE_SEVERITIES,
) -> Availability:
    """Uptime, downtime, failures and MTBF of one service (or of everything, for None)."""
    window_s = (end - start).total_seconds()
    if window_s <= 0:
        raise ValueError("end must be after start")
    # (begin, finish, started inside the window) per outage incident, clipped to the window.
    clipped: list[tuple[datetime, datetime, bool]] = []
    for incident in incidents:
        if incident.severity not in outage_severities:
            continue
        if service is not None and service not in incident.services:
            continue
        begin = max(incident.started_at, start)
        finish = min(incident.resolved_at or end, end)
        if begin < end and finish >= begin:
            clipped.append((begin, finish, incident.started_at >= start))
    # Overlapping incidents are one outage; it is a failure of this window when its first
    # incident started inside the window (not carried over from before).
    downtime = 0.0
    failures = 0
    merged: list[tuple[datetime, datetime, bool]] = []
    for begin, finish, started_inside in sorted(clipped):
        if merged and begin <= merged[-1][1]:
            first_begin, last_finish, first_inside = merged[-1]
            merged[-1] = (first_begin, max(last_finish, finish), first_inside)
        else:
            merged.append((begin, finish, started_inside))
    for begin, finish, started_inside in merged:
        downtime += (finish - begin).total_seconds()
        failures += 1 if started_inside else 0
    up_s = window_s - downtime
    return Availability(
        uptime_pct=round(100.0 * up_s / window_s, 4),
        downtime_s=downtime,
        failures=failures,
        mtbf_s=up_s / failures if failures else None,
    )


def availability_by_service(
    incidents: Sequence[IncidentRecord],
    start: datetime,
    end: datetime,
    services: Iterable[str] = (),
    outage_severities: frozenset[str] = DEFAULT_OUTAGE_SEVERITIES,
) -> dict[str, Availability]:
    """Availability of every service named by an incident or in ``services`` (100% for those
    without outages)."""
    names = set(services)
    for incident in incidents:
        names.update(incident.services)
    return {
        name: availability(incidents, start, end, service=name, outage_severities=outage_severities)
        for name in sorted(names)
    }


def daily_series(counts: Mapping[date, int], first_day: date, days: int) -> list[tuple[date, int]]:
    """``days`` consecutive days from ``first_day`` with their counts (0 when absent)."""
    return [(d, int(counts.get(d, 0))) for d in (first_day + timedelta(days=i) for i in range(days))]


@dataclass(frozen=True, slots=True)
class Trend:
    current: int
    previous: int
    change_pct: float | None  # None when the previous window had nothing to compare with
    direction: str  # up | down | flat

    @classmethod
    def of(cls, current: int, previous: int) -> Trend:
        change = None if previous == 0 else round(100.0 * (current - previous) / previous, 2)
        direction = "flat" if current == previous else ("up" if current > previous else "down")
        return cls(current, previous, change, direction)


def slope_per_day(series: Sequence[tuple[date, int]]) -> float:
    """Least-squares slope of a daily series (units per day): is it getting worse?"""
    n = len(series)
    if n < 2:
        return 0.0
    xs = range(n)
    mean_x = (n - 1) / 2
    mean_y = sum(c for _, c in series) / n
    num = sum((x - mean_x) * (c - mean_y) for x, (_, c) in zip(xs, series, strict=True))
    den = sum((x - mean_x) ** 2 for x in xs)
    return num / den


@dataclass(frozen=True, slots=True)
class SourceAggregate:
    """Alerts of one source in the window: ``alerts`` rows, ``fires`` counting re-fires."""

    origin: str
    source: str | None
    host: str | None
    alerts: int
    fires: int


@dataclass(frozen=True, slots=True)
class IssueAggregate:
    """Alerts sharing one fingerprint in the window."""

    fingerprint: str
    title: str
    origin: str
    host: str | None
    service: str | None
    alerts: int  # distinct alert rows (each a return after a resolution)
    reopened: int  # reopenings of those rows (fired again soon after resolving)
    fires: int
    last_seen: datetime | None = None

    @property
    def occurrences(self) -> int:
        return self.alerts + self.reopened


def top_noisy_sources(rows: Iterable[SourceAggregate], limit: int = 10) -> list[SourceAggregate]:
    return sorted(rows, key=lambda r: (-r.fires, -r.alerts, r.origin, r.source or "", r.host or ""))[:limit]


def top_recurring_issues(
    rows: Iterable[IssueAggregate], limit: int = 10, min_occurrences: int = 2
) -> list[IssueAggregate]:
    """Issues that came back at least ``min_occurrences`` times, most frequent first."""
    kept = [r for r in rows if r.occurrences >= min_occurrences]
    return sorted(kept, key=lambda r: (-r.occurrences, -r.fires, r.title, r.fingerprint))[:limit]


@dataclass(frozen=True)
class KpiReport:
    start: datetime
    end: datetime
    mtta: DurationStats
    mttr: DurationStats
    overall: Availability
    services: dict[str, Availability] = field(default_factory=dict)


def kpi_report(
    incidents: Sequence[IncidentRecord],
    start: datetime,
    end: datetime,
    services: Iterable[str] = (),
    outage_severities: frozenset[str] = DEFAULT_OUTAGE_SEVERITIES,
) -> KpiReport:
    return KpiReport(
        start=start,
        end=end,
        mtta=mtta(incidents, start, end),
        mttr=mttr(incidents, start, end),
        overall=availability(incidents, start, end, outage_severities=outage_severities),
        services=availability_by_service(incidents, start, end, services, outage_severities),
    )
