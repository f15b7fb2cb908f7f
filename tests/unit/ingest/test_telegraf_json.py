"""Telegraf's JSON serializer: batch and single-metric forms, timestamp units, bad metrics."""

from __future__ import annotations

import orjson
import pytest

from vigil.domain.metrics import Point
from vigil.ingest.telegraf_json import TelegrafJsonError, looks_like_json, parse_telegraf_json

NOW = 1_800_000_000 * 10**9


def test_batch_form_from_the_serializer_docs() -> None:
    body = orjson.dumps(
        {
            "metrics": [
                {
                    "fields": {"usage_idle": 97.5, "usage_user": 1.2},
                    "name": "cpu",
                    "tags": {"cpu": "cpu-total", "host": "web1"},
                    "timestamp": 1700000000,
                }
            ]
        }
    )
    points, errors = parse_telegraf_json(body, None, NOW)
    assert errors == []
    assert points == [
        Point(
            "cpu",
            {"usage_idle": 97.5, "usage_user": 1.2},
            {"cpu": "cpu-total", "host": "web1"},
            1_700_000_000 * 10**9,
        )
    ]


def test_single_metric_form_and_json_types() -> None:
    body = orjson.dumps(
        {
            "name": "svc",
            "tags": {},
            "fields": {"up": True, "n": 3, "state": "ok", "skip": None},
            "timestamp": 1,
        }
    )
    points, errors = parse_telegraf_json(body, "s", NOW)
    assert errors == []
    assert points[0].fields == {"up": True, "n": 3, "state": "ok"}
    assert points[0].time_ns == 10**9


@pytest.mark.parametrize(
    ("stamp", "precision", "expected"),
    [
        (1_700_000_000_000, None, 1_700_000_000 * 10**9),  # ms guessed from magnitude
        (1_700_000_000_000, "ms", 1_700_000_000 * 10**9),
        (1_700_000_000_000_000, "us", 1_700_000_000 * 10**9),
        ("2023-11-14T22:13:20Z", None, 1_700_000_000 * 10**9),  # json_timestamp_format
        (None, None, NOW),
    ],
)
def test_timestamp_units(stamp: object, precision: str | None, expected: int) -> None:
    metric: dict[str, object] = {"name": "m", "fields": {"v": 1}}
    if stamp is not None:
        metric["timestamp"] = stamp
    points, errors = parse_telegraf_json(orjson.dumps({"metrics": [metric]}), precision, NOW)
    assert errors == [] and points[0].time_ns == expected


def test_bad_metrics_are_reported_by_number_and_the_rest_kept() -> None:
    body = orjson.dumps(
        {
            "metrics": [
                {"name": "ok", "fields": {"v": 1}, "timestamp": 1},
                {"name": "", "fields": {"v": 1}},
                {"name": "m", "fields": {}},
                {"name": "m", "fields": {"v": {"nested": 1}}},
                {"name": "m", "fields": {"v": 1}, "tags": {"host": ["a"]}},
                {"name": "m", "fields": {"v": 1}, "timestamp": "when"},
                "not an object",
                {"name": "also ok", "fields": {"v": 2.5}, "tags": {"n": 5, "empty": ""}},
            ]
        }
    )
    points, errors = parse_telegraf_json(body, None, NOW)
    assert [p.measurement for p in points] == ["ok", "also ok"]
    assert points[1].tags == {"n": "5"}
    assert [(e.line_no, e.message.split(":")[0]) for e in errors] == [
        (2, "name"),
        (3, "fields"),
        (4, "fields.v"),
        (5, "tags.host"),
        (6, "timestamp"),
        (7, "a metric must be an object with name, tags, fields and timestamp"),
    ]


@pytest.mark.parametrize("body", [b"{not json", b'"a string"', b'{"metrics": 5}'])
def test_not_telegraf_json_at_all(body: bytes) -> None:
    with pytest.raises(TelegrafJsonError):
        parse_telegraf_json(body, None, NOW)


def test_unknown_precision() -> None:
    with pytest.raises(TelegrafJsonError, match="precision"):
        parse_telegraf_json(b'{"name":"m","fields":{"v":1}}', "fortnight", NOW)


def test_sniffing() -> None:
    assert looks_like_json(b'  {"metrics": []}')
    assert looks_like_json(b"[]")
    assert not looks_like_json(b"cpu v=1 1")
