"""Telegraf's JSON serializer (``data_format = "json"``) into Points.

Shapes: the batch form ``{"metrics": [metric, ...]}`` (``use_batch_format = true``, the default
of ``outputs.http``), one bare metric object per request (``use_batch_format = false``), and, for
convenience, a JSON array of metrics. A metric is ``{"name", "tags", "fields", "timestamp"}``.

Timestamps are integers in ``json_timestamp_units`` (default seconds), or strings when
``json_timestamp_format`` is set. The receiver cannot see the agent's unit setting, so an
explicit ``?precision=`` wins and the magnitude decides otherwise (see ``timestamps``).

Like line protocol, a batch keeps its good metrics: each bad one is reported with its index and
the reason, and is not stored. A metric is accepted only if it can be written as line protocol,
so nothing downstream can fail on it.
"""

from __future__ import annotations

from typing import Any

import orjson

from vigil.domain.metrics import FieldValue, Point
from vigil.ingest.line_protocol import LineError, LineProtocolError, format_point
from vigil.ingest.timestamps import to_ns

_UNITS = {"n": "ns", "ns": "ns", "u": "us", "us": "us", "µ": "us", "ms": "ms", "s": "s"}


class TelegrafJsonError(ValueError):
    """The body is not Telegraf JSON at all (not JSON, or not an object/array of metrics)."""


def looks_like_json(body: bytes) -> bool:
    """Telegraf sends ``text/plain`` even for JSON, so the first character decides."""
    return body.lstrip()[:1] in (b"{", b"[")


def parse_telegraf_json(
    body: bytes, precision: str | None, now_ns: int
) -> tuple[list[Point], list[LineError]]:
    """Points and per-metric errors (``LineError.line_no`` is the 1-based metric number)."""
    unit = None
    if precision:
        unit = _UNITS.get(precision)
        if unit is None:
            raise TelegrafJsonError(f"precision: unknown value {precision!r}; expected ns, us, ms or s")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise TelegrafJsonError(f"body: not valid JSON ({exc})") from None
    if isinstance(document, dict) and "metrics" in document:
        metrics = document["metrics"]
        if not isinstance(metrics, list):
            raise TelegrafJsonError("metrics: must be an array of metric objects")
    elif isinstance(document, dict):
        metrics = [document]
    elif isinstance(document, list):
        metrics = document
    else:
        raise TelegrafJsonError("body: expected a JSON object with 'metrics', a metric object or an array")

    points: list[Point] = []
    errors: list[LineError] = []
    for index, metric in enumerate(metrics, 1):
        try:
            point = _metric(metric, unit, now_ns)
            format_point(point)  # proves it can travel as line protocol
        except (ValueError, LineProtocolError) as exc:
            errors.append(LineError(index, _excerpt(metric), str(exc)))
            continue
        points.append(point)
    return points, errors


def _metric(metric: Any, unit: str | None, now_ns: int) -> Point:
    if not isinstance(metric, dict):
        raise ValueError("a metric must be an object with name, tags, fields and timestamp")
    name = metric.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("name: must be a non-empty string")
    raw_tags = metric.get("tags") or {}
    if not isinstance(raw_tags, dict):
        raise ValueError("tags: must be an object of strings")
    tags: dict[str, str] = {}
    for key, value in raw_tags.items():
        if value is None or value == "":
            continue  # line protocol has no empty tags; InfluxDB would drop them too
        if isinstance(value, bool | int | float):
            value = _scalar_text(value)
        if not isinstance(value, str):
            raise ValueError(f"tags.{key}: must be a string")
        tags[key] = value
    raw_fields = metric.get("fields")
    if not isinstance(raw_fields, dict) or not raw_fields:
        raise ValueError("fields: must be a non-empty object")
    fields: dict[str, FieldValue] = {}
    for key, value in raw_fields.items():
        if value is None:
            continue
        if not isinstance(value, bool | int | float | str):
            raise ValueError(f"fields.{key}: must be a number, boolean or string")
        fields[key] = value
    if not fields:
        raise ValueError("fields: every value is null")
    stamp = metric.get("timestamp")
    try:
        time_ns = now_ns if stamp is None else to_ns(stamp, unit)
    except ValueError as exc:
        raise ValueError(f"timestamp: {exc}") from None
    return Point(name, fields, tags, time_ns)


def _scalar_text(value: bool | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _excerpt(metric: Any) -> str:
    text = orjson.dumps(metric, default=str).decode()
    return text if len(text) <= 200 else text[:200] + "…"
