"""The series query service: what the metrics page draws for a series over a time range.

For a measurement, a field and tag filters it returns each matching series (one per distinct
tag set, up to ``max_series``) with

* ``data``: the values aggregated per ``interval_s`` bucket (``None`` for empty buckets);
* ``baseline``: the detector's expected value and band from ``vigil_baseline`` (mean of
  ``expected``, lowest ``lower``, highest ``upper`` per bucket), when the detector has them;
* ``anomalies``: the anomaly findings of the series that overlap the range;
* ``forecast``: for series a prediction rule covers, the exhaustion forecast from the last 72
  hours at 5-minute resolution (``predict.forecast_resource``, as the predict stage computes
  it), as a curve from the last point towards the threshold with the band of its 90%
  interval; ``None`` without a trend.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select

from vigil.domain.metrics import Aggregation, MetricQuery, Series
from vigil.metrics.baselines import BASELINE_MEASUREMENT, FIELD_TAG, MEASUREMENT_TAG
from vigil.metrics.findings import ns_to_datetime
from vigil.metrics.rules import PredictionRule, RuleSet
from vigil.metrics.series import series_key
from vigil.pipeline.stages.predict import forecast_resource
from vigil.store.db import Database
from vigil.store.metrics.base import MetricStore
from vigil.store.models import FindingRecord

FORECAST_WINDOW_S = 72 * 3600
FORECAST_BUCKET_S = 300
CURVE_POINTS = 48
MAX_CURVE_S = 30 * 86400.0


@dataclass(frozen=True)
class SeriesRequest:
    measurement: str
    field: str
    start_ns: int
    end_ns: int
    interval_s: int
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    aggregation: Aggregation = "mean"
    max_series: int = 20
    forecast: bool = True


def _tags_key(tags: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in tags.items() if v))


def _columns(series: Series) -> dict[str, list[Any]]:
    return {"times_ns": list(series.times_ns), "values": list(series.values)}


async def _baselines(
    store: MetricStore, request: SeriesRequest, group_by: tuple[str, ...]
) -> dict[tuple[tuple[str, str], ...], dict[str, list[Any]]]:
    where = {**request.tags, MEASUREMENT_TAG: request.measurement, FIELD_TAG: request.field}
    bands: dict[tuple[tuple[str, str], ...], dict[str, list[Any]]] = {}
    aggregations: tuple[tuple[str, Aggregation], ...] = (
        ("expected", "mean"),
        ("lower", "min"),
        ("upper", "max"),
    )
    for name, aggregation in aggregations:
        found = await store.query(
            MetricQuery(
                measurement=BASELINE_MEASUREMENT,
                field=name,
                start_ns=request.start_ns,
                end_ns=request.end_ns,
                aggregation=aggregation,
                interval_s=request.interval_s,
                group_by=group_by,
                where=MetricQuery.where_from(dict(where)),
            )
        )
        for series in found:
            band = bands.setdefault(_tags_key(series.tags), {"times_ns": list(series.times_ns)})
            band[name] = list(series.values)
    return bands


async def _anomalies(db: Database, keys: Sequence[str], start_ns: int, end_ns: int) -> dict[str, list[Any]]:
    if not keys:
        return {}
    start, end = ns_to_datetime(start_ns), ns_to_datetime(end_ns)
    async with db.session() as session:
        rows = (
            await session.execute(
                select(FindingRecord)
                .where(
                    FindingRecord.kind == "anomaly",
                    FindingRecord.key.in_(list(keys)),
                    FindingRecord.opened_at < end,
                    or_(FindingRecord.resolved_at.is_(None), FindingRecord.resolved_at >= start),
                )
                .order_by(FindingRecord.opened_at, FindingRecord.id)
                .limit(1000)
            )
        ).scalars()
        markers: dict[str, list[Any]] = {}
        for row in rows:
            peak = (row.evidence or {}).get("peak") or {}
            markers.setdefault(row.key, []).append(
                {
                    "finding_id": row.id,
                    "state": row.state,
                    "severity": row.severity,
                    "score": row.score,
                    "title": row.title,
                    "opened_at": row.opened_at,
                    "resolved_at": row.resolved_at,
                    "peak_time_ns": peak.get("time_ns"),
                    "peak_value": peak.get("observed"),
                    "methods": (row.evidence or {}).get("methods", []),
                }
            )
    return markers


async def forecast_curve(
    store: MetricStore,
    measurement: str,
    field_name: str,
    tags: Mapping[str, str],
    rule: PredictionRule,
    now_ns: int,
) -> dict[str, Any] | None:
    """The exhaustion forecast of one series as of its last point before ``now_ns``."""
    found = await store.query(
        MetricQuery(
            measurement=measurement,
            field=field_name,
            start_ns=now_ns - FORECAST_WINDOW_S * 1_000_000_000,
            end_ns=now_ns,
            aggregation="mean",
            interval_s=FORECAST_BUCKET_S,
            group_by=tuple(sorted(tags)),
            where=MetricQuery.where_from(dict(tags)),
        )
    )
    series = next((s for s in found if _tags_key(s.tags) == _tags_key(tags)), None)
    if series is None:
        return None
    pairs = [
        (t / 1e9 + FORECAST_BUCKET_S / 2, float(v))
        for t, v in zip(series.times_ns, series.values, strict=True)
        if v is not None
    ]
    if len(pairs) < 2:
        return None
    last = pairs[-1][0]
    fc = forecast_resource([t for t, _ in pairs], [v for _, v in pairs], rule, last)
    if fc is None:
        return None
    current = float(fc.current)
    gap = rule.threshold - current
    eta, low, high = float(fc.eta_s), float(fc.low_s), float(fc.high_s)
    span = min(max(eta, 3600.0) * 1.25, MAX_CURVE_S)
    times = [last + span * i / CURVE_POINTS for i in range(CURVE_POINTS + 1)]
    trend_s = float(fc.trend_per_hour) / 3600.0
    fast = gap / low if low > 0 else trend_s
    slow = gap / high if math.isfinite(high) and high > 0 else 0.0
    expected = [current + trend_s * (t - last) for t in times]
    edge_a = [current + fast * (t - last) for t in times]
    edge_b = [current + slow * (t - last) for t in times]
    return {
        "rule": rule.id,
        "threshold": rule.threshold,
        "direction": rule.direction,
        "eta_s": eta,
        "eta_low_s": low,
        "eta_high_s": high if math.isfinite(high) else None,
        "exhausted_at_ns": int((last + eta) * 1e9),
        "trend_per_hour": float(fc.trend_per_hour),
        "fit_quality": float(fc.fit_quality),
        "current": current,
        "curve": {
            "times_ns": [int(t * 1e9) for t in times],
            "expected": expected,
            "lower": [min(a, b) for a, b in zip(edge_a, edge_b, strict=True)],
            "upper": [max(a, b) for a, b in zip(edge_a, edge_b, strict=True)],
        },
    }


async def query_series(
    store: MetricStore, db: Database, rules: RuleSet, request: SeriesRequest
) -> dict[str, Any]:
    """Data, baseline band, anomaly markers and forecast of every series matching the request."""
    tag_keys = tuple(sorted(await store.tag_keys(request.measurement)))
    data = await store.query(
        MetricQuery(
            measurement=request.measurement,
            field=request.field,
            start_ns=request.start_ns,
            end_ns=request.end_ns,
            aggregation=request.aggregation,
            interval_s=request.interval_s,
            group_by=tag_keys,
            where=MetricQuery.where_from(dict(request.tags)),
        )
    )
    data.sort(key=lambda s: _tags_key(s.tags))
    truncated = len(data) > request.max_series
    data = data[: request.max_series]
    bands = await _baselines(store, request, tag_keys) if data else {}
    keys = [
        series_key(request.measurement, request.field, {k: v for k, v in s.tags.items() if v}) for s in data
    ]
    markers = await _anomalies(db, keys, request.start_ns, request.end_ns)
    out = []
    for series, key in zip(data, keys, strict=True):
        tags = {k: v for k, v in series.tags.items() if v}
        band = bands.get(_tags_key(tags))
        forecast = None
        rule = rules.match(request.measurement, request.field, tags)
        if request.forecast and rule is not None:
            forecast = await forecast_curve(
                store, request.measurement, request.field, tags, rule, request.end_ns
            )
        out.append(
            {
                "key": key,
                "tags": tags,
                "data": _columns(series),
                "baseline": band,
                "anomalies": markers.get(key, []),
                "prediction_rule": None if rule is None else rule.id,
                "forecast": forecast,
            }
        )
    return {
        "measurement": request.measurement,
        "field": request.field,
        "start_ns": request.start_ns,
        "end_ns": request.end_ns,
        "interval_s": request.interval_s,
        "aggregation": request.aggregation,
        "truncated": truncated,
        "series": out,
    }
