"""The streaming univariate detector: seasonal robust baseline + an ensemble of tests.

Everything here is O(1) per point and per series. The detector's whole state is one small
``array('d')`` of scalars plus two ``array('f')`` seasonal profiles (24 hour-of-day bins and
168 hour-of-week bins), so it serialises to about 1.1 KiB and can move between workers.

How a point is scored
---------------------
1. **Baseline.** Three robust Holt-Winters-style models run side by side: flat (a level),
   daily (level + 24-bin hour-of-day profile) and weekly (level + 168-bin hour-of-week
   profile). Profiles are piecewise linear between bin centres, so a smooth cycle is followed
   inside the hour. Every update is Huber-clipped (a spike moves nothing by more than
   ``clip`` scales). Each model keeps an EWMA of its absolute one-step error; a seasonal model
   is used only once it has seen enough days *and* its error is clearly lower than the simpler
   model's -- that is the automatic seasonality detection.
2. **Tests** on the chosen model's residual ``r`` and robust scale ``σ`` (1.2533 × the mean
   absolute error, i.e. σ for Gaussian noise):
   ``zscore`` (|r|/σ), ``iqr`` (Tukey fences on streaming residual quartiles), ``level_shift``
   (two-sided CUSUM of clipped z; when it fires the levels jump to the recent residual mean so
   that a new level is learnt at once instead of alerting for hours) and ``trend`` (difference
   of a fast and a slow EWMA of the de-seasonalised value against its own typical size).
3. **Ensemble.** Each test reports evidence ``e`` (1.0 = its own threshold). The point tests
   (``zscore``, ``iqr``) need agreement (``min_agreement``) or strong evidence
   (``e >= strong_evidence``); the accumulating tests (``level_shift``, ``trend``) already
   demand persistence and count on their own. That gives ``is_anomalous`` and ``methods``.
4. **Score.** The surprise ``log(1 + |z|)`` is smoothed over a few points (``surprise_rate``)
   and compared with its own long-run mean and spread for this series
   (``calibration_rate``): ``level`` = how many SDs above its usual surprise the series is
   now. A noisy, heavy-tailed series therefore needs a much larger z than a quiet one to
   score high. ``score = level² / (level² + score_scale²)`` (0.5 at ``score_scale`` SDs).
5. **Onset.** ``onset = 1 - exp(-(level - peak))`` where ``peak`` is the highest level of the
   recent past (decaying by ``onset_decay`` per point), else 0: non-zero only when the
   series does something more unusual than anything lately -- the start of an event, once
   (while the level climbs point after point, only gains over that run's best count).
   NAB thresholds this stream (it rewards the first detection and charges every later row).
"""

from __future__ import annotations

import math
import struct
from array import array
from dataclasses import astuple, dataclass, fields

import numpy as np
import numpy.typing as npt

METHOD_NAMES: tuple[str, ...] = ("zscore", "iqr", "level_shift", "trend")
_ZSCORE, _IQR, _SHIFT, _TREND = 1, 2, 4, 8

_DAY = 86400.0
_WEEK = 7 * _DAY
_SQRT_HALF_PI = 1.2533141373155001  # σ / E|r| for Gaussian noise


def methods_from_mask(mask: int) -> tuple[str, ...]:
    """Names of the tests encoded in a ``fired`` bit mask."""
    return tuple(name for bit, name in enumerate(METHOD_NAMES) if mask >> bit & 1)


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Tuning of ``UnivariateDetector``. Rates are per point unless said otherwise.

    The defaults are the ones Vigil runs with and the ones benchmarked on NAB. Nothing in
    them is specific to a series; ``scale_rate``, ``calibration_rate`` and ``onset_decay``
    were chosen by sweeping a few values over the whole NAB corpus we have (31 files), so the
    NAB score is somewhat optimistic for unseen series (see bench/RESULTS.md).
    """

    level_rate: float = 0.05
    scale_rate: float = 0.01
    season_rate_per_day: float = 0.3  # share of a profile bin relearnt per day
    clip: float = 3.0  # Huber clip of baseline updates, in scales
    season_margin: float = 0.8  # a seasonal model must have at most this share of the error
    z_threshold: float = 4.0
    iqr_k: float = 3.0
    quantile_rate: float = 0.05  # step of the streaming quartiles, in scales
    cusum_k: float = 0.75
    cusum_h: float = 12.0
    trend_fast: float = 0.02
    trend_slow: float = 0.002
    trend_threshold: float = 6.0
    min_agreement: int = 2
    strong_evidence: float = 1.5
    warmup_points: int = 100
    scale_floor: float = 0.01  # minimum scale, as a share of the long-run spread of the values
    surprise_rate: float = 0.3  # EWMA rate of the short-term surprise log(1 + |z|)
    calibration_rate: float = 0.0003  # rate of its long-run mean/variance (the series' normal)
    score_scale: float = 4.0  # calibrated surprise (in SDs) at which score = 0.5
    onset_decay: float = 0.9998  # per-point decay of the recent maximum that onset must beat

    def to_tuple(self) -> tuple[float, ...]:
        return tuple(float(v) for v in astuple(self))


_CONFIG_FIELDS = tuple(f.name for f in fields(DetectorConfig))
_INT_FIELDS = frozenset(f.name for f in fields(DetectorConfig) if f.type in ("int", int))


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """What one point produced: the evidence a finding carries."""

    time: float
    value: float
    score: float  # 0..1: how unusual the recent behaviour is for this series
    onset: float  # 0..1: the score where it beats the series' recent peak, else 0 (new events)
    is_anomalous: bool
    expected: float
    lower: float
    upper: float
    methods: tuple[str, ...]  # tests that fired on this point
    evidence: float  # strongest test's evidence, 1.0 = its own threshold


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Column-wise results of ``update_many``; ``result(i)`` gives row ``i`` as a ``DetectionResult``."""

    times: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    score: npt.NDArray[np.float64]
    onset: npt.NDArray[np.float64]
    is_anomalous: npt.NDArray[np.bool_]
    expected: npt.NDArray[np.float64]
    lower: npt.NDArray[np.float64]
    upper: npt.NDArray[np.float64]
    fired: npt.NDArray[np.uint8]  # bit mask over METHOD_NAMES
    evidence: npt.NDArray[np.float64]  # strongest test's evidence, 1.0 = its threshold

    def __len__(self) -> int:
        return len(self.score)

    def result(self, i: int) -> DetectionResult:
        return DetectionResult(
            time=float(self.times[i]),
            value=float(self.values[i]),
            score=float(self.score[i]),
            onset=float(self.onset[i]),
            is_anomalous=bool(self.is_anomalous[i]),
            expected=float(self.expected[i]),
            lower=float(self.lower[i]),
            upper=float(self.upper[i]),
            methods=methods_from_mask(int(self.fired[i])),
            evidence=float(self.evidence[i]),
        )


# Indices into the scalar state array. Keeping every scalar in one array('d') instead of
# attributes keeps a series at ~1 KiB in memory and makes serialisation one memcpy.
(
    _N,
    _T_FIRST,
    _T_LAST,
    _LF,
    _LD,
    _LW,
    _EF,
    _ED,
    _EW,
    _Q25,
    _Q75,
    _CP,
    _CN,
    _RR,
    _TF,
    _TS,
    _TSCALE,
    _LSLOW,
    _SPREAD,
    _SUR,
    _SUR_MEAN,
    _SUR_VAR,
    _PEAK,
    _LDS,
    _LWS,
    _MODE,
    _RUN,
    _NSTATE,
) = range(28)

_MAGIC = b"VGA1"
_HEADER = struct.Struct("<4sHHH")


class UnivariateDetector:
    """Streaming anomaly detector for one series.

    Feed points in time order with ``update(t, x)`` or ``update_many(times, values)`` (same
    results, the batch is faster). Timestamps are **seconds since the Unix epoch, UTC**, as
    floats (divide nanoseconds by 1e9); hour-of-day and day-of-week come from them. NaN values
    are ignored (their result has score 0 and no band change). Points must not go back in
    time; equal timestamps are fine.
    """

    __slots__ = ("_config", "_daily", "_params", "_state", "_weekly")

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self._config = config or DetectorConfig()
        self._params = self._config.to_tuple()
        self._state = array("d", bytes(8 * _NSTATE))
        self._daily = array("f", bytes(4 * 24))
        self._weekly = array("f", [math.nan]) * 168

    @property
    def config(self) -> DetectorConfig:
        return self._config

    @property
    def points_seen(self) -> int:
        return int(self._state[_N])

    @property
    def seasonality(self) -> str:
        """The baseline in use now: ``"none"``, ``"daily"`` or ``"weekly"``."""
        return ("none", "daily", "weekly")[self._season_choice()]

    def _season_choice(self) -> int:
        return int(self._state[_MODE])

    def update(self, t: float, x: float) -> DetectionResult:
        """Score one point and learn from it (the same loop as ``update_many``, minus numpy)."""
        t, x = float(t), float(x)
        onset, score, flag, expected, lower, upper, fired, evidence = _run(
            self._params, self._state, self._daily, self._weekly, [t], [x]
        )
        return DetectionResult(
            time=t,
            value=x,
            score=score[0],
            onset=onset[0],
            is_anomalous=flag[0],
            expected=expected[0],
            lower=lower[0],
            upper=upper[0],
            methods=methods_from_mask(fired[0]),
            evidence=evidence[0],
        )

    def update_many(self, times: npt.ArrayLike, values: npt.ArrayLike) -> BatchResult:
        """Score and learn a batch of points; identical to calling ``update`` on each in turn."""
        t_arr = np.asarray(times, dtype=np.float64)
        x_arr = np.asarray(values, dtype=np.float64)
        if t_arr.shape != x_arr.shape or t_arr.ndim != 1:
            raise ValueError("times and values must be 1-D and of equal length")
        cols = _run(self._params, self._state, self._daily, self._weekly, t_arr.tolist(), x_arr.tolist())
        onset, score, flag, expected, lower, upper, fired, evidence = cols
        return BatchResult(
            times=t_arr,
            values=x_arr,
            score=np.array(score, dtype=np.float64),
            onset=np.array(onset, dtype=np.float64),
            is_anomalous=np.array(flag, dtype=np.bool_),
            expected=np.array(expected, dtype=np.float64),
            lower=np.array(lower, dtype=np.float64),
            upper=np.array(upper, dtype=np.float64),
            fired=np.array(fired, dtype=np.uint8),
            evidence=np.array(evidence, dtype=np.float64),
        )

    def to_bytes(self) -> bytes:
        """Compact state (~1.1 KiB) that ``from_bytes`` restores exactly, config included."""
        header = _HEADER.pack(_MAGIC, len(self._params), _NSTATE, len(self._weekly))
        return (
            header
            + array("d", self._params).tobytes()
            + self._state.tobytes()
            + self._daily.tobytes()
            + self._weekly.tobytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> UnivariateDetector:
        magic, n_params, n_state, n_weekly = _HEADER.unpack_from(data)
        if magic != _MAGIC or n_params != len(_CONFIG_FIELDS) or n_state != _NSTATE or n_weekly != 168:
            raise ValueError("not a serialised UnivariateDetector of this version")
        offset = _HEADER.size
        params = array("d")
        params.frombytes(data[offset : offset + 8 * n_params])
        offset += 8 * n_params
        values = dict(zip(_CONFIG_FIELDS, params, strict=True))
        kwargs: dict[str, float] = {name: values[name] for name in _CONFIG_FIELDS}
        for name in _INT_FIELDS:
            kwargs[name] = int(kwargs[name])
        config = DetectorConfig(**kwargs)  # type: ignore[arg-type]
        detector = cls(config)
        detector._state = array("d")
        detector._state.frombytes(data[offset : offset + 8 * n_state])
        offset += 8 * n_state
        detector._daily = array("f")
        detector._daily.frombytes(data[offset : offset + 4 * 24])
        offset += 4 * 24
        detector._weekly = array("f")
        detector._weekly.frombytes(data[offset : offset + 4 * 168])
        return detector


def _run(
    params: tuple[float, ...],
    state: array[float],
    daily: array[float],
    weekly: array[float],
    times: list[float],
    values: list[float],
) -> tuple[
    list[float], list[float], list[bool], list[float], list[float], list[float], list[int], list[float]
]:
    """The per-point loop. Long on purpose: locals are what make CPython fast here."""
    (
        level_rate,
        scale_rate,
        season_rate,
        clip,
        season_margin,
        z_thr,
        iqr_k,
        q_rate,
        cusum_k,
        cusum_h,
        trend_fast,
        trend_slow,
        trend_thr,
        min_agreement,
        strong,
        warmup,
        floor_share,
        surprise_rate,
        calib_rate,
        score_scale,
        onset_decay,
    ) = params
    (n, t_first, t_last, lf, ld, lw, ef, ed, ew, q25, q75, cp, cn, rr, tf, ts, tscale) = state[:17]
    (lslow, spread, sur, sur_mean, sur_var, peak, lds, lws, mode, run) = state[17:_NSTATE]
    k2 = score_scale * score_scale
    out_onset: list[float] = []

    out_score: list[float] = []
    out_flag: list[bool] = []
    out_exp: list[float] = []
    out_lo: list[float] = []
    out_hi: list[float] = []
    out_fired: list[int] = []
    out_ev: list[float] = []
    isnan = math.isnan
    nan = math.nan
    # bound methods and functions as locals: attribute lookups dominate a loop this size
    out_score_add = out_score.append
    out_onset_add = out_onset.append
    out_flag_add = out_flag.append
    out_exp_add = out_exp.append
    out_lo_add = out_lo.append
    out_hi_add = out_hi.append
    out_fired_add = out_fired.append
    out_ev_add = out_ev.append
    log1p, sqrt, exp = math.log1p, math.sqrt, math.exp

    for t, x in zip(times, values, strict=True):
        if isnan(x):
            out_score_add(0.0)
            out_onset_add(0.0)
            out_flag_add(False)
            out_exp_add(nan)
            out_lo_add(nan)
            out_hi_add(nan)
            out_fired_add(0)
            out_ev_add(0.0)
            continue
        n += 1.0
        if n == 1.0:
            t_first = t_last = t
            lf = ld = lw = lds = lws = tf = ts = lslow = x
            out_score_add(0.0)
            out_onset_add(0.0)
            out_flag_add(False)
            out_exp_add(x)
            out_lo_add(x)
            out_hi_add(x)
            out_fired_add(0)
            out_ev_add(0.0)
            continue
        dt_h = (t - t_last) / 3600.0
        if dt_h > 1.0:
            dt_h = 1.0
        elif dt_h < 0.0:
            dt_h = 0.0
        t_last = t
        elapsed = t - t_first

        # --- seasonal positions (piecewise-linear between bin centres) ---
        tod = (t % _DAY) / 3600.0 - 0.5
        if tod < 0.0:
            tod += 24.0
        i0 = int(tod)
        f = tod - i0
        i1 = i0 + 1 if i0 < 23 else 0
        how = ((t // _DAY + 3.0) % 7.0) * 24.0 + tod
        if how >= 168.0:
            how -= 168.0
        j0 = int(how)
        g = how - j0
        j1 = j0 + 1 if j0 < 167 else 0
        if isnan(weekly[j0]):
            weekly[j0] = daily[i0]
        if isnan(weekly[j1]):
            weekly[j1] = daily[i1]
        s_d = (1.0 - f) * daily[i0] + f * daily[i1]
        s_w = (1.0 - g) * weekly[j0] + g * weekly[j1]

        # --- predictions of the three baselines and the choice between them ---
        r_f = x - lf
        r_d = x - ld - s_d
        r_w = x - lw - s_w
        # seasonality is adopted when it clearly beats the simpler model and dropped only when
        # it stops helping at all, so the choice does not flap
        if mode == 0.0:
            if elapsed >= 1.5 * _DAY and ed < season_margin * ef:
                mode = 1.0
        elif mode == 1.0:
            if ed >= 0.95 * ef:
                mode = 0.0
            elif elapsed >= 8.0 * _DAY and ew < season_margin * ed:
                mode = 2.0
        elif ew >= 0.95 * ed:
            mode = 1.0
        choice = int(mode)
        if choice == 0:
            r, err, season = r_f, ef, 0.0
        elif choice == 1:
            r, err, season = r_d, ed, s_d
        else:
            r, err, season = r_w, ew, s_w
        expected = x - r
        floor = floor_share * spread
        if floor < 1e-9 * abs(x) + 1e-12:
            floor = 1e-9 * abs(x) + 1e-12
        sigma = _SQRT_HALF_PI * (err if err > floor else floor)
        z = r / sigma
        warm = n > warmup

        # --- tests ---
        fired = 0
        e_z = abs(z) / z_thr
        if e_z >= 1.0:
            fired |= _ZSCORE
        iqr = q75 - q25
        if iqr < 0.5 * sigma:
            iqr = 0.5 * sigma
        if r > q75:
            e_iqr = (r - q75) / (iqr_k * iqr)
        elif r < q25:
            e_iqr = (q25 - r) / (iqr_k * iqr)
        else:
            e_iqr = 0.0
        if e_iqr >= 1.0:
            fired |= _IQR
        zc = z if -4.0 <= z <= 4.0 else (4.0 if z > 0 else -4.0)
        cp = cp + zc - cusum_k
        if cp < 0.0:
            cp = 0.0
        cn = cn - zc - cusum_k
        if cn < 0.0:
            cn = 0.0
        e_cusum = (cp if cp > cn else cn) / cusum_h
        shift = e_cusum >= 1.0
        if shift:
            fired |= _SHIFT
        y = x - season
        tf += (y - tf) * (trend_fast if trend_fast * n > 1.0 else 1.0 / n)
        ts += (y - ts) * (trend_slow if trend_slow * n > 1.0 else 1.0 / n)
        d = abs(tf - ts)
        e_trend = d / (trend_thr * tscale) if tscale > 0.0 else 0.0
        if e_trend >= 1.0 and n > 4.0 / trend_slow:
            fired |= _TREND
        else:
            e_trend = e_trend if n > 4.0 / trend_slow else 0.0

        # --- ensemble ---
        e_max = e_z
        if e_iqr > e_max:
            e_max = e_iqr
        if e_cusum > e_max:
            e_max = e_cusum
        if e_trend > e_max:
            e_max = e_trend
        agreeing = (fired & 1) + (fired >> 1 & 1) + (fired >> 2 & 1) + (fired >> 3 & 1)
        # point tests need agreement (or strong evidence); the accumulating tests already
        # demand persistence, so they count on their own
        anomalous = warm and (agreeing >= min_agreement or e_max >= strong or fired & (_SHIFT | _TREND) != 0)

        # --- calibrated score: how unusual the recent surprise is *for this series* ---
        a = log1p(abs(z))
        sur += surprise_rate * (a - sur)
        level = (sur - sur_mean) / sqrt(sur_var) if warm and sur_var > 0.0 else 0.0
        score = level * level / (level * level + k2) if level > 0.0 else 0.0
        # onset: how far the level beats the recent peak; while it keeps beating it point
        # after point (one climbing event), only gains over the best of that run count
        novelty = level - peak if level > peak and level > 0.0 else 0.0
        if novelty > 0.0:
            gain = novelty - run if run > 0.0 else novelty
            onset = 1.0 - exp(-gain) if gain > 0.0 else 0.0
            if novelty > run:
                run = novelty
        else:
            onset = 0.0
            run = 0.0
        # the memory of recent peaks starts once the long-run calibration has settled: levels
        # measured against a spread estimated from a few hundred points are inflated, and a
        # peak remembered from then would hide real events for a long time
        if n > 4.0 * warmup:
            peak *= onset_decay
            if level > peak:
                peak = level
        c_rate = calib_rate if calib_rate * n > 1.0 else 1.0 / n
        dev = sur - sur_mean
        sur_mean += c_rate * dev
        sur_var = (1.0 - c_rate) * (sur_var + c_rate * dev * dev)

        out_score_add(score)
        out_onset_add(onset)
        out_flag_add(anomalous)
        out_exp_add(expected)
        out_lo_add(expected - z_thr * sigma)
        out_hi_add(expected + z_thr * sigma)
        out_fired_add(fired if warm else 0)
        out_ev_add(e_max if warm else 0.0)

        # --- learning (after scoring: a point never explains itself away) ---
        rate = level_rate if level_rate * n > 1.0 else 1.0 / n
        e_rate = scale_rate if scale_rate * n > 1.0 else 1.0 / n
        early = n <= 10.0
        lim = clip * ef if ef > floor else clip * floor
        lf += rate * (r_f if early or -lim <= r_f <= lim else (lim if r_f > 0 else -lim))
        a = abs(r_f)
        ef += e_rate * ((a if early or a < clip * ef else clip * ef) - ef)
        lim = clip * ed if ed > floor else clip * floor
        cd = r_d if early or -lim <= r_d <= lim else (lim if r_d > 0 else -lim)
        ld += rate * cd
        a = abs(r_d)
        ed += e_rate * ((a if early or a < clip * ed else clip * ed) - ed)
        # profiles learn against a slow (about one day) de-seasonalised level: against the fast
        # level they would only learn the part of the cycle the level cannot follow
        slow = dt_h / 24.0
        # the cycle itself is many one-step errors wide: clip profile updates on the spread
        lim = clip * (spread if spread > ed else ed)
        r_ds = x - lds - s_d
        c = r_ds if early or -lim <= r_ds <= lim else (lim if r_ds > 0 else -lim)
        lds += slow * c
        # a bin gets about 1/dt_h points a day, so b/dt_h is the share relearnt per day; the
        # first days use a running mean over days (2/days) so the profile is usable after one
        days = elapsed / _DAY + 1.0
        b = dt_h * (season_rate if season_rate * days > 2.0 else 2.0 / days)
        if b > 0.5:
            b = 0.5
        daily[i0] += b * (1.0 - f) * c
        daily[i1] += b * f * c
        lim = clip * ew if ew > floor else clip * floor
        cw = r_w if early or -lim <= r_w <= lim else (lim if r_w > 0 else -lim)
        lw += rate * cw
        a = abs(r_w)
        ew += e_rate * ((a if early or a < clip * ew else clip * ew) - ew)
        lim = clip * (spread if spread > ew else ew)
        r_ws = x - lws - s_w
        c = r_ws if early or -lim <= r_ws <= lim else (lim if r_ws > 0 else -lim)
        lws += slow * c
        weeks = elapsed / _WEEK + 1.0
        b = dt_h * (season_rate if season_rate * weeks > 2.0 else 2.0 / weeks)
        if b > 0.5:
            b = 0.5
        weekly[j0] += b * (1.0 - g) * c
        weekly[j1] += b * g * c

        step = q_rate * sigma
        q25 += step * (0.25 if r > q25 else -0.75)
        q75 += step * (0.75 if r > q75 else -0.25)
        rr += 0.2 * (r - rr)
        # long-run spread of the raw values: the floor under every scale (sparse and step-like
        # series have near-zero one-step errors most of the time)
        a = abs(x - lslow)
        s_rate = 0.1 * scale_rate if 0.1 * scale_rate * n > 1.0 else 1.0 / n
        spread += s_rate * ((a if early or a < 10.0 * spread else 10.0 * spread) - spread)
        lslow += s_rate * (x - lslow)
        dd = tf - ts
        a = abs(dd)
        # the typical size of the fast-slow gap, learnt over a horizon several times longer
        # than the slow EWMA, so that a real trend stands out for long enough to be seen
        if trend_slow * n < 1.0:
            tscale += (a - tscale) / n
        else:
            tscale += 0.2 * trend_slow * ((a if a < 2.0 * tscale else 2.0 * tscale) - tscale)
        if shift:
            # a new level: adopt it now instead of alerting until the EWMAs catch up
            lf += rr
            ld += rr
            lw += rr
            # lds/lws (the profiles' references) are left alone: while seasonality is still
            # unknown a cycle looks like a run of shifts and must not be learnt as such
            tf = ts = y + rr - r
            cp = cn = 0.0
            rr = 0.0

    state[:17] = array(
        "d", (n, t_first, t_last, lf, ld, lw, ef, ed, ew, q25, q75, cp, cn, rr, tf, ts, tscale)
    )
    state[17:_NSTATE] = array("d", (lslow, spread, sur, sur_mean, sur_var, peak, lds, lws, mode, run))
    return out_onset, out_score, out_flag, out_exp, out_lo, out_hi, out_fired, out_ev
