"""NAB: Vigil's streaming detector against simple baselines on the Numenta Anomaly Benchmark.

Every detector sees each file once, point by point in time order (no look-ahead), and emits one
score per row; Vigil's own NAB scorer (``vigil.analytics.nab``) then optimises one threshold per
detector and profile over the whole corpus and normalises with the null and perfect detectors.

``--cv`` adds a leave-one-category-out estimate of the score on unseen files: for each category
(the first path component of a file, e.g. ``realTweets``), Vigil's tunable defaults (the grid
``CV_GRID``) and each profile's threshold are chosen on the other categories only, the held-out
category is scored with them, and the held-out results of all categories are pooled. The
baselines have no settings, so only their threshold is chosen that way.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console
from rich.table import Table

from bench._common import machine, print_json, require_dir, shared_data
from vigil.analytics.anomaly import DetectorConfig, UnivariateDetector
from vigil.analytics.nab import (
    PROFILES,
    CrossValidation,
    LabelledSeries,
    ProfileScore,
    leave_one_group_out,
    score_all_profiles,
    window_rows,
)

FloatArray = npt.NDArray[np.float64]
ScoreFn = Callable[[FloatArray, FloatArray], FloatArray]

app = typer.Typer(add_completion=False, help=__doc__)


@dataclass(frozen=True, slots=True)
class NabFile:
    name: str  # e.g. "realKnownCause/nyc_taxi.csv"
    times: FloatArray  # seconds since the epoch (NAB's naive timestamps read as UTC)
    values: FloatArray
    labels: LabelledSeries


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC).timestamp()


def load_corpus(data_dir: Path) -> list[NabFile]:
    """Read ``data/<category>/<file>.csv`` and ``windows.json`` laid out as NAB's repository."""
    windows = json.loads((data_dir / "windows.json").read_text())
    corpus = []
    for name in sorted(windows):
        lines = (data_dir / "data" / name).read_text().splitlines()
        rows = [line.split(",") for line in lines[1:] if line]  # after the timestamp,value header
        # numpy parses the ISO timestamps in C: several times faster than datetime per row
        t = np.array([r[0] for r in rows], dtype="datetime64[s]").astype(np.int64).astype(np.float64)
        values = np.array([r[1] for r in rows], dtype=np.float64)
        spans = [(_parse_time(a), _parse_time(b)) for a, b in windows[name]]
        labels = LabelledSeries(name=name, length=len(t), windows=window_rows(t, spans))
        corpus.append(NabFile(name, t, values, labels))
    return corpus


# The settings chosen on NAB (see DetectorConfig) and the values tried for each: the CV picks
# one combination per held-out category from these, on the other categories only.
CV_GRID: dict[str, tuple[float, ...]] = {
    "level_rate": (0.03, 0.05, 0.08),
    "scale_rate": (0.002, 0.003, 0.005),
    "novelty_rate": (0.03, 0.05, 0.08),
}


def vigil_scores(times: FloatArray, values: FloatArray, config: DetectorConfig | None = None) -> FloatArray:
    """Vigil's detector (default configuration unless given): its ``onset`` stream, non-zero at
    the start of something new for the series -- what NAB rewards (the earliest detection)."""
    return UnivariateDetector(config).update_many(times, values).onset


def windowed_gaussian_scores(times: FloatArray, values: FloatArray) -> FloatArray:
    """NAB's ``windowedGaussian`` baseline: two-sided Gaussian tail of the value against the mean
    and standard deviation of a 6400-point window that slides in steps of 100 points.

    Vectorised, but each row sees exactly the statistics NAB's loop would use: the first 6400
    rows the mean/SD of all earlier rows, later rows those of the window as of the last step.
    """
    window_size, step_size = 6400, 100
    n = len(values)
    x = values - values[0]  # shift for numerically safer running sums; SD and z are unchanged
    c1 = np.concatenate([[0.0], np.cumsum(x)])
    c2 = np.concatenate([[0.0], np.cumsum(x * x)])
    i = np.arange(n)
    lo = np.where(i < window_size, 0, (i - window_size) // step_size * step_size)
    hi = np.where(i < window_size, i, lo + window_size)
    count = np.maximum(hi - lo, 1)
    mean = (c1[hi] - c1[lo]) / count
    var = np.maximum((c2[hi] - c2[lo]) / count - mean * mean, 0.0)
    std = np.sqrt(var)
    std[std == 0.0] = 1e-6
    z = np.abs(x - mean) / std
    out = 1.0 - 0.5 * np.vectorize(math.erfc)(z / math.sqrt(2.0))
    out[0] = 0.0
    return np.asarray(out, dtype=np.float64)


def static_threshold_scores(times: FloatArray, values: FloatArray) -> FloatArray:
    """A fixed band learnt once: how far the value leaves the [min, max] range of the first 15%
    of the file (the probationary rows), in units of that range; NAB sweeps the threshold."""
    n_train = max(2, int(0.15 * len(values)))
    lo, hi = float(values[:n_train].min()), float(values[:n_train].max())
    span = (hi - lo) or (abs(hi) or 1.0)
    excess = np.maximum(values - hi, lo - values) / span
    return np.where(excess > 0, excess / (1.0 + excess), 0.0)


DETECTORS: dict[str, ScoreFn] = {
    "vigil": vigil_scores,
    "windowed_gaussian": windowed_gaussian_scores,
    "static_threshold": static_threshold_scores,
}


def run_detectors(
    corpus: list[NabFile], detectors: dict[str, ScoreFn], progress: Callable[[str], None] | None = None
) -> tuple[dict[str, dict[str, ProfileScore]], dict[str, float]]:
    """Scores per detector and profile, and seconds each detector spent scoring the corpus."""
    labels = [f.labels for f in corpus]
    results: dict[str, dict[str, ProfileScore]] = {}
    seconds: dict[str, float] = {}
    for det_name, fn in detectors.items():
        if progress:
            progress(det_name)
        started = time.perf_counter()
        scores = {f.name: fn(f.times, f.values) for f in corpus}
        seconds[det_name] = time.perf_counter() - started
        results[det_name] = score_all_profiles(labels, scores)
    return results, seconds


def category(name: str) -> str:
    """NAB's category of a file: the directory under ``data/`` (used by the CV only)."""
    return name.split("/", 1)[0]


def grid_configs(grid: Mapping[str, tuple[float, ...]] = CV_GRID) -> dict[str, DetectorConfig]:
    """Every combination of the grid's values, on top of the default configuration."""
    base = DetectorConfig()
    names = list(grid)
    configs = {}
    for combo in itertools.product(*(grid[name] for name in names)):
        label = ",".join(f"{name}={value:g}" for name, value in zip(names, combo, strict=True))
        overrides: dict[str, float] = dict(zip(names, combo, strict=True))
        configs[label] = replace(base, **overrides)  # type: ignore[arg-type]
    return configs


def _vigil_job(job: tuple[str, DetectorConfig, str, FloatArray, FloatArray]) -> tuple[str, str, FloatArray]:
    label, config, name, times, values = job
    return label, name, vigil_scores(times, values, config)


def grid_scores(
    corpus: list[NabFile], configs: Mapping[str, DetectorConfig], jobs: int
) -> dict[str, dict[str, FloatArray]]:
    """Vigil's scores per file for every configuration, over ``jobs`` processes."""
    work = [(label, cfg, f.name, f.times, f.values) for label, cfg in configs.items() for f in corpus]
    # longest files first, so that the last jobs to finish are short ones
    work.sort(key=lambda job: -len(job[3]))
    out: dict[str, dict[str, FloatArray]] = {label: {} for label in configs}
    if jobs <= 1:
        results = map(_vigil_job, work)
        for label, name, scores in results:
            out[label][name] = scores
        return out
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for label, name, scores in pool.map(_vigil_job, work, chunksize=4):
            out[label][name] = scores
    return out


def cross_validate(
    corpus: list[NabFile],
    candidates: Mapping[str, Mapping[str, FloatArray]],
) -> dict[str, CrossValidation]:
    """Leave-one-category-out estimate per profile (settings and threshold from the other categories)."""
    labels = [f.labels for f in corpus]
    return {p: leave_one_group_out(labels, candidates, category, p) for p in PROFILES}


@app.command()
def main(
    data: Path = typer.Option(None, "--data", help="NAB directory with data/ and windows.json."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object and nothing else."),
    cv: bool = typer.Option(
        False, "--cv", help="Also estimate the score on unseen files (leave one category out)."
    ),
    jobs: int = typer.Option(os.cpu_count() or 1, "--jobs", help="Processes for the --cv grid."),
) -> None:
    """Score Vigil's detector and baselines on NAB (standard, reward_low_FP, reward_low_FN)."""
    data_dir = require_dir(data or shared_data("nab"), "NAB data")
    err = Console(stderr=True)
    corpus = load_corpus(data_dir)
    n_rows = sum(len(f.values) for f in corpus)
    n_windows = sum(len(f.labels.windows) for f in corpus)
    with err.status("scoring") as status:
        results, seconds = run_detectors(
            corpus, DETECTORS, lambda name: status.update(f"running {name} over {len(corpus)} files")
        )
    cv_results: dict[str, dict[str, CrossValidation]] = {}
    if cv:
        configs = grid_configs()
        with err.status(f"CV: Vigil with {len(configs)} settings over {len(corpus)} files, {jobs} processes"):
            candidates = grid_scores(corpus, configs, jobs)
            cv_results["vigil"] = cross_validate(corpus, candidates)
            for det_name, fn in DETECTORS.items():
                if det_name != "vigil":
                    fixed = {f.name: fn(f.times, f.values) for f in corpus}
                    cv_results[det_name] = cross_validate(corpus, {"default": fixed})
    if json_out:
        out: dict[str, object] = {
            det: {p: round(s.normalised, 2) for p, s in by.items()} for det, by in results.items()
        }
        if cv:
            out["leave_one_category_out"] = {
                det: {p: round(c.normalised, 2) for p, c in by.items()} for det, by in cv_results.items()
            }
            out["cv_grid"] = {name: list(values) for name, values in CV_GRID.items()}
        print_json(out)
        return
    table = Table(title=f"NAB: {len(corpus)} files, {n_rows} rows, {n_windows} windows")
    table.add_column("detector")
    for profile in PROFILES:
        table.add_column(profile, justify="right")
    table.add_column("TP/FN/FP (standard)", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("seconds", justify="right")
    for det, by in results.items():
        std = by["standard"]
        table.add_row(
            det,
            *(f"{by[p].normalised:.1f}" for p in PROFILES),
            f"{std.true_positives}/{std.false_negatives}/{std.false_positives}",
            f"{std.threshold:.4g}",
            f"{seconds[det]:.1f}",
        )
    Console(width=160).print(table)
    if cv:
        _print_cv(cv_results)
    err.print(f"machine: {machine()}")


def _print_cv(cv_results: dict[str, dict[str, CrossValidation]]) -> None:
    console = Console(width=160)
    table = Table(title="Leave one category out: settings and threshold chosen on the other categories")
    table.add_column("detector")
    for profile in PROFILES:
        table.add_column(profile, justify="right")
    for det, by in cv_results.items():
        table.add_row(det, *(f"{by[p].normalised:.1f}" for p in PROFILES))
    console.print(table)
    folds = Table(title="Vigil, standard profile: held-out category, settings chosen without it")
    folds.add_column("held out")
    folds.add_column("settings chosen on the others")
    folds.add_column("threshold", justify="right")
    folds.add_column("TP/FN/FP", justify="right")
    folds.add_column("raw (null, perfect)", justify="right")
    for fold in cv_results["vigil"]["standard"].folds:
        h = fold.held_out
        folds.add_row(
            fold.group,
            fold.candidate,
            f"{fold.threshold:.4g}",
            f"{h.true_positives}/{h.false_negatives}/{h.false_positives}",
            f"{h.raw:.2f} ({h.null:.0f}, {h.perfect:.2f})",
        )
    console.print(folds)
