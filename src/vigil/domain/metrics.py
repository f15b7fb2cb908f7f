"""Metric points and queries: the shapes every metric source and store agree on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FieldValue = float | int | bool | str

Aggregation = Literal["mean", "min", "max", "last", "count", "sum", "percentile"]


@dataclass(slots=True)
class Point:
    """One metric sample: InfluxDB's data model (measurement, tags, fields, timestamp)."""

    measurement: str
    fields: dict[str, FieldValue]
    tags: dict[str, str] = field(default_factory=dict)
    time_ns: int | None = None  # None: the receiver's clock decides


@dataclass(slots=True, frozen=True)
class MetricQuery:
    """A range query over one field of one measurement.

    ``interval_s`` groups into time buckets aligned to the epoch (as InfluxQL's ``GROUP BY
    time()``); ``None`` aggregates the whole range into one value per series. ``where`` filters
    on exact tag values; a list of values means "any of".
    """

    measurement: str
    field: str
    start_ns: int
    end_ns: int
    aggregation: Aggregation = "mean"
    percentile: float | None = None
    interval_s: int | None = None
    group_by: tuple[str, ...] = ()
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @staticmethod
    def where_from(filters: dict[str, str | list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
        out = []
        for key in sorted(filters):
            value = filters[key]
            out.append((key, (value,) if isinstance(value, str) else tuple(value)))
        return tuple(out)


@dataclass(slots=True)
class Series:
    """The result of a query for one tag group: bucket start times (ns) and values."""

    measurement: str
    field: str
    tags: dict[str, str]
    times_ns: list[int]
    values: list[float | None]
