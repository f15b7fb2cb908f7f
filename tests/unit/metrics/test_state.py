"""Series state moves between workers exactly: a detector, gate and prediction restored from
bytes give the same results as ones that never stopped; and the detect stage's small rules."""

from __future__ import annotations

import math

import numpy as np

from vigil.domain.metrics import Point
from vigil.metrics.state import SeriesState
from vigil.pipeline.stages.detect import PartitionConsumer, _SeriesBatch, anomaly_severity, band_deviation
from vigil.pipeline.stages.predict import PredictState


def _series(n: int, seed: int = 0) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    t = 1_700_000_000 + np.arange(n) * 60.0
    x = 20 + 5 * np.sin(t / 3600) + rng.normal(0, 1, n)
    x[n - 30 : n - 25] += 25
    return t.tolist(), x.tolist()


def _fresh() -> SeriesState:
    return SeriesState.new("cpu.usage_user{host=a}", "cpu,host=a", "cpu", "usage_user", {"host": "a"})


def test_restored_state_scores_exactly_like_the_original() -> None:
    t, x = _series(1500)
    original = _fresh()
    original.predict = PredictState()
    half = 900
    first = original.detector.update_many(t[:half], x[:half])
    for ti, score in zip(t[:half], first.score.tolist(), strict=True):
        original.gate.update(ti, score)
    original.mask, original.opened_ns, original.peak = 3, 123, {"score": 0.7, "observed": 1.0}
    original.last_t, original.baseline_minute, original.rule_id = t[half - 1], 42, "default:disk_used"
    data = original.to_bytes()
    restored = SeriesState.from_bytes(data, original.key, original.ident, "cpu", "usage_user", {"host": "a"})
    assert restored.detector.to_bytes() == original.detector.to_bytes()
    assert restored.gate.to_bytes() == original.gate.to_bytes()
    assert (restored.mask, restored.opened_ns, restored.peak) == (3, 123, {"score": 0.7, "observed": 1.0})
    assert (restored.last_t, restored.baseline_minute, restored.rule_id) == (
        t[half - 1],
        42,
        "default:disk_used",
    )
    assert restored.predict is not None
    a = original.detector.update_many(t[half:], x[half:])
    b = restored.detector.update_many(t[half:], x[half:])
    assert np.array_equal(a.score, b.score) and np.array_equal(a.expected, b.expected)
    # the detector's own bytes, the prediction's, and a few hundred bytes of bookkeeping
    overhead = len(data) - len(original.detector.to_bytes()) - len(original.predict.to_bytes())
    assert overhead < 400


def test_new_state_round_trips_with_infinite_last_time() -> None:
    state = _fresh()
    restored = SeriesState.from_bytes(state.to_bytes(), state.key, state.ident, "cpu", "usage_user", {})
    assert restored.last_t == -math.inf and restored.predict is None and restored.opened_ns is None


def test_late_points_are_dropped_in_order() -> None:
    state = _fresh()
    state.last_t = 100.0
    batch = _SeriesBatch("cpu,host=a", Point("cpu", {}, {"host": "a"}, 0), "usage_user")
    batch.times_ns = [99_000_000_000, 101_000_000_000, 100_500_000_000, 102_000_000_000]
    batch.values = [1.0, 2.0, 3.0, 4.0]
    times, values = PartitionConsumer._in_order(state, batch)
    assert times == [101_000_000_000, 102_000_000_000] and values == [2.0, 4.0]


def test_severity_weighs_score_and_distance_from_the_band() -> None:
    assert anomaly_severity(0.65, 0.5) == "low"
    assert anomaly_severity(0.8, 0.5) == "medium"
    assert anomaly_severity(0.65, 2.0) == "medium"
    assert anomaly_severity(0.65, 5.0) == "high"
    assert anomaly_severity(0.95, 0.0) == "high"
    assert band_deviation({"observed": 30.0, "expected": 10.0, "upper": 14.0}) == 5.0
    assert band_deviation({"observed": 1.0, "expected": 1.0, "upper": 1.0}) == 0.0


def test_inventory_and_step_fields_are_not_scored() -> None:
    from vigil.pipeline.stages.detect import DetectOptions, _FieldFilter

    system = _FieldFilter("system", DetectOptions().exclude_fields)
    assert "n_users" in system and "n_cpus" in system and "uptime" in system
    assert "load1" not in system
    mem = _FieldFilter("mem", DetectOptions().exclude_fields)
    assert "total" in mem and "used_percent" not in mem
