"""Redis-style message ids of the in-process bus."""

from __future__ import annotations

import pytest

from vigil.bus import memory
from vigil.bus.memory import IdClock, parse_id


def test_ids_within_one_millisecond_count_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory.time, "time", lambda: 1700000000.123)
    clock = IdClock()
    assert [clock.next() for _ in range(3)] == ["1700000000123-0", "1700000000123-1", "1700000000123-2"]


def test_ids_keep_increasing_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1700000000.500]
    monkeypatch.setattr(memory.time, "time", lambda: now[0])
    clock = IdClock()
    first = clock.next()
    now[0] -= 5
    second = clock.next()
    now[0] += 10
    third = clock.next()
    assert parse_id(first) < parse_id(second) < parse_id(third)
    assert second == "1700000000500-1"


def test_a_clock_resumes_after_the_last_id_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory.time, "time", lambda: 1.0)
    assert IdClock("5000-7").next() == "5000-8"


def test_parse_id() -> None:
    assert parse_id("1700000000123-4") == (1700000000123, 4)
    assert parse_id("42") == (42, 0)
