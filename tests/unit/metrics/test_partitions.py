"""Splitting metric messages by partition: both message shapes give the same series in the same
partitions, only wanted partitions are returned, and unreadable messages say why."""

from __future__ import annotations

import pytest

from vigil.domain import codec
from vigil.domain.metrics import Point
from vigil.ingest.line_protocol import format_lines
from vigil.metrics.partitions import PartitionSplitter, UnreadableBatch
from vigil.metrics.series import identity, partition_of


def _points() -> list[Point]:
    points = []
    for i in range(60):
        tags = {"host": f"web-{i % 12}", "cpu": "cpu-total"}
        points.append(Point("cpu", {"usage_user": float(i), "usage_idle": 100.0 - i}, tags, 1_000 + i))
        points.append(
            Point("disk", {"used_percent": 40.0}, {"host": f"web-{i % 12}", "path": "/var lib"}, 1_000 + i)
        )
    return points


def _flatten(parts: dict[int, list[tuple[str, Point]]]) -> dict[int, list[str]]:
    return {
        p: sorted(f"{ident} {pt.fields} {pt.time_ns}" for ident, pt in items) for p, items in parts.items()
    }


def test_both_shapes_split_alike() -> None:
    points = _points()
    splitter = PartitionSplitter(4)
    everything = set(range(4))
    from_lines = splitter.split(codec.encode_line_protocol(format_lines(points)), everything)
    from_points = splitter.split(codec.encode_points(points), everything)
    assert _flatten(from_lines) == _flatten(from_points)
    assert sum(len(v) for v in from_points.values()) == len(points)
    for partition, items in from_points.items():
        for ident, point in items:
            assert ident == identity(point.measurement, point.tags)
            assert partition_of(ident, 4) == partition


def test_only_wanted_partitions_come_back_in_message_order() -> None:
    points = _points()
    splitter = PartitionSplitter(4)
    parts = splitter.split(codec.encode_line_protocol(format_lines(points)), {1})
    assert set(parts) <= {1}
    times = [p.time_ns or 0 for _, p in parts[1] if p.measurement == "cpu"]
    assert times == sorted(times)


def test_unsorted_tags_and_escapes_land_where_the_parsed_point_does() -> None:
    lines = "\n".join(
        [
            "cpu,host=b,cpu=cpu0 v=1 10",  # tags not sorted
            "cpu,cpu=cpu0,host=b v=2 20",
            "my\\ cpu,host=b v=3 30",  # escaped measurement
            "# a comment",
            "",
        ]
    )
    parts = PartitionSplitter(8).split(codec.encode_line_protocol(lines), set(range(8)))
    found = sorted((ident, p.fields["v"]) for items in parts.values() for ident, p in items)
    assert found == [("cpu,cpu=cpu0,host=b", 1.0), ("cpu,cpu=cpu0,host=b", 2.0), ("my\\ cpu,host=b", 3.0)]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "JSONDecodeError"),
        (b'{"source": null}', "KeyError"),
        (b'{"lp": 5}', "lp must be a string"),
    ],
)
def test_unreadable_messages_say_why(payload: bytes, reason: str) -> None:
    with pytest.raises(UnreadableBatch, match=reason):
        PartitionSplitter(2).split(payload, {0, 1})
