"""The streaming univariate detector: seasonal robust baseline, an ensemble of tests, novelty.

Everything here is O(1) per point and per series. The detector's whole state is one small
``array('d')`` (scalars and two 16-bin histograms) plus two ``array('f')`` seasonal profiles
(24 hour-of-day bins and 168 hour-of-week bins), so it serialises to about 1.5 KiB and can
move between workers. ``DetectorBank`` (bank.py) runs the same arithmetic for many series at
once with numpy; both give bit-identical results, which is why the per-point arithmetic below
uses only ``+ - * /``, ``sqrt``, comparisons and ``frexp`` (no ``exp``/``log``, whose last bit
may differ between libm and numpy's SIMD loops).

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
4. **Score** (what the noise gate sees). The surprise ``log2(1 + |z|)`` is smoothed over a few
   points (``surprise_rate``) and compared with its own long-run mean and spread for this
   series (``calibration_rate``): ``level`` = how many SDs above its usual surprise the series
   is now, ``score = level² / (level² + score_scale²)``.
5. **Novelty and onset** (what is new for *this* series; NAB scores this stream). Two signals:
   * *rarity*: the clipped z of the flat model and of the chosen model are each smoothed
     (``novelty_rate``, about 20 points) and the rarity of the smoothed value's size under its
     own history is read from a 16-bin histogram (half-octave bins): ``bits = -log2 P(as large
     or larger)``. A sustained deviation, a change of level, variance or pattern all show up
     as a value of the smoothed z this series has rarely or never produced;
   * *range*: how far the value leaves the range of everything seen so far (the all-time
     minimum/maximum, forgotten very slowly), ``range_weight`` bits per range.
   ``onset`` fires on the rarity only when it beats the recent peak (which then has to be
   beaten by ``onset_margin`` bits more and decays by ``onset_decay`` per quiet point), so an
   event is reported at its start and not again while it lasts; a value out of range always
   counts. ``onset = v / (v + 10)`` for the larger of the two in bits (0.5 ≈ a one-in-a-
   thousand event for this series).
"""

from __future__ import annotations

import math
import struct
from array import array
from dataclasses import astuple, dataclass, fields
from functools import lru_cache

import numpy as np
import numpy.typing as npt

METHOD_NAMES: tuple[str, ...] = ("zscore", "iqr", "level_shift", "trend")
_ZSCORE, _IQR, _SHIFT, _TREND = 1, 2, 4, 8

_DAY = 86400.0
_WEEK = 7 * _DAY
_SQRT_HALF_PI = 1.2533141373155001  # σ / E|r| for Gaussian noise
_SQRT_HALF = 0.7071067811865476
NOVELTY_BINS = 16  # half-octave bins of |smoothed z| from 1/16 up (8 octaves: up to 16)
_NOVELTY_BASE = 16.0  # 1 / lower edge of bin 1
_ONSET_HALF = 10.0  # novelty bits at which onset = 0.5
_SPREAD_RATE = 0.001  # rate of the long-run spread of the raw values (the scale floor)


def methods_from_mask(mask: int) -> tuple[str, ...]:
    """Names of the tests encoded in a ``fired`` bit mask."""
    return tuple(name for bit, name in enumerate(METHOD_NAMES) if mask >> bit & 1)


def log2_approx(x: float) -> float:
    """log2 of a positive number, piecewise linear within each octave (error < 0.09).

    Continuous and increasing, exact at powers of two, and computed from ``frexp`` alone so
    that numpy (``np.frexp``) gives the very same bits.
    """
    m, e = math.frexp(x)
    return e + 2.0 * m - 2.0


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Tuning of ``UnivariateDetector``. Rates are per point unless said otherwise.

    The defaults are the ones Vigil runs with and the ones benchmarked on NAB. Nothing in them
    is specific to a series. ``scale_rate``, ``novelty_rate``, ``range_weight`` and the onset
    settings were chosen on the NAB files we have (31 of 58); bench/RESULTS.md reports a
    leave-one-category-out estimate of how well they carry over to unseen series.
    """

    level_rate: float = 0.05
    scale_rate: float = 0.003
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
    surprise_rate: float = 0.3  # EWMA rate of the short-term surprise log2(1 + |z|)
    calibration_rate: float = 0.0003  # rate of its long-run mean/variance (the series' normal)
    score_scale: float = 4.0  # calibrated surprise (in SDs) at which score = 0.5
    onset_decay: float = 0.999  # per-point decay of the recent peak rarity that onset must beat
    novelty_rate: float = 0.05  # EWMA rate of the clipped z whose rarity is the novelty
    novelty_clip: float = 8.0  # |z| clip before that smoothing
    novelty_memory: int = 65536  # histogram counts are halved when they reach this many points
    onset_margin: float = 0.8  # bits a later onset must add to the rarity that fired last
    range_weight: float = 300.0  # novelty bits per range width beyond the all-time range
    range_decay: float = 1e-5  # per-point share by which that range shrinks to the slow level

    def to_tuple(self) -> tuple[float, ...]:
        return _params(self)


@lru_cache(maxsize=64)
def _params(config: DetectorConfig) -> tuple[float, ...]:
    # one shared tuple per configuration: thousands of detectors should not each hold a copy
    return tuple(float(v) for v in astuple(config))


_CONFIG_FIELDS = tuple(f.name for f in fields(DetectorConfig))
_INT_FIELDS = frozenset(f.name for f in fields(DetectorConfig) if f.type in ("int", int))


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """What one point produced: the evidence a finding carries."""

    time: float
    value: float
    score: float  # 0..1: how unusual the recent behaviour is for this series
    onset: float  # 0..1: novelty at the start of something new for this series, else 0
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
# attributes keeps a series small in memory and makes serialisation one memcpy.
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
    _NOV_F,
    _NOV_C,
    _HIGH,
    _LOW,
    _COUNT,
    _NOV_LF,
    _NOV_LC,
    _NSCALARS,
) = range(34)
_HIST_F = _NSCALARS  # histogram of |smoothed z| of the flat model
_HIST_C = _HIST_F + NOVELTY_BINS  # ... and of the chosen model
_NSTATE = _HIST_C + NOVELTY_BINS

_MAGIC = b"VGA2"
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
        return ("none", "daily", "weekly")[int(self._state[_MODE])]

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
        """Compact state (~1.5 KiB) that ``from_bytes`` restores exactly, config included."""
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
        if len(data) < _HEADER.size:
            raise ValueError("not a serialised UnivariateDetector of this version")
        magic, n_params, n_state, n_weekly = _HEADER.unpack_from(data)
        expected_size = _HEADER.size + 8 * n_params + 8 * n_state + 4 * 24 + 4 * n_weekly
        if (
            magic != _MAGIC
            or n_params != len(_CONFIG_FIELDS)
            or n_state != _NSTATE
            or n_weekly != 168
            or len(data) != expected_size
        ):
            raise ValueError("not a serialised UnivariateDetector of this version")
        offset = _HEADER.size
        params = array("d")
        params.frombytes(data[offset : offset + 8 * n_params])
        offset += 8 * n_params
        config = config_from_tuple(tuple(params))
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


def config_from_tuple(params: tuple[float, ...]) -> DetectorConfig:
    """The ``DetectorConfig`` whose ``to_tuple()`` is ``params``."""
    kwargs: dict[str, float] = dict(zip(_CONFIG_FIELDS, params, strict=True))
    for name in _INT_FIELDS:
        kwargs[name] = int(kwargs[name])
    return DetectorConfig(**kwargs)  # type: ignore[arg-type]


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
    """The per-point loop. Long on purpose: locals are what make CPython fast here.

    ``bank.py`` implements the same arithmetic over many series; keep the two in step (the
    tests compare them bit for bit).
    """
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
        nov_rate,
        nov_clip,
        nov_memory,
        onset_margin,
        range_weight,
        range_decay,
    ) = params
    (n, t_first, t_last, lf, ld, lw, ef, ed, ew, q25, q75, cp, cn, rr, tf, ts, tscale) = state[:17]
    (lslow, spread, sur, sur_mean, sur_var, peak, lds, lws, mode) = state[17:26]
    (nov_f, nov_c, high, low, count, nov_lf, nov_lc) = state[26:_NSCALARS]
    hist_f = state[_HIST_F:_HIST_C].tolist()
    hist_c = state[_HIST_C:_NSTATE].tolist()
    k2 = score_scale * score_scale
    range_warmup = 0.5 * warmup
    trend_ready = 4.0 / trend_slow
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
    sqrt, frexp = math.sqrt, math.frexp
    last_bin = NOVELTY_BINS - 1

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
            lf = ld = lw = lds = lws = tf = ts = lslow = high = low = nov_lf = nov_lc = x
            out_score_add(0.0)
            out_onset_add(0.0)
            out_flag_add(False)
            out_exp_add(x)
            out_lo_add(x)
            out_hi_add(x)
            out_fired_add(0)
            out_ev_add(0.0)
            continue

        # --- range novelty: beyond everything this series has done (before learning x) ---
        in_range = n > range_warmup and high > low
        excess = 0.0
        if x > high:
            if in_range:
                excess = (x - high) / (high - low)
            high = x
        elif x < low:
            if in_range:
                excess = (low - x) / (high - low)
            low = x
        high -= range_decay * (high - lslow)
        low -= range_decay * (low - lslow)

        dt_h = (t - t_last) / 3600.0
        if dt_h > 1.0:
            dt_h = 1.0
        elif dt_h < 0.0:
            dt_h = 0.0
        t_last = t
        elapsed = t - t_first

        # --- seasonal positions (piecewise-linear between bin centres) ---
        hod = (t % _DAY) / 3600.0 - 0.5
        tod = hod + 24.0 if hod < 0.0 else hod
        i0 = int(tod)
        f = tod - i0
        i1 = i0 + 1 if i0 < 23 else 0
        how = ((t // _DAY + 3.0) % 7.0) * 24.0 + hod
        if how < 0.0:
            how += 168.0
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
        if mode == 0.0:
            r, err, season = r_f, ef, 0.0
        elif mode == 1.0:
            r, err, season = r_d, ed, s_d
        else:
            r, err, season = r_w, ew, s_w
        expected = x - r
        floor = floor_share * spread
        if floor < 1e-9 * abs(x) + 1e-12:
            floor = 1e-9 * abs(x) + 1e-12
        sigma = _SQRT_HALF_PI * (err if err > floor else floor)
        z = r / sigma
        # the novelty's residuals come from levels that only ever follow the data (never the
        # level-shift jumps below): a new level must stay visible long enough to be rare
        r_nf = x - nov_lf
        r_nc = x - nov_lc - season
        z_nf = r_nf / (_SQRT_HALF_PI * (ef if ef > floor else floor))
        z_nc = r_nc / sigma
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
        if n > trend_ready:
            if e_trend >= 1.0:
                fired |= _TREND
        else:
            e_trend = 0.0

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
        m, e = frexp(1.0 + abs(z))
        sur += surprise_rate * (e + 2.0 * m - 2.0 - sur)
        level = (sur - sur_mean) / sqrt(sur_var) if warm and sur_var > 0.0 else 0.0
        score = level * level / (level * level + k2) if level > 0.0 else 0.0
        c_rate = calib_rate if calib_rate * n > 1.0 else 1.0 / n
        dev = sur - sur_mean
        sur_mean += c_rate * dev
        sur_var = (1.0 - c_rate) * (sur_var + c_rate * dev * dev)

        # --- novelty: rarity of the smoothed z under this series' own history ---
        zc = z_nf if -nov_clip <= z_nf <= nov_clip else (nov_clip if z_nf > 0 else -nov_clip)
        nov_f += nov_rate * (zc - nov_f)
        zc = z_nc if -nov_clip <= z_nc <= nov_clip else (nov_clip if z_nc > 0 else -nov_clip)
        nov_c += nov_rate * (zc - nov_c)
        rarity = 0.0
        for hist, s in ((hist_f, nov_f), (hist_c, nov_c)):
            s = abs(s) * _NOVELTY_BASE
            if s > 1.0:
                m, e = frexp(s)
                k = 2 * e - 2 if m < _SQRT_HALF else 2 * e - 1
                if k > last_bin:
                    k = last_bin
            else:
                k = 0
            if warm:
                tail = sum(hist[k + 1 :]) + 0.5 * hist[k]
                if tail == 0.0:
                    # beyond everything seen: half the top bin's share per half-octave past it
                    top = k - 1 if k > 0 else 0
                    while top > 0 and hist[top] == 0.0:
                        top -= 1
                    tail = 0.5 * hist[top] / (1 << (k - top)) if hist[top] > 0.0 else 0.5
                m, e = frexp(tail / (count + 1.0))
                bits = 2.0 - e - 2.0 * m
                if bits > rarity:
                    rarity = bits
            hist[k] += 1.0
        count += 1.0
        if count >= nov_memory:
            # forget the older half of the history (counts stay integers: sums stay exact)
            hist_f = [float(int(h) >> 1) for h in hist_f]
            hist_c = [float(int(h) >> 1) for h in hist_c]
            count = float(int(count) >> 1)
        if rarity > peak:
            novelty = rarity
            peak = rarity + onset_margin
        else:
            novelty = 0.0
            peak *= onset_decay
        excess *= range_weight
        if excess > novelty:
            novelty = excess
        onset = novelty / (novelty + _ONSET_HALF)

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
        nov_lf += rate * (r_nf if early or -lim <= r_nf <= lim else (lim if r_nf > 0 else -lim))
        lim = clip * err if err > floor else clip * floor
        nov_lc += rate * (r_nc if early or -lim <= r_nc <= lim else (lim if r_nc > 0 else -lim))
        lim = clip * ed if ed > floor else clip * floor
        ld += rate * (r_d if early or -lim <= r_d <= lim else (lim if r_d > 0 else -lim))
        a = abs(r_d)
        ed += e_rate * ((a if early or a < clip * ed else clip * ed) - ed)
        # profiles learn against a slow (about one day) de-seasonalised level: against the fast
        # level they would only learn the part of the cycle the level cannot follow
        slow = dt_h / 24.0
        # the cycle itself is many one-step errors wide: clip profile updates on the spread
        lim = clip * (spread if spread > ed else ed)
        c = x - lds - s_d
        if not early and not -lim <= c <= lim:
            c = lim if c > 0 else -lim
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
        lw += rate * (r_w if early or -lim <= r_w <= lim else (lim if r_w > 0 else -lim))
        a = abs(r_w)
        ew += e_rate * ((a if early or a < clip * ew else clip * ew) - ew)
        lim = clip * (spread if spread > ew else ew)
        c = x - lws - s_w
        if not early and not -lim <= c <= lim:
            c = lim if c > 0 else -lim
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
        s_rate = _SPREAD_RATE if _SPREAD_RATE * n > 1.0 else 1.0 / n
        spread += s_rate * ((a if early or a < 10.0 * spread else 10.0 * spread) - spread)
        lslow += s_rate * (x - lslow)
        a = abs(tf - ts)
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
    state[17:26] = array("d", (lslow, spread, sur, sur_mean, sur_var, peak, lds, lws, mode))
    state[26:_NSCALARS] = array("d", (nov_f, nov_c, high, low, count, nov_lf, nov_lc))
    state[_HIST_F:_NSTATE] = array("d", hist_f + hist_c)
    return out_onset, out_score, out_flag, out_exp, out_lo, out_hi, out_fired, out_ev
