"""Resource exhaustion forecasting: when will a rising series reach its threshold?

``forecast_exhaustion(times, values, threshold)`` (times in seconds) returns an
``ExhaustionForecast`` -- eta in seconds with a 90% interval, the trend per hour, the fit
quality and where the fit started (after the last clean-up) -- or ``None`` when there is no
upward trend. ``should_resolve(fresh_forecast)`` tells the predict stage when an open
prediction is no longer warranted. Pure code: no I/O.
"""

from vigil.analytics.forecast.exhaustion import (
    ExhaustionForecast,
    forecast_exhaustion,
    last_level_drop,
    naive_linear_eta,
    should_resolve,
)

__all__ = [
    "ExhaustionForecast",
    "forecast_exhaustion",
    "last_level_drop",
    "naive_linear_eta",
    "should_resolve",
]
