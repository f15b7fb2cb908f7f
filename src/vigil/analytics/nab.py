"""Vigil's own scorer for the Numenta Anomaly Benchmark (NAB v1.1 rules).

Written from NAB's documentation and the reference sweeper (``nab/sweeper.py``); the formulas
below are NAB's, including its small off-by-one choices, so that scores are comparable with the
published scoreboard:

* The first ``min(floor(0.15·n), 0.15·5000)`` rows of a file (probationary period) are dropped.
* A row whose anomaly score is ``>= threshold`` is a detection.
* Inside a labelled window ``[left, right]`` (row indices, inclusive, width ``w = right-left+1``)
  a detection at row ``i`` sits at ``y = -(right - i + 1) / w`` (``-1`` at the left edge) and is
  worth ``A_tp · S(y) / S(-1)`` with ``S(y) = 2·σ(-5y) - 1``. Only the best (= earliest)
  detection of a window counts; a window without one costs ``-A_fn``.
* A detection outside every window is worth ``A_fp · S(y)`` with ``y = |i - right_prev| /
  (w_prev - 1)`` measured from the previous window (``S`` is clamped to ``-1`` for ``y > 3``),
  or ``-A_fp`` when no window precedes it. Every such row counts, so a detector should not
  keep firing row after row.
* One threshold per detector and profile is chosen to maximise the raw score summed over the
  whole corpus, and ``normalised = 100 · (raw - null) / (perfect - null)`` where the null
  detector never fires and the perfect detector fires on the first scored row of every window.

``leave_one_group_out`` estimates how a detector does on files it was not tuned on: for each
group of files (NAB's categories), the detector settings and the threshold are chosen on the
other groups only, the held-out group is scored with them, and the raw, null and perfect
totals of all held-out groups are pooled into one normalised score.

Pure code: callers load the files and map window timestamps to row indices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

PROBATIONARY_PERCENT = 0.15


@dataclass(frozen=True, slots=True)
class CostProfile:
    """Weights of one NAB application profile."""

    name: str
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES: dict[str, CostProfile] = {
    "standard": CostProfile("standard", a_tp=1.0, a_fp=0.11, a_fn=1.0),
    "reward_low_FP": CostProfile("reward_low_FP", a_tp=1.0, a_fp=0.22, a_fn=1.0),
    "reward_low_FN": CostProfile("reward_low_FN", a_tp=1.0, a_fp=0.11, a_fn=2.0),
}


@dataclass(frozen=True, slots=True)
class LabelledSeries:
    """One NAB file reduced to what scoring needs: its length and its windows as row ranges."""

    name: str
    length: int
    windows: tuple[tuple[int, int], ...]  # inclusive (left, right) row indices, in order


@dataclass(frozen=True, slots=True)
class ProfileScore:
    """The outcome of scoring one detector under one profile."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    normalised: float
    true_positives: int  # windows detected
    false_negatives: int  # windows missed
    false_positives: int  # detection rows outside windows


def probationary_length(length: int, percent: float = PROBATIONARY_PERCENT) -> int:
    """Rows at the start of a file that are not scored (NAB's ``getProbationPeriod``)."""
    return int(min(math.floor(percent * length), percent * 5000))


def scaled_sigmoid(y: float) -> float:
    """NAB's ``S(y) = 2·σ(-5y) - 1``, clamped to ``-1`` far past a window (``y > 3``)."""
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


@dataclass(frozen=True, slots=True)
class _SweepRows:
    """Per scored row: its weighted score if detected and the corpus-wide id of its window."""

    weighted: npt.NDArray[np.float64]
    window_id: npt.NDArray[np.int64]  # -1 outside every window


def sweep_rows(series: LabelledSeries, profile: CostProfile, first_window_id: int = 0) -> _SweepRows:
    """What each scored row of ``series`` would be worth if it were a detection."""
    n = series.length
    weighted = np.empty(n, dtype=np.float64)
    window_id = np.full(n, -1, dtype=np.int64)
    max_tp = scaled_sigmoid(-1.0)
    prev_right: int | None = None
    prev_width = 0.0
    cursor = 0
    for k, (left, right) in enumerate(series.windows):
        _fill_false_positives(weighted, cursor, left, prev_right, prev_width, profile)
        width = float(right - left + 1)
        rows = np.arange(left, right + 1)
        positions = -(right - rows + 1) / width
        weighted[left : right + 1] = (2.0 / (1.0 + np.exp(5.0 * positions)) - 1.0) * profile.a_tp / max_tp
        window_id[left : right + 1] = first_window_id + k
        prev_right, prev_width, cursor = right, width, right + 1
    _fill_false_positives(weighted, cursor, n, prev_right, prev_width, profile)
    start = probationary_length(n)
    return _SweepRows(weighted[start:], window_id[start:])


def _fill_false_positives(
    weighted: npt.NDArray[np.float64],
    start: int,
    stop: int,
    prev_right: int | None,
    prev_width: float,
    profile: CostProfile,
) -> None:
    if stop <= start:
        return
    if prev_right is None:
        weighted[start:stop] = -profile.a_fp
        return
    # NAB divides by (width - 1); a one-row window would divide by zero there, so treat the
    # whole tail as "far past the window".
    if prev_width <= 1.0:
        weighted[start:stop] = -profile.a_fp
        return
    y = np.abs(np.arange(start, stop) - prev_right) / (prev_width - 1.0)
    s = np.where(y > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0)
    weighted[start:stop] = s * profile.a_fp


def score_corpus(
    corpus: Sequence[LabelledSeries],
    scores: Mapping[str, npt.ArrayLike],
    profile: CostProfile | str = "standard",
    threshold: float | None = None,
) -> ProfileScore:
    """Optimise the threshold over the whole corpus and return the normalised NAB score.

    ``scores[name]`` holds one anomaly score per row of that file (any real values; NAB's are
    in [0, 1]). The sweep is exact: every distinct score is tried as the threshold. With
    ``threshold`` given, nothing is optimised: the corpus is scored at that threshold.
    """
    cost = PROFILES[profile] if isinstance(profile, str) else profile
    all_scores: list[npt.NDArray[np.float64]] = []
    all_weighted: list[npt.NDArray[np.float64]] = []
    all_windows: list[npt.NDArray[np.int64]] = []
    next_window = 0
    for series in corpus:
        values = np.asarray(scores[series.name], dtype=np.float64)
        if values.shape != (series.length,):
            raise ValueError(f"{series.name}: {values.shape[0]} scores for {series.length} rows")
        rows = sweep_rows(series, cost, next_window)
        next_window += len(series.windows)
        all_scores.append(values[probationary_length(series.length) :])
        all_weighted.append(rows.weighted)
        all_windows.append(rows.window_id)
    score = np.concatenate(all_scores)
    weighted = np.concatenate(all_weighted)
    window_id = np.concatenate(all_windows)

    # Windows that have at least one scored row are the ones that count (NAB drops the rest
    # with the probationary rows).
    counted = np.unique(window_id[window_id >= 0])
    n_windows = len(counted)
    null = -cost.a_fn * n_windows
    perfect = _perfect_score(weighted, window_id, counted)

    # Lower the threshold one distinct score at a time (highest first). Each detection changes
    # the total by its own weight if it is a false positive, or, inside a window, by how much
    # it improves that window's best detection so far (starting from the -A_fn of a miss).
    order = np.lexsort((np.arange(len(score)), -score))
    s_sorted = score[order]
    w_sorted = weighted[order]
    win_sorted = window_id[order]
    delta = np.where(win_sorted < 0, w_sorted, 0.0)
    in_window = np.flatnonzero(win_sorted >= 0)
    if len(in_window):
        # group window rows by window, keeping the descending-score order inside each group
        grouped = in_window[np.argsort(win_sorted[in_window], kind="stable")]
        gwin = win_sorted[grouped]
        gw = w_sorted[grouped]
        starts = np.flatnonzero(np.r_[True, gwin[1:] != gwin[:-1]])
        best = gw.copy()
        for a, b in zip(starts, np.r_[starts[1:], len(gw)], strict=True):
            best[a:b] = np.maximum.accumulate(gw[a:b])
        previous_best = np.empty_like(best)
        previous_best[1:] = best[:-1]
        previous_best[starts] = -cost.a_fn
        delta[grouped] = best - previous_best
    totals = null + np.cumsum(delta)
    # a threshold equal to a score includes every row with that score: the total after the
    # last row of each group of equal scores
    last_of_group = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    candidates = totals[last_of_group]
    if threshold is not None:
        reached = np.flatnonzero(s_sorted[last_of_group] >= threshold)
        raw = float(candidates[reached[-1]]) if len(reached) else null
        detected = score >= threshold
    elif len(candidates) and candidates.max() > null:
        k = int(np.argmax(candidates))  # first maximum = the highest threshold reaching it
        threshold = float(s_sorted[last_of_group[k]])
        raw = float(candidates[k])
        detected = score >= threshold
    else:
        threshold = math.inf
        raw = null
        detected = np.zeros(len(score), dtype=bool)
    hit_windows = np.unique(window_id[detected & (window_id >= 0)])
    normalised = 100.0 * (raw - null) / (perfect - null) if perfect > null else 0.0
    return ProfileScore(
        profile=cost.name,
        threshold=threshold,
        raw=raw,
        null=null,
        perfect=perfect,
        normalised=normalised,
        true_positives=len(hit_windows),
        false_negatives=n_windows - len(hit_windows),
        false_positives=int(np.count_nonzero(detected & (window_id < 0))),
    )


def _perfect_score(
    weighted: npt.NDArray[np.float64], window_id: npt.NDArray[np.int64], counted: npt.NDArray[np.int64]
) -> float:
    if len(counted) == 0:
        return 0.0
    best = np.full(int(counted.max()) + 1, -np.inf)
    inside = window_id >= 0
    np.maximum.at(best, window_id[inside], weighted[inside])
    return float(best[counted].sum())


def score_all_profiles(
    corpus: Sequence[LabelledSeries], scores: Mapping[str, npt.ArrayLike]
) -> dict[str, ProfileScore]:
    """``score_corpus`` under each of NAB's three profiles."""
    return {name: score_corpus(corpus, scores, name) for name in PROFILES}


def window_rows(
    times: Sequence[float] | npt.NDArray[np.float64], windows: Sequence[tuple[float, float]]
) -> tuple[tuple[int, int], ...]:
    """Map windows given as (start, end) times to inclusive row ranges of sorted ``times``."""
    t = np.asarray(times, dtype=np.float64)
    out: list[tuple[int, int]] = []
    for start, end in windows:
        left = int(np.searchsorted(t, start, side="left"))
        right = int(np.searchsorted(t, end, side="right")) - 1
        if right >= left:
            out.append((left, right))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Fold:
    """One held-out group of a leave-one-group-out estimate."""

    group: str
    candidate: str  # the settings chosen on the other groups
    threshold: float  # the threshold chosen on the other groups
    held_out: ProfileScore  # the held-out group scored with both


@dataclass(frozen=True, slots=True)
class CrossValidation:
    """Pooled result of ``leave_one_group_out``."""

    profile: str
    raw: float
    null: float
    perfect: float
    normalised: float
    folds: tuple[Fold, ...]


def leave_one_group_out(
    corpus: Sequence[LabelledSeries],
    candidates: Mapping[str, Mapping[str, npt.ArrayLike]],
    group_of: Callable[[str], str],
    profile: CostProfile | str = "standard",
) -> CrossValidation:
    """Score each group of files with settings and threshold chosen on the other groups.

    ``candidates`` maps a name for each setting of the detector to its scores per file (as for
    ``score_corpus``). For every group ``g`` (``group_of(file name)``), the candidate with the
    best normalised score on the files outside ``g`` -- at its own optimal threshold there --
    scores ``g`` at that threshold. The held-out raw, null and perfect scores are summed over
    the groups and normalised together, as NAB normalises a corpus.
    """
    cost = PROFILES[profile] if isinstance(profile, str) else profile
    groups = sorted({group_of(series.name) for series in corpus})
    folds: list[Fold] = []
    raw = null = perfect = 0.0
    for group in groups:
        train = [series for series in corpus if group_of(series.name) != group]
        test = [series for series in corpus if group_of(series.name) == group]
        best: tuple[float, str, float] | None = None
        for name, scores in candidates.items():
            fitted = score_corpus(train, scores, cost)
            if best is None or fitted.normalised > best[0]:
                best = (fitted.normalised, name, fitted.threshold)
        if best is None:
            raise ValueError("no candidates to choose from")
        _, chosen, threshold = best
        held_out = score_corpus(test, candidates[chosen], cost, threshold=threshold)
        folds.append(Fold(group, chosen, threshold, held_out))
        raw += held_out.raw
        null += held_out.null
        perfect += held_out.perfect
    normalised = 100.0 * (raw - null) / (perfect - null) if perfect > null else 0.0
    return CrossValidation(cost.name, raw, null, perfect, normalised, tuple(folds))
