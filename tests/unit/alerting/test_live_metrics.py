"""Series filters for /ws/metrics, point selection and interest announcements."""

from __future__ import annotations

import pytest

from vigil.domain import codec
from vigil.domain.metrics import Point
from vigil.pipeline.stages.alerting_live_metrics import Interest, SeriesFilter, watched_points


def test_series_filters_from_keys_and_objects() -> None:
    assert SeriesFilter.parse("cpu.usage_user{host=web-03,cpu=cpu-total}") == SeriesFilter(
        "cpu", "usage_user", (("cpu", "cpu-total"), ("host", "web-03"))
    )
    assert SeriesFilter.parse("mem") == SeriesFilter("mem")
    assert SeriesFilter.parse({"measurement": "disk", "tags": {"path": "/var"}}) == SeriesFilter(
        "disk", None, (("path", "/var"),)
    )
    for bad, message in (
        ("cpu{host=a", "closing brace"),
        ("cpu{host}", "name=value"),
        (".x", "measurement"),
        ({"measurement": ""}, "measurement"),
        ({"measurement": "m", "tags": {"a": 1}}, "tags"),
        (42, "object"),
    ):
        with pytest.raises(ValueError, match=message):
            SeriesFilter.parse(bad)
    f = SeriesFilter.parse("cpu.usage_user{host=a}")
    assert f.matches("cpu", {"host": "a", "cpu": "0"}, "usage_user")
    assert not f.matches("cpu", {"host": "b"}, "usage_user") and not f.matches("cpu", {"host": "a"}, "idle")


def test_watched_points_selects_numeric_fields_of_watched_series() -> None:
    payload = codec.encode_points(
        [
            Point("cpu", {"usage_user": 5.0, "usage_idle": 90.0, "ok": True}, {"host": "a"}, 1),
            Point("cpu", {"usage_user": 7.0}, {"host": "b"}, 1),
            Point("mem", {"used": 3, "state": "fine"}, {"host": "a"}, 2),
        ]
    )
    got = watched_points(payload, [SeriesFilter.parse("cpu.usage_user{host=a}"), SeriesFilter.parse("mem")])
    assert got == [["cpu", "usage_user", {"host": "a"}, 5.0, 1], ["mem", "used", {"host": "a"}, 3, 2]]
    assert watched_points(payload, [SeriesFilter.parse("disk")]) == []
    line_protocol = codec.encode_line_protocol("cpu,host=a usage_user=9.5 1000\n")
    assert watched_points(line_protocol, [SeriesFilter.parse("cpu{host=a}")]) == [
        ["cpu", "usage_user", {"host": "a"}, 9.5, 1000]
    ]


def test_interest_expires_and_is_replaced_per_replica() -> None:
    interest = Interest()
    interest.update({"replica": "r1", "series": ["cpu", {"bad": 1}], "ttl_s": 60})
    interest.update({"replica": "r2", "series": ["mem"], "ttl_s": -1})  # already expired
    assert interest.filters() == [SeriesFilter("cpu")]
    interest.update({"replica": "r1", "series": []})
    assert interest.filters() == []
