"""KPIs on hand-computed data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from vigil.analytics.kpis import (
    DurationStats,
    IncidentRecord,
    IssueAggregate,
    SourceAggregate,
    Trend,
    availability,
    availability_by_service,
    daily_series,
    kpi_report,
    mtta,
    mttr,
    slope_per_day,
    top_noisy_sources,
    top_recurring_issues,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
WEEK = timedelta(days=7)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def incident(
    id_: int,
    start_h: float,
    *,
    ack_h: float | None = None,
    resolve_h: float | None = None,
    severity: str = "critical",
    services: tuple[str, ...] = ("checkout",),
    detect_h: float | None = None,
) -> IncidentRecord:
    return IncidentRecord(
        id=id_,
        severity=severity,
        started_at=at(start_h),
        detected_at=at(detect_h if detect_h is not None else start_h),
        acknowledged_at=None if ack_h is None else at(ack_h),
        resolved_at=None if resolve_h is None else at(resolve_h),
        services=services,
    )


def test_mtta_and_mttr_on_known_incidents() -> None:
    incidents = [
        incident(1, 10, ack_h=10.25, resolve_h=12),  # ack 15 min, repair 2 h
        incident(2, 20, detect_h=20.5, ack_h=21, resolve_h=24),  # ack 30 min after detection, 4 h
        incident(3, 30),  # neither acknowledged nor resolved
        incident(4, -5, ack_h=-4, resolve_h=1),  # detected before the window, resolved inside: 6 h
    ]
    acked = mtta(incidents, T0, T0 + WEEK)
    assert acked.count == 2 and acked.mean_s == pytest.approx((15 * 60 + 30 * 60) / 2)
    repaired = mttr(incidents, T0, T0 + WEEK)
    assert repaired.count == 3
    assert repaired.mean_s == pytest.approx((2 + 4 + 6) * 3600 / 3)
    assert repaired.median_s == pytest.approx(4 * 3600)
    assert mtta([], T0, T0 + WEEK) == DurationStats(0, None, None, None)


def test_uptime_merges_overlapping_outages_and_ignores_minor_incidents() -> None:
    incidents = [
        incident(1, 24, resolve_h=26),  # 2 h
        incident(2, 25, resolve_h=27, severity="high"),  # overlaps: together 24..27 = 3 h
        incident(3, 48, resolve_h=49, severity="low"),  # not an outage
        incident(4, 100, resolve_h=101, services=("search",)),  # another service
    ]
    result = availability(incidents, T0, T0 + WEEK, service="checkout")
    assert result.downtime_s == pytest.approx(3 * 3600)
    assert result.failures == 1
    assert result.uptime_pct == pytest.approx(100 * (1 - 3 / 168), abs=1e-4)
    assert result.mtbf_s == pytest.approx((168 - 3) * 3600)
    everything = availability(incidents, T0, T0 + WEEK)
    assert everything.failures == 2 and everything.downtime_s == pytest.approx(4 * 3600)
    assert everything.mtbf_s == pytest.approx((168 - 4) * 3600 / 2)


def test_outages_are_clipped_to_the_window_and_open_ones_run_to_its_end() -> None:
    incidents = [
        incident(1, -10, resolve_h=2),  # carried over: 2 h of downtime, not a failure of this window
        incident(2, 166),  # still open: runs to the end of the window (2 h)
    ]
    result = availability(incidents, T0, T0 + WEEK, service="checkout")
    assert result.downtime_s == pytest.approx(4 * 3600)
    assert result.failures == 1
    with pytest.raises(ValueError):
        availability(incidents, T0, T0)


def test_availability_by_service_lists_quiet_services_at_100_percent() -> None:
    by_service = availability_by_service([incident(1, 1, resolve_h=2)], T0, T0 + WEEK, services=["search"])
    assert set(by_service) == {"checkout", "search"}
    assert by_service["search"].uptime_pct == 100.0 and by_service["search"].mtbf_s is None
    assert by_service["checkout"].failures == 1


def test_daily_series_trend_and_slope() -> None:
    counts = {date(2026, 11, 2): 4, date(2026, 11, 4): 8}
    series = daily_series(counts, date(2026, 11, 1), 5)
    assert series == [
        (date(2026, 11, 1), 0),
        (date(2026, 11, 2), 4),
        (date(2026, 11, 3), 0),
        (date(2026, 11, 4), 8),
        (date(2026, 11, 5), 0),
    ]
    assert Trend.of(12, 8) == Trend(12, 8, 50.0, "up")
    assert Trend.of(3, 0).change_pct is None and Trend.of(3, 0).direction == "up"
    assert Trend.of(2, 2).direction == "flat"
    rising = [(date(2026, 11, 1) + timedelta(days=i), 2 * i + 1) for i in range(7)]
    assert slope_per_day(rising) == pytest.approx(2.0)
    assert slope_per_day(rising[:1]) == 0.0


def test_noisy_sources_and_recurring_issues_rankings() -> None:
    sources = [
        SourceAggregate("alertmanager", "prom-eu", None, alerts=3, fires=40),
        SourceAggregate("snmp", None, "sw-core-1", alerts=1, fires=300),
        SourceAggregate("anomaly", None, "web-03", alerts=5, fires=5),
    ]
    assert [s.fires for s in top_noisy_sources(sources, limit=2)] == [300, 40]
    issues = [
        IssueAggregate("a", "Disk full", "alertmanager", "web-03", None, alerts=3, reopened=0, fires=9),
        IssueAggregate("b", "Link down", "snmp", "sw-1", None, alerts=1, reopened=6, fires=7),
        IssueAggregate("c", "One-off", "manual", None, None, alerts=1, reopened=0, fires=1),
    ]
    ranked = top_recurring_issues(issues)
    assert [i.fingerprint for i in ranked] == ["b", "a"]  # "c" happened once: not recurring
    assert ranked[0].occurrences == 7


def test_report_bundles_everything() -> None:
    report = kpi_report([incident(1, 1, ack_h=1.5, resolve_h=3)], T0, T0 + WEEK, services=["search"])
    assert report.mtta.mean_s == pytest.approx(1800)
    assert report.mttr.mean_s == pytest.approx(7200)
    assert report.overall.failures == 1
    assert set(report.services) == {"checkout", "search"}
