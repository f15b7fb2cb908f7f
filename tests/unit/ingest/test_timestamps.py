"""Timestamps: RFC 3339 with nanoseconds and offsets, epoch numbers in any unit."""

from __future__ import annotations

import pytest

from vigil.ingest.timestamps import epoch_to_ns, parse_rfc3339, to_ns

BASE = 1_714_557_600 * 10**9  # 2024-05-01T10:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00Z", BASE),
        ("2024-05-01T10:00:00.123Z", BASE + 123_000_000),
        ("2024-05-01T10:00:00.123456789Z", BASE + 123_456_789),
        ("2024-05-01T10:00:00.1234567891234Z", BASE + 123_456_789),  # beyond ns: cut
        ("2024-05-01T12:00:00+02:00", BASE),
        ("2024-05-01T05:30:00-0430", BASE),
        ("2024-05-01 10:00:00", BASE),  # no zone: UTC
        ("2024-05-01t10:00:00z", BASE),
    ],
)
def test_rfc3339(text: str, expected: int) -> None:
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01T00:00:00Z", "2024-05-01T25:00:00Z", "2024-05-01"])
def test_bad_rfc3339(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_go_zero_time_is_readable() -> None:
    assert parse_rfc3339("0001-01-01T00:00:00Z") < 0


@pytest.mark.parametrize(
    "value", [1_714_557_600, 1_714_557_600_000, 1_714_557_600_000_000, 1_714_557_600_000_000_000]
)
def test_epoch_magnitude_decides_the_unit(value: int) -> None:
    assert epoch_to_ns(value) == BASE


def test_declared_units_win_and_floats_keep_fractions() -> None:
    assert epoch_to_ns(1_714_557_600_000, "ms") == BASE
    assert epoch_to_ns(5, "s") == 5 * 10**9  # a small number in declared seconds stays seconds
    assert epoch_to_ns(1_714_557_600.25) == BASE + 250_000_000
    with pytest.raises(ValueError):
        epoch_to_ns(1, "fortnight")
    with pytest.raises(ValueError):
        epoch_to_ns(float("nan"))


def test_to_ns_accepts_every_form() -> None:
    assert to_ns("2024-05-01T10:00:00Z") == BASE
    assert to_ns("1714557600") == BASE
    assert to_ns("1714557600.5") == BASE + 500_000_000
    assert to_ns(1714557600) == BASE
    for bad in (True, None, [1], "soon"):
        with pytest.raises(ValueError):
            to_ns(bad)
