"""The predict stage: "disk full in 3 days" findings for resource series.

It runs inside the detect partitions (``vigil.pipeline.stages.detect``) rather than as a
separate consumer, for two reasons: the partition already sees every point of its series in
order and owns them under a lease, so predictions need no second ownership scheme; and a
forecast that depends only on the points (never on when a worker happened to look at the
metric store) makes N workers give exactly the findings of one.

Per resource series (those a prediction rule matches, see ``vigil.metrics.rules``) a
``PredictState`` keeps the last 72 hours as 5-minute means (864 float32, about 3.5 KiB, saved
with the detector state). A series seen for the first time is seeded from the metric store
(the 72 hours before its first point), so a rule added later forecasts at once.

Forecasts run on data time, when a 5-minute bucket completes and the series' next run is due,
not per point:

* while a prediction is open, again after ``eta / 20`` (between ``every_s`` and an hour), so
  "exhausted in 4 h" is re-checked every 12 minutes and "in 5 days" hourly;
* otherwise after ``every_s`` doubling up to an hour while the series shows no trend, and at
  once when a cheap check sees a trend start (below).

What is forecast (``forecast_resource``): a resource that was flat for a day and started
filling two hours ago gives no trend over the whole window (a hinge, not a line). So the last
6 h, 3 h and 90 minutes are looked at first, each only if its rise is more than
``ONSET_FACTOR`` times the spread (interquartile range) of the 12 h or more of history before
it -- a new trend that dwarfs the series' usual movement, where a phase of a daily cycle does
not -- and the one whose trend fits best (R²) is used (the shortest holds only the new trend
once it is 90 minutes old). Otherwise ``forecast_exhaustion`` over the whole history, used only
when its fit spans a day or more: over less, the rising half of a daily cycle (or the rise
after its nightly fall, which the forecaster takes for a clean-up) looks exactly like a leak.
So a new series, or one just cleaned up, is forecast after a day, unless a new trend stands out
as above.

A prediction opens when the forecast fits (R² at least ``MIN_FIT_QUALITY``), the threshold is
due within the rule's horizon (7 days by default), and even the slow end of the 90% interval
reaches it within 1.5 horizons; a materially different estimate (the predicted instant moved by
more than a quarter of the remaining time, or the severity changed) updates it;
``should_resolve`` (the trend is gone, e.g. after a clean-up, or the threshold is now beyond 1.5
horizons) resolves it.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson

from vigil.analytics.forecast import ExhaustionForecast, forecast_exhaustion, should_resolve
from vigil.domain.findings import Finding
from vigil.metrics.rules import (
    PredictionRule,
    format_eta,
    format_interval,
    format_threshold,
    render_title,
)

BUCKET_S = 300.0
WINDOW_S = 72 * 3600.0
MAX_BUCKETS = int(WINDOW_S / BUCKET_S)
DEFAULT_EVERY_S = 300.0
MAX_RERUN_S = 3600.0
RESOLVE_MARGIN = 1.5  # resolve only beyond 1.5 horizons, so an estimate near the edge does not flap
UPDATE_CHANGE = 0.25  # share of the remaining time the predicted instant must move to update
CONFIDENCE = 0.90
MIN_FIT_QUALITY = 0.5  # R² of the trend below which a forecast does not open a prediction
ONSET_FACTOR = 4.0  # a recent rise must exceed this many interquartile ranges of the history
RECENT_WINDOWS = (72, 36, 18)  # buckets: 6 h, 3 h, 90 minutes
MIN_OLDER = 144  # buckets (12 h) of history before a recent window needed to judge its rise
MIN_FIT_SPAN_S = 24 * 3600.0  # a trend over the whole history must span a day (a daily cycle)

EventKind = Literal["open", "update", "resolve"]

_MAGIC = b"VP1"
_HEADER = struct.Struct("<3sI")


@dataclass(frozen=True, slots=True)
class PredictionEvent:
    kind: EventKind
    time: float  # data time of the forecast (end of the last complete bucket), seconds
    forecast: ExhaustionForecast | None  # in the series' own units (see ``_to_series_units``)
    opened_ns: int
    reason: str | None = None  # why a prediction resolved


def severity_for(eta_s: float) -> str:
    if eta_s <= 4 * 3600:
        return "critical"
    if eta_s <= 24 * 3600:
        return "high"
    if eta_s <= 3 * 86400:
        return "medium"
    return "low"


class PredictState:
    """The recent history of one resource series and its prediction's lifecycle."""

    __slots__ = (
        "cur_bucket",
        "cur_n",
        "cur_sum",
        "first_bucket",
        "misses",
        "next_run",
        "opened_ns",
        "reported_at",
        "reported_eta",
        "reported_severity",
        "reported_title",
        "values",
    )

    def __init__(self) -> None:
        self.first_bucket = -1  # bucket index of values[0]
        self.values = array("f")  # completed bucket means (NaN: no data in that bucket)
        self.cur_bucket = -1
        self.cur_sum = 0.0
        self.cur_n = 0
        self.next_run = -math.inf
        self.misses = 0
        self.opened_ns: int | None = None
        self.reported_at = 0.0
        self.reported_eta = 0.0
        self.reported_severity = ""
        self.reported_title = ""  # the open prediction's title, repeated when it resolves

    @property
    def is_open(self) -> bool:
        return self.opened_ns is not None

    # --- history ---------------------------------------------------------------------------

    def _close_bucket(self, new_bucket: int) -> None:
        if self.cur_bucket >= 0 and self.cur_n:
            if (
                self.first_bucket < 0
                or self.cur_bucket - (self.first_bucket + len(self.values)) >= MAX_BUCKETS
            ):
                self.first_bucket = self.cur_bucket
                self.values = array("f")
            gap = self.cur_bucket - (self.first_bucket + len(self.values))
            if gap > 0:
                self.values.extend([math.nan] * gap)
            self.values.append(self.cur_sum / self.cur_n)
            excess = len(self.values) - MAX_BUCKETS
            if excess > 0:
                del self.values[:excess]
                self.first_bucket += excess
        self.cur_bucket = new_bucket
        self.cur_sum = 0.0
        self.cur_n = 0

    def seed(self, times: Sequence[float], values: Sequence[float]) -> None:
        """History from the metric store (bucket means), older than anything fed so far."""
        for t, x in zip(times, values, strict=True):
            if math.isfinite(x):
                self._add(t, x)

    def _add(self, t: float, x: float) -> bool:
        """Add a point; True when it closed a bucket."""
        bucket = int(t // BUCKET_S)
        if bucket == self.cur_bucket:
            self.cur_sum += x
            self.cur_n += 1
            return False
        if bucket < self.cur_bucket:
            return False  # late point: the detect stage drops these before we see them
        closed = self.cur_n > 0
        self._close_bucket(bucket)
        self.cur_sum = x
        self.cur_n = 1
        return closed

    def history(self) -> tuple[list[float], list[float]]:
        """Bucket centres and means of the completed buckets."""
        times: list[float] = []
        values: list[float] = []
        base = self.first_bucket
        for i, x in enumerate(self.values):
            if not math.isnan(x):
                times.append((base + i + 0.5) * BUCKET_S)
                values.append(float(x))
        return times, values

    # --- forecasting -------------------------------------------------------------------------

    def feed(
        self, rule: PredictionRule, times: Sequence[float], values: Sequence[float], every_s: float
    ) -> list[PredictionEvent]:
        """Add points (in time order); forecast whenever a bucket completes and a run is due
        (or, with nothing open, a trend seems to start)."""
        events: list[PredictionEvent] = []
        sign = -1.0 if rule.direction == "falling" else 1.0
        for t, x in zip(times, values, strict=True):
            if not math.isfinite(x):
                continue
            if self._add(t, x):
                now = self.cur_bucket * BUCKET_S
                if now >= self.next_run or (self.opened_ns is None and self._onset(sign) is not None):
                    event = self.run(rule, now, every_s)
                    if event is not None:
                        events.append(event)
        return events

    def _onset(self, sign: float) -> int | None:
        """Buckets of the longest recent window whose rise dwarfs the spread before it."""
        y = sign * np.frombuffer(self.values, dtype=np.float32).astype(np.float64)
        return recent_onset(y)

    def forecast(self, rule: PredictionRule, now: float) -> ExhaustionForecast | None:
        times, values = self.history()
        return forecast_resource(times, values, rule, now)

    def run(self, rule: PredictionRule, now: float, every_s: float) -> PredictionEvent | None:
        fc = self.forecast(rule, now)
        event: PredictionEvent | None = None
        if self.opened_ns is None:
            if fc is not None and warrants_prediction(fc, rule):
                self.opened_ns = int(now * 1e9)
                self._reported(now, fc)
                self.misses = 0
                event = PredictionEvent("open", now, fc, self.opened_ns)
            else:
                self.misses += 1
        elif should_resolve(fc, rule.horizon_s * RESOLVE_MARGIN):
            opened = self.opened_ns
            self.opened_ns = None
            self.misses = 0
            reason = "no trend towards the threshold" if fc is None else "threshold beyond the horizon"
            event = PredictionEvent("resolve", now, fc, opened, reason)
        elif fc is not None:
            predicted = now + fc.eta_s
            previously = self.reported_at + self.reported_eta
            moved = abs(predicted - previously) > UPDATE_CHANGE * max(fc.eta_s, 600.0)
            # "in ~4 h" should not still be the word when 2 h are left
            halved = fc.eta_s <= 0.5 * self.reported_eta and self.reported_eta >= 1200.0
            if moved or halved or severity_for(fc.eta_s) != self.reported_severity:
                self._reported(now, fc)
                event = PredictionEvent("update", now, fc, self.opened_ns)
        if self.opened_ns is not None and fc is not None:
            self.next_run = now + min(max(fc.eta_s / 20.0, every_s), MAX_RERUN_S)
        elif self.opened_ns is not None:
            self.next_run = now + every_s
        else:
            self.next_run = now + min(every_s * 2.0 ** min(self.misses, 4), MAX_RERUN_S)
        return event

    def close(self, now: float, reason: str) -> PredictionEvent | None:
        """Resolve an open prediction because the series is no longer predicted (rule change)."""
        if self.opened_ns is None:
            return None
        opened, self.opened_ns = self.opened_ns, None
        return PredictionEvent("resolve", now, None, opened, reason)

    def _reported(self, now: float, fc: ExhaustionForecast) -> None:
        self.reported_at = now
        self.reported_eta = fc.eta_s
        self.reported_severity = severity_for(fc.eta_s)

    # --- persistence -------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        meta = orjson.dumps(
            {
                "first": self.first_bucket,
                "cur": self.cur_bucket,
                "sum": self.cur_sum,
                "n": self.cur_n,
                "next": None if math.isinf(self.next_run) else self.next_run,
                "misses": self.misses,
                "opened": self.opened_ns,
                "at": self.reported_at,
                "eta": self.reported_eta,
                "sev": self.reported_severity,
                "title": self.reported_title,
            }
        )
        return _HEADER.pack(_MAGIC, len(meta)) + meta + self.values.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> PredictState:
        magic, size = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not a serialised PredictState")
        meta: dict[str, Any] = orjson.loads(data[_HEADER.size : _HEADER.size + size])
        state = cls()
        state.first_bucket = int(meta["first"])
        state.cur_bucket = int(meta["cur"])
        state.cur_sum = float(meta["sum"])
        state.cur_n = int(meta["n"])
        state.next_run = -math.inf if meta["next"] is None else float(meta["next"])
        state.misses = int(meta["misses"])
        state.opened_ns = None if meta["opened"] is None else int(meta["opened"])
        state.reported_at = float(meta["at"])
        state.reported_eta = float(meta["eta"])
        state.reported_severity = str(meta["sev"])
        state.reported_title = str(meta.get("title", ""))
        state.values = array("f")
        state.values.frombytes(data[_HEADER.size + size :])
        return state


def _rises(y: npt.NDArray[np.float64], window: int) -> bool:
    """Whether the last ``window`` values rise (median of the last three minus median of the
    first three) by more than ``ONSET_FACTOR`` interquartile ranges of the values before them,
    and still end at the top of the window (a rise followed by a clean-up is no trend)."""
    if len(y) < window + MIN_OLDER:
        return False
    recent, older = y[-window:], y[:-window]
    q25, q75 = np.percentile(older, [25, 75])
    spread = max(float(q75 - q25), 1e-9 * max(abs(float(np.median(older))), 1.0))
    end = float(np.median(recent[-3:]))
    rise = end - float(np.median(recent[:3]))
    return rise > ONSET_FACTOR * spread and end >= float(np.percentile(recent, 75))


def recent_onset(y: npt.NDArray[np.float64]) -> int | None:
    """The longest recent window (in buckets) in which a new trend dwarfs the series' usual
    movement, or None. ``y`` is in the rising direction; NaN (empty buckets) is skipped."""
    y = y[np.isfinite(y)]
    return next((window for window in RECENT_WINDOWS if _rises(y, window)), None)


def forecast_resource(
    times: Sequence[float], values: Sequence[float], rule: PredictionRule, now: float
) -> ExhaustionForecast | None:
    """The forecast of a resource series towards its rule's threshold (see the module
    docstring): the whole history, or a recent window when a new trend started there."""
    if len(times) < 2:
        return None
    sign = -1.0 if rule.direction == "falling" else 1.0
    y = np.asarray(values, dtype=np.float64) * sign
    t = np.asarray(times, dtype=np.float64)
    threshold = sign * rule.threshold
    best: ExhaustionForecast | None = None
    for window in RECENT_WINDOWS:  # longest first: a tie in fit goes to more data
        if not _rises(y, window):
            continue
        fc = forecast_exhaustion(t[-window:], y[-window:], threshold, now=now, confidence=CONFIDENCE)
        if (
            fc is not None
            and fc.fit_quality >= MIN_FIT_QUALITY
            and (best is None or fc.fit_quality > best.fit_quality)
        ):
            best = fc
    if best is None:
        best = forecast_exhaustion(t, y, threshold, now=now, confidence=CONFIDENCE)
        if best is not None and now - best.fit_start < MIN_FIT_SPAN_S:
            return None  # less than a day: the rising half of a daily cycle looks just like this
    return None if best is None else _to_series_units(best, sign)


def warrants_prediction(fc: ExhaustionForecast, rule: PredictionRule) -> bool:
    """Open a prediction: a good fit, due within the horizon, and even the slow end of the 90%
    interval within 1.5 horizons."""
    return (
        fc.fit_quality >= MIN_FIT_QUALITY
        and fc.eta_s <= rule.horizon_s
        and fc.high_s <= rule.horizon_s * RESOLVE_MARGIN
    )


def _to_series_units(fc: ExhaustionForecast, sign: float) -> ExhaustionForecast:
    """A forecast made on negated values (falling series) back in the series' own units, as
    plain Python numbers (it is saved and published as JSON)."""
    return ExhaustionForecast(
        eta_s=float(fc.eta_s),
        low_s=float(fc.low_s),
        high_s=float(fc.high_s),
        trend_per_hour=sign * float(fc.trend_per_hour),
        fit_quality=float(fc.fit_quality),
        fit_start=float(fc.fit_start),
        current=sign * float(fc.current),
        threshold=sign * float(fc.threshold),
        seasonal=bool(fc.seasonal),
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def prediction_finding(
    event: PredictionEvent,
    rule: PredictionRule,
    *,
    key: str,
    measurement: str,
    field: str,
    tags: Mapping[str, str],
    host: str | None,
    service: str | None,
    previous: PredictState | None = None,
) -> Finding:
    """The Finding for a prediction event. A resolve keeps the title and severity the open
    prediction last had (from ``previous``), and says why it resolved in its evidence."""
    fc = event.forecast
    state = {"open": "open", "update": "update", "resolve": "resolved"}[event.kind]
    values = {
        **tags,
        "host": host or tags.get("host", "unknown host"),
        "measurement": measurement,
        "field": field,
        "series": key,
        "threshold": format_threshold(rule.threshold),
        "eta": "",
        "interval": "",
    }
    evidence: dict[str, Any] = {
        "series": key,
        "measurement": measurement,
        "field": field,
        "tags": dict(tags),
        "rule": rule.id,
        "rule_name": rule.name,
        "threshold": rule.threshold,
        "direction": rule.direction,
        "horizon_s": rule.horizon_s,
        "method": "forecast",
        "methods": ["theil_sen_trend"],
        "opened_ns": event.opened_ns,
    }
    if fc is not None:
        exhausted_at_ns = int((event.time + fc.eta_s) * 1e9) if math.isfinite(fc.eta_s) else None
        evidence.update(
            {
                "eta_s": round(float(fc.eta_s), 1),
                "eta_low_s": round(float(fc.low_s), 1),
                "eta_high_s": _finite(round(float(fc.high_s), 1)),
                "confidence": CONFIDENCE,
                "exhausted_at_ns": exhausted_at_ns,
                "trend_per_hour": float(fc.trend_per_hour),
                "current": float(fc.current),
                "observed": float(fc.current),
                "fit_quality": round(float(fc.fit_quality), 4),
                "fit_start_ns": int(fc.fit_start * 1e9),
                "seasonal": bool(fc.seasonal),
            }
        )
        if fc.eta_s < 60:
            values["eta"] = "now"
        else:
            values["eta"] = f"in ~{format_eta(fc.eta_s)}"
            values["interval"] = format_interval(fc.eta_s, fc.low_s, fc.high_s, CONFIDENCE)
    if event.reason:
        evidence["resolved_because"] = event.reason
    if event.kind == "resolve":
        title = (previous.reported_title if previous else "") or render_title(rule.title, values)
        severity = (previous.reported_severity if previous else "") or "low"
        score = 0.0
    else:
        assert fc is not None, "open and update events carry a forecast"
        title = render_title(rule.title, values)
        severity = severity_for(fc.eta_s)
        score = round(min(1.0, max(0.0, 1.0 - float(fc.eta_s) / max(rule.horizon_s, 1.0))), 4)
        if previous is not None:
            previous.reported_title = title[:512]
    return Finding(
        kind="prediction",
        key=key,
        state=state,
        time_ns=int(event.time * 1e9),
        title=title[:512],
        score=score,
        severity=severity,
        host=host,
        service=service,
        evidence=evidence,
    )
