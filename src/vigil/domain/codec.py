"""How domain objects travel on the bus: compact JSON (orjson), one batch per message.

Metric batches (topic ``ingest.metrics``) come in two shapes, and every consumer reads both
through :func:`decode_points` (or :func:`decode_metric_batch` to see which shape it got):

* points: ``{"source": ..., "points": [[measurement, tags, fields, time_ns], ...]}``, written by
  :func:`encode_points` (collectors, Telegraf JSON, anything already holding Points);
* line protocol: ``{"source": ..., "lp": "<lines>"}``, written by :func:`encode_line_protocol`
  for Telegraf/InfluxDB bodies the API has validated. The text is InfluxDB line protocol with
  nanosecond timestamps on every line, one point per physical line, every line valid. Carrying
  the validated text saves formatting it again on the way to InfluxDB, the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from vigil.domain.metrics import Point
from vigil.ingest.line_protocol import parse as parse_line_protocol


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj)


def decode(payload: bytes) -> Any:
    return orjson.loads(payload)


def encode_points(points: Iterable[Point], source: str | None = None) -> bytes:
    """A metric batch as columns-of-rows: [measurement, tags, fields, time_ns] per point."""
    return orjson.dumps(
        {"source": source, "points": [[p.measurement, p.tags, p.fields, p.time_ns] for p in points]}
    )


def encode_line_protocol(lines: str, source: str | None = None) -> bytes:
    """A metric batch as validated line protocol (see the module docstring for the contract)."""
    return orjson.dumps({"source": source, "lp": lines})


@dataclass(slots=True)
class MetricBatch:
    """One metric message, decoded: exactly one of ``line_protocol`` and ``rows`` is set."""

    source: str | None
    line_protocol: str | None = None
    rows: list[list[Any]] | None = None

    def points(self) -> list[Point]:
        if self.line_protocol is not None:
            return parse_line_protocol(self.line_protocol).points
        return [Point(m, f, t, ts) for m, t, f, ts in self.rows or ()]

    def __len__(self) -> int:
        if self.line_protocol is not None:
            text = self.line_protocol
            return text.count("\n") + (1 if text and not text.endswith("\n") else 0)
        return len(self.rows or ())


def decode_metric_batch(payload: bytes) -> MetricBatch:
    data = orjson.loads(payload)
    lines = data.get("lp")
    if lines is not None:
        return MetricBatch(data.get("source"), line_protocol=lines)
    return MetricBatch(data.get("source"), rows=data["points"])


def decode_points(payload: bytes) -> tuple[str | None, list[Point]]:
    """Source and points of a metric message, whichever shape it has."""
    batch = decode_metric_batch(payload)
    return batch.source, batch.points()


def encode_dicts(kind: str, items: Sequence[dict[str, Any]], source: str | None = None) -> bytes:
    return orjson.dumps({"kind": kind, "source": source, "items": list(items)})
