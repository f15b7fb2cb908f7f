"""Baselines in the metric store: the detector's expected value and band, for charts.

The detect stage writes at most one point per series per minute (the first point of each
minute once the detector is past its warm-up) to the measurement ``vigil_baseline``: fields
``expected``, ``lower``, ``upper`` and ``score``; tags are the series' own tags plus
``series_measurement`` and ``series_field`` naming the series. Writes are idempotent (same
series and time overwrite), so a replay after a crash writes the same points again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from prometheus_client import Counter

from vigil.domain.metrics import Point
from vigil.observability import REGISTRY
from vigil.store.metrics.base import MetricStore, MetricStoreError

log = logging.getLogger(__name__)

BASELINE_MEASUREMENT = "vigil_baseline"
MEASUREMENT_TAG = "series_measurement"
FIELD_TAG = "series_field"
BASELINE_FIELDS = ("expected", "lower", "upper", "score")

BASELINE_WRITE_FAILURES = Counter(
    "vigil_baseline_write_failures_total",
    "Baseline batches the metric store did not take (detection carried on without them).",
    registry=REGISTRY,
)


def baseline_point(
    measurement: str,
    field: str,
    tags: Mapping[str, str],
    time_ns: int,
    expected: float,
    lower: float,
    upper: float,
    score: float,
) -> Point:
    return Point(
        BASELINE_MEASUREMENT,
        {"expected": expected, "lower": lower, "upper": upper, "score": score},
        {**tags, MEASUREMENT_TAG: measurement, FIELD_TAG: field},
        time_ns,
    )


async def write_baselines(store: MetricStore, points: Sequence[Point]) -> bool:
    """Best effort: a store outage must not stop detection (the band just has a gap)."""
    if not points:
        return True
    try:
        await store.write(points)
    except (MetricStoreError, OSError) as exc:
        BASELINE_WRITE_FAILURES.inc()
        log.warning("baselines not written (%d points): %s", len(points), exc)
        return False
    return True
