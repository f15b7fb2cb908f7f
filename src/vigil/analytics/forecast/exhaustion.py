"""Time until a resource series (disk %, memory, inodes, pool use...) reaches a threshold.

Method, chosen by ``bench/forecast.py`` against a naive least-squares line over the window:

1. **Start after the last clean-up.** A level drop (median of the next few points well below
   the median of the previous few, by more than the noise and a share of the range) means the
   old data no longer describes the resource: only points after the last drop are fitted.
2. **De-seasonalise.** When the fitted span covers two days or more, an hour-of-day profile of
   the residuals is removed if it explains a real share of their spread.
3. **Robust trend.** Theil–Sen slope (median of pairwise slopes) with its confidence interval,
   on at most ``max_points`` bin means so cost stays bounded; one-off spikes do not bend it.
4. **Crossing.** The first time trend + hour-of-day profile reaches the threshold (so a disk
   that fills by day crosses during the day). The interval comes from the slope's interval
   (widened for autocorrelated residuals) and the residual noise.

No upward trend (slope interval touching zero, or a rise over the fitted span smaller than
the residual noise) means no forecast: ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]
_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class ExhaustionForecast:
    eta_s: float  # seconds from ``now`` until the threshold is reached (0: already there)
    low_s: float  # interval on eta at the requested confidence (90% by default)
    high_s: float  # math.inf when the slope's lower bound is not positive enough to bound it
    trend_per_hour: float  # units of the series per hour
    fit_quality: float  # R² of the trend on the de-seasonalised fitted points
    fit_start: float  # time of the first point used (after the last clean-up)
    current: float  # trend level now, without the seasonal swing
    threshold: float
    seasonal: bool  # a daily profile was removed


def last_level_drop(values: Sequence[float] | FloatArray, window: int = 5, min_share: float = 0.1) -> int:
    """Index where the series restarts after its last sudden fall (0 when there is none).

    A fall counts when the median of the ``window`` points after an index is lower than the
    median of the ``window`` points before it by more than ``min_share`` of the series' range
    and by more than 6 noise units (noise = robust spread of point-to-point changes). Medians
    make one low outlier not count as a clean-up.
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n < 2 * window + 1:
        return 0
    noise = 1.4826 * float(np.median(np.abs(np.diff(v) - np.median(np.diff(v)))))
    span = float(np.percentile(v, 98) - np.percentile(v, 2))
    needed = max(min_share * span, 6.0 * noise)
    if needed <= 0.0:
        return 0
    windows = np.lib.stride_tricks.sliding_window_view(v, window)
    medians = np.median(windows, axis=1)  # medians[i] = median(v[i : i + window])
    before = medians[: n - 2 * window + 1]  # for split index s = i + window
    after = medians[window:]
    drop = before - after
    hits = np.flatnonzero(drop > needed)
    if len(hits) == 0:
        return 0
    # the last run of consecutive hits is the last clean-up; its deepest split is the step
    run_start = hits[-1]
    while run_start > 0 and run_start - 1 in hits:
        run_start -= 1
    run = np.arange(run_start, hits[-1] + 1)
    best = int(run[np.argmax(drop[run])])
    return best + window


def _bin_means(t: FloatArray, y: FloatArray, max_points: int) -> tuple[FloatArray, FloatArray]:
    if len(t) <= max_points:
        return t, y
    edges = np.linspace(0, len(t), max_points + 1).astype(int)
    sums_t = np.add.reduceat(t, edges[:-1])
    sums_y = np.add.reduceat(y, edges[:-1])
    counts = np.diff(edges)
    return sums_t / counts, sums_y / counts


def _hour_profile(t: FloatArray, resid: FloatArray) -> FloatArray | None:
    hours = ((t % _DAY) // 3600).astype(int)
    profile = np.zeros(24)
    for h in range(24):
        sel = resid[hours == h]
        if len(sel) == 0:
            return None
        profile[h] = np.median(sel)
    return profile - np.median(profile)


def _first_crossing(
    now: float, level_now: float, slope: float, threshold: float, profile: FloatArray | None
) -> float:
    """Hours from ``now`` until trend (+ hour-of-day profile) first reaches ``threshold``."""
    if slope <= 0.0:
        return math.inf
    if profile is None:
        return max(threshold - level_now, 0.0) / slope
    # the trend alone brackets the answer: no sooner than when trend + the highest hour of
    # the profile reaches it, no later than a day after trend + the lowest hour does
    first = max(threshold - profile.max() - level_now, 0.0) / slope
    last = max(threshold - profile.min() - level_now, 0.0) / slope + 24.0
    steps = first + np.arange(0.0, last - first + 1.0 / 6.0, 1.0 / 6.0)  # ten-minute steps
    hours_of_day = (((now + steps * 3600.0) % _DAY) // 3600).astype(int)
    reached = np.flatnonzero(level_now + slope * steps + profile[hours_of_day] >= threshold)
    return float(steps[reached[0]]) if len(reached) else last


def forecast_exhaustion(
    times: Sequence[float] | FloatArray,
    values: Sequence[float] | FloatArray,
    threshold: float,
    *,
    now: float | None = None,
    confidence: float = 0.90,
    min_points: int = 12,
    min_span_s: float = 3600.0,
    max_points: int = 200,
) -> ExhaustionForecast | None:
    """Forecast when ``values`` (at ``times``, seconds) reach ``threshold``; None if not rising."""
    t = np.asarray(times, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    start = last_level_drop(y)
    t, y = t[start:], y[start:]
    if len(t) < min_points or t[-1] - t[0] < min_span_s:
        return None
    now = float(t[-1]) if now is None else now
    hours = (t - t[0]) / 3600.0

    profile: FloatArray | None = None
    y_fit = y
    if t[-1] - t[0] >= 2 * _DAY:
        bh, by = _bin_means(hours, y, max_points)
        rough = stats.theilslopes(by, bh)
        resid = y - (rough.intercept + rough.slope * hours)
        candidate = _hour_profile(t, resid)
        if candidate is not None:
            seasonal_part = candidate[((t % _DAY) // 3600).astype(int)]
            mad_before = float(np.median(np.abs(resid - np.median(resid))))
            mad_after = float(np.median(np.abs(resid - seasonal_part - np.median(resid - seasonal_part))))
            if mad_after < 0.8 * mad_before:
                profile = candidate
                y_fit = y - seasonal_part

    bh, by = _bin_means(hours, y_fit, max_points)
    fit = stats.theilslopes(by, bh, alpha=confidence)
    slope, slope_low, slope_high = float(fit.slope), float(fit.low_slope), float(fit.high_slope)
    # Theil–Sen's interval assumes independent residuals; real ones drift together for hours,
    # which makes it far too narrow. Widen it by the usual AR(1) variance inflation factor.
    bin_resid = by - (float(np.median(by - slope * bh)) + slope * bh)
    bin_resid = bin_resid - bin_resid.mean()
    lag0, lag1 = bin_resid[:-1], bin_resid[1:]
    denominator = math.sqrt(float(np.dot(lag0, lag0)) * float(np.dot(lag1, lag1)))
    if len(bin_resid) > 3 and denominator > 0.0:
        rho = float(np.dot(lag0, lag1)) / denominator
        inflation = math.sqrt((1.0 + rho) / (1.0 - rho)) if -1.0 < rho < 0.9 else math.sqrt(19.0)
        inflation = max(1.0, inflation)
        slope_low = slope - inflation * (slope - slope_low)
        slope_high = slope + inflation * (slope_high - slope)
    if slope <= 0.0 or slope_low <= 0.0:
        return None
    intercept = float(np.median(y_fit - slope * hours))
    resid = y_fit - (intercept + slope * hours)
    total = float(np.sum((y_fit - y_fit.mean()) ** 2))
    quality = 1.0 - float(np.sum(resid**2)) / total if total > 0 else 0.0
    noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    # a slope whose whole rise over the fitted span stays inside the noise is not a trend,
    # whatever its interval says (one flat series in twenty would pass the 90% test alone)
    if slope * hours[-1] < noise:
        return None

    now_h = (now - t[0]) / 3600.0
    level_now = intercept + slope * now_h
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    eta_h = _first_crossing(now, level_now, slope, threshold, profile)
    low_h = _first_crossing(now, level_now + z * noise, slope_high, threshold, profile)
    high_h = _first_crossing(now, level_now - z * noise, slope_low, threshold, profile)
    return ExhaustionForecast(
        eta_s=eta_h * 3600.0,
        low_s=low_h * 3600.0,
        high_s=high_h * 3600.0,
        trend_per_hour=slope,
        fit_quality=quality,
        fit_start=float(t[0]),
        current=float(level_now),
        threshold=threshold,
        seasonal=profile is not None,
    )


def should_resolve(current: ExhaustionForecast | None, horizon_s: float = 7 * _DAY) -> bool:
    """Whether an open "will be exhausted" prediction should be resolved, given a fresh
    forecast: the upward trend is gone (``None``, e.g. after a clean-up or a flat spell) or the
    threshold is now further away than the horizon the prediction was raised for."""
    return current is None or current.eta_s > horizon_s


def naive_linear_eta(
    times: Sequence[float] | FloatArray, values: Sequence[float] | FloatArray, threshold: float
) -> float | None:
    """The reference: least-squares line over the whole window, seconds until it meets the
    threshold from the last point (None if it is not rising). Used by the benchmark."""
    t = np.asarray(times, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if len(t) < 2:
        return None
    slope, intercept = np.polyfit(t - t[0], y, 1)
    if slope <= 0:
        return None
    level_now = intercept + slope * (t[-1] - t[0])
    return float(max(threshold - level_now, 0.0) / slope)
