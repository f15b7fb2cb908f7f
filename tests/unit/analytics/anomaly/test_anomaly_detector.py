"""The univariate detector: each test on its own, the ensemble, seasonality, state moves."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.analytics.anomaly import DetectorConfig, UnivariateDetector

START = 1_700_000_000.0  # a Tuesday, 22:13 UTC
STEP = 300.0  # five-minute samples
DAY_POINTS = int(86400 / STEP)


def noise_series(n: int, seed: int = 0, level: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return START + STEP * np.arange(n), level + rng.normal(0.0, 1.0, n)


def daily_cycle(days: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = START + STEP * np.arange(days * DAY_POINTS)
    return t, 50.0 + 20.0 * np.sin(2 * np.pi * t / 86400.0) + rng.normal(0.0, 1.0, len(t))


def test_spike_in_noise_is_flagged_with_a_band_around_the_normal_level() -> None:
    t, y = noise_series(3000)
    y[2500] += 12.0
    result = UnivariateDetector().update_many(t, y)
    spike = result.result(2500)
    assert spike.is_anomalous
    assert {"zscore", "iqr"} <= set(spike.methods)
    assert spike.lower < 10.0 < spike.upper  # the band is about the normal level...
    assert spike.upper < spike.value  # ...and the spike is above it
    assert abs(spike.expected - 10.0) < 0.5
    assert spike.upper - spike.lower < 12.0  # about ±4σ with σ = 1
    assert spike.score > result.score[2400:2500].max()
    assert spike.onset > 0.0


def test_level_shift_is_caught_by_the_shift_detector_and_then_learnt() -> None:
    t, y = noise_series(4000, seed=1)
    y[2000:] += 3.0  # 3σ: too small for the point tests alone
    result = UnivariateDetector().update_many(t, y)
    shift_points = np.flatnonzero(result.fired & 4)
    assert len(shift_points) and 2000 <= shift_points[0] < 2030
    assert result.is_anomalous[2000:2030].any()
    # the new level is adopted: the band is centred on it soon after
    assert abs(result.expected[2200] - 13.0) < 0.6
    assert not result.is_anomalous[3000:].any()


def test_slow_upward_leak_is_flagged_by_trend_detection() -> None:
    t, y = noise_series(5000, seed=2)
    y[2500:] += 0.004 * np.arange(2500)  # 0.4σ per 100 points, never a big step
    result = UnivariateDetector().update_many(t, y)
    assert not result.is_anomalous[:2500].any()
    trend_points = np.flatnonzero(result.fired & 8)
    assert len(trend_points) and trend_points[0] < 3200
    first = result.result(int(trend_points[0]))
    assert first.is_anomalous and "trend" in first.methods


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_clean_daily_cycle_produces_no_anomaly_after_warm_up(seed: int) -> None:
    t, y = daily_cycle(days=10, seed=seed)
    detector = UnivariateDetector()
    result = detector.update_many(t, y)
    assert detector.seasonality == "daily"
    after_warm_up = slice(2 * DAY_POINTS, None)
    assert not result.is_anomalous[after_warm_up].any()
    assert result.score[after_warm_up].max() < 0.5


def test_daily_seasonality_is_learnt_so_a_dip_at_noon_is_caught() -> None:
    t, y = daily_cycle(days=6, seed=5)
    hours = (t % 86400) / 3600
    dip = (t > START + 5 * 86400) & (np.abs(hours - 6.0) < 0.2)  # the daily peak, flattened
    y[dip] -= 15.0
    result = UnivariateDetector().update_many(t, y)
    assert result.is_anomalous[dip].any()
    # the return to normal may be a second (level) change; nothing else may fire
    event = dip.copy()
    event[np.flatnonzero(dip)[0] : np.flatnonzero(dip)[-1] + 24] = True
    assert not result.is_anomalous[2 * DAY_POINTS :][~event[2 * DAY_POINTS :]].any()


def test_flat_noise_is_not_called_seasonal() -> None:
    t, y = noise_series(4 * DAY_POINTS, seed=3)
    detector = UnivariateDetector()
    detector.update_many(t, y)
    assert detector.seasonality == "none"


def test_update_many_equals_repeated_update() -> None:
    t, y = daily_cycle(days=3, seed=7)
    y[500] += 30.0
    y[700:] += 5.0
    batch = UnivariateDetector().update_many(t, y)
    one_by_one = UnivariateDetector()
    for i in range(len(t)):
        assert one_by_one.update(float(t[i]), float(y[i])) == batch.result(i)


def test_serialised_state_continues_exactly_like_an_uninterrupted_run() -> None:
    t, y = daily_cycle(days=4, seed=8)
    y[800] -= 25.0
    whole = UnivariateDetector().update_many(t, y)
    first = UnivariateDetector()
    first.update_many(t[:600], y[:600])
    data = first.to_bytes()
    assert len(data) <= 2048
    resumed = UnivariateDetector.from_bytes(data)
    rest = resumed.update_many(t[600:], y[600:])
    for column in ("score", "onset", "is_anomalous", "expected", "lower", "upper", "fired", "evidence"):
        assert np.array_equal(getattr(rest, column), getattr(whole, column)[600:]), column
    assert resumed.to_bytes() == UnivariateDetector.from_bytes(resumed.to_bytes()).to_bytes()


def test_serialisation_keeps_a_custom_config() -> None:
    config = DetectorConfig(z_threshold=5.0, warmup_points=50)
    restored = UnivariateDetector.from_bytes(UnivariateDetector(config).to_bytes())
    assert restored.config == config
    with pytest.raises(ValueError):
        UnivariateDetector.from_bytes(b"nonsense" * 10)


def test_nan_values_are_skipped_without_touching_state() -> None:
    t, y = noise_series(300, seed=4)
    with_gap = y.copy()
    with_gap[100] = np.nan
    a = UnivariateDetector()
    gapped = a.update_many(t, with_gap)
    b = UnivariateDetector()
    b.update_many(np.delete(t, 100), np.delete(y, 100))
    assert gapped.score[100] == 0.0 and not gapped.is_anomalous[100]
    assert a.to_bytes() == b.to_bytes()


def test_warm_up_points_never_alert() -> None:
    t, y = noise_series(200, seed=6)
    y[50] += 100.0
    result = UnivariateDetector(DetectorConfig(warmup_points=100)).update_many(t, y)
    assert not result.is_anomalous[:101].any()
    assert result.score[:101].max() == 0.0
