"""Predictions from in-stream history: a leak opens a prediction near the true time, a
clean-up resolves it, falling series work, and saved state continues exactly."""

from __future__ import annotations

import numpy as np

from vigil.metrics.rules import DEFAULT_RULESET
from vigil.pipeline.stages.predict import (
    BUCKET_S,
    MAX_BUCKETS,
    PredictState,
    prediction_finding,
    severity_for,
)

DISK = DEFAULT_RULESET.match("disk", "used_percent", {})
INODES = DEFAULT_RULESET.match("disk", "inodes_free", {})
START = 1_700_000_000 // 86400 * 86400


def _series(hours: float, slope_per_h: float, level: float, step_s: float = 60, seed: int = 0):  # type: ignore[no-untyped-def]
    n = int(hours * 3600 / step_s)
    t = START + np.arange(n) * step_s
    rng = np.random.default_rng(seed)
    x = level + (t - START) / 3600 * slope_per_h + rng.normal(0, 0.2, n)
    return t.tolist(), x.tolist()


def test_a_leak_opens_near_the_true_time_and_a_cleanup_resolves() -> None:
    assert DISK is not None
    state = PredictState()
    t, x = _series(30, 0.5, 40)  # 40 % rising 0.5 %/h
    events = state.feed(DISK, t, x, every_s=300)
    opened = events[0]
    assert opened.kind == "open"
    now_level = 40 + (opened.time - START) / 3600 * 0.5
    true_eta = (100 - now_level) / 0.5 * 3600
    assert opened.forecast is not None
    assert abs(opened.forecast.eta_s - true_eta) < 0.2 * true_eta
    assert opened.forecast.low_s <= true_eta <= opened.forecast.high_s
    assert state.is_open and state.opened_ns == int(opened.time * 1e9)
    # reruns are spaced by eta / 20 (here capped at an hour), not per point
    assert 0 < state.next_run - t[-1] <= 3600

    # someone deletes files: the trend after the drop is flat, the prediction resolves
    t2 = [t[-1] + 60 * (i + 1) for i in range(8 * 60)]
    x2 = (np.full(len(t2), 20.0) + np.random.default_rng(1).normal(0, 0.2, len(t2))).tolist()
    events = state.feed(DISK, t2, x2, every_s=300)
    assert [e.kind for e in events] == ["resolve"]
    assert events[0].reason == "no trend towards the threshold" and not state.is_open


def test_flat_series_back_off_to_hourly_runs() -> None:
    assert DISK is not None
    state = PredictState()
    t, x = _series(24, 0.0, 40)
    runs: list[float] = []
    for ti, xi in zip(t, x, strict=True):
        before = state.next_run
        assert state.feed(DISK, [ti], [xi], every_s=300) == []
        if state.next_run != before:
            runs.append(state.cur_bucket * BUCKET_S)
    gaps = np.diff(runs)
    assert list(gaps[:4]) == [600, 1200, 2400, 3600] and gaps[-1] == 3600 and len(runs) < 30


def test_falling_series_forecast_towards_a_floor() -> None:
    assert INODES is not None
    state = PredictState()
    t, x = _series(30, -2000, 100_000)  # free inodes fall 2,000/h: zero after 50 h
    events = state.feed(INODES, t, x, every_s=300)
    assert events and events[0].kind == "open"
    fc = events[-1].forecast
    assert fc is not None and fc.trend_per_hour < 0 and fc.threshold == 0.0
    finding = prediction_finding(
        events[-1], INODES, key="disk.inodes_free{host=a,path=/}", measurement="disk", field="inodes_free",
        tags={"host": "a", "path": "/"}, host="a", service=None,
    )  # fmt: skip
    assert finding.title.startswith("inodes of / on a run out in ~")
    true_eta = (50 - (events[-1].time - START) / 3600) * 3600
    assert finding.evidence["direction"] == "falling"
    assert abs(finding.evidence["eta_s"] - true_eta) < 0.1 * true_eta


def test_saved_state_continues_exactly() -> None:
    assert DISK is not None
    t, x = _series(40, 0.3, 50)
    half = len(t) // 2
    whole = PredictState()
    expected = whole.feed(DISK, t, x, every_s=300)
    first = PredictState()
    got = first.feed(DISK, t[:half], x[:half], every_s=300)
    second = PredictState.from_bytes(first.to_bytes())
    got += second.feed(DISK, t[half:], x[half:], every_s=300)
    assert [(e.kind, e.time, e.forecast) for e in got] == [(e.kind, e.time, e.forecast) for e in expected]
    assert len(first.to_bytes()) < 4 * MAX_BUCKETS + 300


def test_history_keeps_72_hours_and_restarts_after_a_long_gap() -> None:
    state = PredictState()
    for hour in range(100):
        state.seed([START + hour * 3600 + 10], [float(hour)])
    assert len(state.values) <= MAX_BUCKETS
    times, _ = state.history()
    assert times[-1] - times[0] <= MAX_BUCKETS * BUCKET_S
    state.seed([START + 400 * 3600], [1.0])  # two weeks later
    state.seed([START + 401 * 3600], [1.0])
    assert len(state.history()[0]) == 1


def test_severity_by_time_left() -> None:
    assert severity_for(3 * 3600) == "critical"
    assert severity_for(20 * 3600) == "high"
    assert severity_for(2 * 86400) == "medium"
    assert severity_for(6 * 86400) == "low"


def _hinge(flat_h: float, ramp_h: float, slope_per_h: float) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(4)
    n = int((flat_h + ramp_h) * 60)
    t = START + np.arange(n) * 60.0
    hours = (t - START) / 3600
    x = 40 + np.clip(hours - flat_h, 0, None) * slope_per_h + rng.normal(0, 0.1, n)
    return t.tolist(), x.tolist()


def test_a_trend_that_starts_late_is_forecast_from_its_start() -> None:
    assert DISK is not None
    # flat for 16 h, then filling 7 %/h: the whole window is a hinge, not a line
    t, x = _hinge(16, 3, 7.0)
    state = PredictState()
    events = state.feed(DISK, t, x, every_s=300)
    assert events and events[0].kind == "open"
    assert events[0].time - t[0] < 18 * 3600  # within two hours of the start of the trend
    fc = state.forecast(DISK, state.cur_bucket * BUCKET_S)
    true_eta = (100 - x[-1]) / 7.0 * 3600
    assert fc is not None and abs(fc.eta_s - true_eta) < 0.15 * true_eta
    assert abs(fc.trend_per_hour - 7.0) < 0.5


def test_a_daily_cycle_alone_opens_nothing() -> None:
    assert DISK is not None
    rng = np.random.default_rng(9)
    t = START + np.arange(3 * 1440) * 60.0
    x = 50 + 15 * np.sin(2 * np.pi * (t % 86400) / 86400) + rng.normal(0, 1.0, len(t))
    state = PredictState()
    assert state.feed(DISK, t.tolist(), x.tolist(), every_s=300) == []


def test_a_cleanup_right_after_a_late_trend_resolves_at_once() -> None:
    assert DISK is not None
    t, x = _hinge(16, 3, 7.0)
    state = PredictState()
    assert state.feed(DISK, t, x, every_s=300)[0].kind == "open"
    after = [t[-1] + 60 * (i + 1) for i in range(30)]
    events = state.feed(DISK, after, [40.0] * len(after), every_s=300)  # cleaned up
    assert [e.kind for e in events] == ["resolve"]
    assert events[0].time - t[-1] <= 20 * 60  # at the next run (eta / 20), not once the drop is old
