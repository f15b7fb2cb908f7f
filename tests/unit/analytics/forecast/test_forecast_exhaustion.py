"""Exhaustion forecasting: leaks, clean-ups, seasonality, no-trend cases, resolution."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.analytics.forecast import forecast_exhaustion, last_level_drop, naive_linear_eta, should_resolve

HOUR = 3600.0
DAY = 86400.0
START = 1_700_006_400.0  # midnight UTC


def grid(days: float, step: float = 600.0) -> np.ndarray:
    return START + np.arange(0.0, days * DAY, step)


def test_known_linear_leak_gives_the_eta_within_tolerance() -> None:
    rng = np.random.default_rng(0)
    t = grid(3)
    y = 40.0 + 0.2 * (t - t[0]) / HOUR + rng.normal(0, 0.3, len(t))  # 0.2 %/h
    f = forecast_exhaustion(t, y, threshold=90.0)
    assert f is not None
    true_eta = (90.0 - (40.0 + 0.2 * (t[-1] - t[0]) / HOUR)) / 0.2 * HOUR
    assert f.eta_s == pytest.approx(true_eta, rel=0.05)
    assert f.low_s <= true_eta <= f.high_s
    assert f.trend_per_hour == pytest.approx(0.2, rel=0.05)
    assert f.fit_quality > 0.9
    assert f.fit_start == t[0]


def test_after_a_clean_up_only_the_new_data_is_used() -> None:
    rng = np.random.default_rng(1)
    t = grid(6)
    hours = (t - t[0]) / HOUR
    y = 30.0 + 0.5 * hours + rng.normal(0, 0.3, len(t))  # fast growth before...
    cleaned = t >= START + 4 * DAY
    y[cleaned] = 20.0 + 0.1 * (hours[cleaned] - hours[cleaned][0]) + rng.normal(0, 0.3, cleaned.sum())
    assert last_level_drop(y) == int(np.argmax(cleaned))
    f = forecast_exhaustion(t, y, threshold=90.0)
    assert f is not None
    assert f.fit_start == t[cleaned][0]
    assert f.trend_per_hour == pytest.approx(0.1, rel=0.1)
    true_eta = (90.0 - (20.0 + 0.1 * (hours[-1] - hours[cleaned][0]))) / 0.1 * HOUR
    assert f.eta_s == pytest.approx(true_eta, rel=0.1)
    naive = naive_linear_eta(t, y, 90.0)
    assert naive is None or abs(naive - true_eta) > abs(f.eta_s - true_eta)


def test_a_single_low_outlier_is_not_a_clean_up() -> None:
    rng = np.random.default_rng(2)
    y = 50.0 + 0.01 * np.arange(500) + rng.normal(0, 0.2, 500)
    y[300] = 5.0
    assert last_level_drop(y) == 0


@pytest.mark.parametrize("slope", [0.0, -0.1])
def test_flat_or_decreasing_series_gives_no_forecast(slope: float) -> None:
    rng = np.random.default_rng(3)
    t = grid(3)
    y = 60.0 + slope * (t - t[0]) / HOUR + rng.normal(0, 1.0, len(t))
    assert forecast_exhaustion(t, y, threshold=90.0) is None


def test_pure_noise_never_looks_like_a_leak() -> None:
    t = grid(3)
    false_alarms = 0
    for seed in range(30):
        y = 60.0 + np.random.default_rng(100 + seed).normal(0, 1.0, len(t))
        false_alarms += forecast_exhaustion(t, y, threshold=90.0) is not None
    assert false_alarms == 0


def test_daily_cycle_with_a_leak_is_de_seasonalised() -> None:
    rng = np.random.default_rng(4)
    t = grid(7)
    hours = (t - t[0]) / HOUR
    swing = 8.0 * np.sin(2 * np.pi * (t % DAY) / DAY)  # peak at 06:00 UTC
    y = 30.0 + 0.1 * hours + swing + rng.normal(0, 0.5, len(t))
    f = forecast_exhaustion(t, y, threshold=80.0)
    assert f is not None and f.seasonal
    assert f.trend_per_hour == pytest.approx(0.1, rel=0.1)
    # the first moment the noise-free trend + cycle touches 80%, searched minute by minute
    future = t[-1] + np.arange(0.0, 40 * DAY, 60.0)
    clean = 30.0 + 0.1 * (future - t[0]) / HOUR + 8.0 * np.sin(2 * np.pi * (future % DAY) / DAY)
    true_eta = float(future[np.argmax(clean >= 80.0)] - t[-1])
    assert f.eta_s == pytest.approx(true_eta, abs=3 * HOUR)
    assert f.low_s <= true_eta <= f.high_s


def test_already_over_the_threshold_is_eta_zero() -> None:
    t = grid(1)
    y = 95.0 + 0.5 * (t - t[0]) / HOUR
    f = forecast_exhaustion(t, y, threshold=90.0)
    assert f is not None and f.eta_s == 0.0


def test_too_little_data_gives_no_forecast() -> None:
    t = grid(0.05)
    assert forecast_exhaustion(t, np.linspace(10, 20, len(t)), threshold=90.0) is None


def test_should_resolve_when_trend_is_gone_or_far_away() -> None:
    rng = np.random.default_rng(5)
    t = grid(3)
    rising = 40.0 + 0.5 * (t - t[0]) / HOUR + rng.normal(0, 0.3, len(t))
    assert not should_resolve(forecast_exhaustion(t, rising, threshold=90.0), horizon_s=7 * DAY)
    flat = 40.0 + rng.normal(0, 0.3, len(t))
    assert should_resolve(forecast_exhaustion(t, flat, threshold=90.0))
    slow = 40.0 + 0.001 * (t - t[0]) / HOUR + rng.normal(0, 0.01, len(t))
    far = forecast_exhaustion(t, slow, threshold=90.0)
    assert far is not None and should_resolve(far, horizon_s=7 * DAY)
