"""How domain objects travel on the bus: compact JSON (orjson), one batch per message."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from vigil.domain.metrics import Point


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj)


def decode(payload: bytes) -> Any:
    return orjson.loads(payload)


def encode_points(points: Iterable[Point], source: str | None = None) -> bytes:
    """A metric batch as columns-of-rows: [measurement, tags, fields, time_ns] per point."""
    return orjson.dumps(
        {"source": source, "points": [[p.measurement, p.tags, p.fields, p.time_ns] for p in points]}
    )


def decode_points(payload: bytes) -> tuple[str | None, list[Point]]:
    data = orjson.loads(payload)
    return data.get("source"), [Point(m, f, t, ts) for m, t, f, ts in data["points"]]


def encode_dicts(kind: str, items: Sequence[dict[str, Any]], source: str | None = None) -> bytes:
    return orjson.dumps({"kind": kind, "source": source, "items": list(items)})
