"""Operational KPIs for dashboards: MTTA, MTTR, MTBF, uptime per service, alert and incident
counts with daily series and trends, noisiest sources, most recurring issues.

The database aggregates alerts (there can be millions); incidents are few and go through the
pure computations of ``vigil.analytics.kpis`` as records.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.analytics.kpis import (
    IncidentRecord,
    IssueAggregate,
    SourceAggregate,
    Trend,
    daily_series,
    kpi_report,
    slope_per_day,
    top_noisy_sources,
    top_recurring_issues,
)
from vigil.api.auth import Reader, backends_of
from vigil.store.models import Alert, Incident
from vigil.store.types import utcnow

router = APIRouter(prefix="/api/v1/kpis", tags=["kpis"])

MAX_INCIDENTS = 50_000


def _day(column: Any, sqlite: bool) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column, as the database computes it."""
    return func.date(column) if sqlite else func.date(func.timezone("UTC", column))


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def _daily(
    session: AsyncSession, column: Any, start: datetime, end: datetime, sqlite: bool
) -> dict[date, int]:
    day = _day(column, sqlite)
    rows = await session.execute(select(day, func.count()).where(column >= start, column < end).group_by(day))
    return {_as_date(d): int(n) for d, n in rows.all()}


async def _count(session: AsyncSession, column: Any, start: datetime, end: datetime) -> int:
    return int(
        (await session.execute(select(func.count()).where(column >= start, column < end))).scalar_one()
    )


def _series(
    counts: dict[date, int], first_day: date, days: int, current: int, previous: int
) -> dict[str, Any]:
    series = daily_series(counts, first_day, days)
    trend = Trend.of(current, previous)
    return {
        **asdict(trend),
        "daily": [{"date": d.isoformat(), "count": c} for d, c in series],
        "slope_per_day": round(slope_per_day(series), 4),
    }


@router.get("", summary="KPIs over the last N days (7 or 30 typically), with the previous N days for trends")
async def kpis(
    request: Request,
    _: Reader,
    days: int = Query(7, ge=1, le=90),
    service: list[str] | None = Query(None, description="Also report these services (100% when quiet)"),
    limit: int = Query(10, ge=1, le=100),
) -> dict[str, Any]:
    backends = backends_of(request)
    sqlite = backends.db.is_sqlite
    end = utcnow()
    start = end - timedelta(days=days)
    previous_start = start - timedelta(days=days)
    first_day = (end - timedelta(days=days - 1)).date()
    async with backends.db.session() as session:
        incidents = [
            IncidentRecord(
                id=i.id,
                severity=i.severity,
                started_at=i.started_at,
                detected_at=i.detected_at,
                acknowledged_at=i.acknowledged_at,
                resolved_at=i.resolved_at,
                services=tuple(i.services or ()),
            )
            for i in (
                await session.execute(
                    select(Incident)
                    .where(
                        Incident.started_at < end,
                        or_(
                            Incident.resolved_at.is_(None),
                            Incident.resolved_at >= start,
                            Incident.detected_at >= start,
                        ),
                    )
                    .order_by(Incident.started_at.desc())
                    .limit(MAX_INCIDENTS)
                )
            ).scalars()
        ]
        alert_days = await _daily(session, Alert.first_seen, start, end, sqlite)
        incident_days = await _daily(session, Incident.started_at, start, end, sqlite)
        alerts_now = await _count(session, Alert.first_seen, start, end)
        alerts_before = await _count(session, Alert.first_seen, previous_start, start)
        incidents_now = await _count(session, Incident.started_at, start, end)
        incidents_before = await _count(session, Incident.started_at, previous_start, start)
        noisy_rows = await session.execute(
            select(Alert.origin, Alert.source, Alert.host, func.count(), func.sum(Alert.count))
            .where(Alert.last_seen >= start)
            .group_by(Alert.origin, Alert.source, Alert.host)
            .order_by(func.sum(Alert.count).desc())
            .limit(limit * 5)
        )
        noisy = [SourceAggregate(o, s, h, int(n), int(f or 0)) for o, s, h, n, f in noisy_rows.all()]
        occurrences = func.count() + func.sum(Alert.reopened)
        issue_rows = await session.execute(
            select(
                Alert.fingerprint,
                func.max(Alert.title),
                func.max(Alert.origin),
                func.max(Alert.host),
                func.max(Alert.service),
                func.count(),
                func.sum(Alert.reopened),
                func.sum(Alert.count),
                func.max(Alert.last_seen),
            )
            .where(Alert.last_seen >= start)
            .group_by(Alert.fingerprint)
            .order_by(occurrences.desc())
            .limit(limit * 5)
        )
        issues = [
            IssueAggregate(fp, title, origin, host, svc, int(n), int(reopened or 0), int(fires or 0), last)
            for fp, title, origin, host, svc, n, reopened, fires, last in issue_rows.all()
        ]
    report = kpi_report(incidents, start, end, services=service or ())
    return {
        "window": {"start": start.isoformat(), "end": end.isoformat(), "days": days},
        "mtta": asdict(report.mtta),
        "mttr": asdict(report.mttr),
        "mtbf_s": report.overall.mtbf_s,
        "uptime": {
            "outage_severities": ["critical", "high"],
            "overall": asdict(report.overall),
            "services": {name: asdict(a) for name, a in report.services.items()},
        },
        "alerts": _series(alert_days, first_day, days, alerts_now, alerts_before),
        "incidents": _series(incident_days, first_day, days, incidents_now, incidents_before),
        "top_noisy_sources": [asdict(s) for s in top_noisy_sources(noisy, limit)],
        "top_recurring_issues": [
            {**asdict(i), "occurrences": i.occurrences} for i in top_recurring_issues(issues, limit)
        ],
    }
