"""Exhaustion forecasting: Vigil's forecaster against a naive least-squares line over the window.

Cases with a known time-to-threshold, all built here with a fixed seed or read from NAB:

* **synthetic disks** -- seven days of history every ten minutes: a leak (0.02-1 %/h), a daily
  cycle (0-8 %), noise, occasional spikes and, in half the cases, a clean-up that drops usage
  somewhere in the history. The truth is the first time the noise-free future (trend + cycle)
  reaches the threshold.
* **NAB machine series** (realAWSCloudwatch, realKnownCause) -- each series is cut at several
  points; the threshold is a level the series has not reached before the cut but reaches
  after it (half-way between the history's maximum and the future's), and the truth is the
  first later row at or above it. Real data, but honest only as a rough check: these series
  are not resource fill levels.

Both methods see the same history and must say "no upward trend" (None) or give an eta.
Errors are reported on the cases where each method gave an eta, and on the cases where both
did (the fair head-to-head), with the count of cases each method missed.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console
from rich.table import Table

from bench._common import machine, print_json, shared_data
from vigil.analytics.forecast import forecast_exhaustion, naive_linear_eta

FloatArray = npt.NDArray[np.float64]
app = typer.Typer(add_completion=False, help=__doc__)

HOUR = 3600.0
DAY = 86400.0
SEED = 20240611


@dataclass(frozen=True, slots=True)
class Case:
    source: str
    times: FloatArray
    values: FloatArray
    threshold: float
    true_eta_s: float


def synthetic_cases(count: int = 200, seed: int = SEED) -> list[Case]:
    rng = np.random.default_rng(seed)
    step = 600.0
    cases: list[Case] = []
    while len(cases) < count:
        t = 1_700_006_400.0 + np.arange(0.0, 7 * DAY, step)
        hours = (t - t[0]) / HOUR
        rate = float(np.exp(rng.uniform(np.log(0.02), np.log(1.0))))  # %/h
        amp = float(rng.uniform(0.0, 8.0))
        noise = float(rng.uniform(0.1, 1.5))
        phase = float(rng.uniform(0, 2 * np.pi))
        base = float(rng.uniform(10.0, 50.0))
        trend = base + rate * hours
        cleanup_at = None
        if rng.random() < 0.5:
            cleanup_at = float(rng.uniform(1.0, 5.5) * 24.0)
            after = hours >= cleanup_at
            drop = float(rng.uniform(0.3, 0.8)) * (trend[after][0] - 5.0)
            trend = trend - np.where(after, drop, 0.0)
        cycle = amp * np.sin(2 * np.pi * (t % DAY) / DAY + phase)
        y = trend + cycle + rng.normal(0, noise, len(t))
        spikes = rng.random(len(t)) < 0.003
        y[spikes] += rng.uniform(5, 20, spikes.sum())
        threshold = 90.0
        # the truth: first time the noise-free future reaches the threshold (minute steps)
        future = t[-1] + np.arange(60.0, 60 * DAY, 60.0)
        future_level = trend[-1] + rate * (future - t[-1]) / HOUR
        future_y = future_level + amp * np.sin(2 * np.pi * (future % DAY) / DAY + phase)
        now_clean = trend[-1] + cycle[-1]
        hit = np.flatnonzero(future_y >= threshold)
        if now_clean >= threshold - 2.0 or len(hit) == 0:
            continue
        source = "synthetic (clean-up)" if cleanup_at is not None else "synthetic"
        cases.append(Case(source, t, y, threshold, float(future[hit[0]] - t[-1])))
    return cases


def nab_cases(data_dir: Path) -> list[Case]:
    from bench.nab import load_corpus

    cases: list[Case] = []
    if not (data_dir / "windows.json").is_file():
        return cases
    for f in load_corpus(data_dir):
        if not f.name.startswith(("realAWSCloudwatch/", "realKnownCause/")):
            continue
        for cut_share in (0.4, 0.5, 0.6, 0.7, 0.8):
            cut = int(cut_share * len(f.values))
            start = int(np.searchsorted(f.times, f.times[cut] - 7 * DAY))
            history_t, history_y = f.times[start:cut], f.values[start:cut]
            future_t, future_y = f.times[cut:], f.values[cut:]
            top, future_top = float(history_y.max()), float(future_y.max())
            spread = float(np.percentile(history_y, 95) - np.percentile(history_y, 5)) or 1.0
            if future_top <= top + 0.1 * spread:
                continue  # never reaches a new level: no honest threshold
            threshold = (top + future_top) / 2.0
            first = int(np.argmax(future_y >= threshold))
            cases.append(
                Case(
                    "NAB " + f.name.split("/")[0],
                    history_t,
                    history_y,
                    threshold,
                    float(future_t[first] - history_t[-1]),
                )
            )
    return cases


def vigil_eta(case: Case) -> float | None:
    forecast = forecast_exhaustion(case.times, case.values, case.threshold)
    return None if forecast is None else forecast.eta_s


def naive_eta(case: Case) -> float | None:
    return naive_linear_eta(case.times, case.values, case.threshold)


def evaluate(cases: list[Case], methods: Mapping[str, Callable[[Case], float | None]]) -> dict[str, object]:
    preds: dict[str, list[float | None]] = {}
    ms: dict[str, float] = {}
    for name, fn in methods.items():
        started = time.perf_counter()
        preds[name] = [fn(c) for c in cases]
        ms[name] = 1000.0 * (time.perf_counter() - started) / max(len(cases), 1)
    both = [i for i in range(len(cases)) if all(preds[m][i] is not None for m in methods)]
    out: dict[str, object] = {"cases": len(cases), "cases_all_predicted": len(both)}
    for name in methods:
        errors = [
            abs(p - c.true_eta_s) / HOUR for p, c in zip(preds[name], cases, strict=True) if p is not None
        ]
        head = [abs(float(preds[name][i]) - cases[i].true_eta_s) / HOUR for i in both]  # type: ignore[arg-type]
        out[name] = {
            "predicted": len(errors),
            "missed": len(cases) - len(errors),
            "mae_h": statistics.fmean(errors) if errors else math.nan,
            "median_ae_h": statistics.median(errors) if errors else math.nan,
            "mae_h_on_common": statistics.fmean(head) if head else math.nan,
            "median_ae_h_on_common": statistics.median(head) if head else math.nan,
            "ms_per_forecast": ms[name],
        }
    return out


def interval_coverage(cases: list[Case]) -> float:
    inside = total = 0
    for c in cases:
        f = forecast_exhaustion(c.times, c.values, c.threshold)
        if f is None:
            continue
        total += 1
        inside += f.low_s <= c.true_eta_s <= f.high_s
    return inside / total if total else math.nan


def _json_safe(value: object) -> object:
    """NaN is not JSON: report a missing figure as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


@app.command()
def main(
    data: Path = typer.Option(None, "--data", help="NAB directory (data/ and windows.json)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object and nothing else."),
) -> None:
    """Time-to-threshold error of Vigil's forecaster vs a naive linear fit, plus cost per forecast."""
    err = Console(stderr=True)
    methods = {"vigil": vigil_eta, "naive_linear": naive_eta}
    suites: dict[str, list[Case]] = {}
    with err.status("building cases"):
        synthetic = synthetic_cases()
        suites["synthetic"] = synthetic
        suites["synthetic_cleanup"] = [c for c in synthetic if "clean-up" in c.source]
        suites["nab_machine"] = nab_cases(data or shared_data("nab"))
    results: dict[str, object] = {}
    for name, cases in suites.items():
        with err.status(f"forecasting {name} ({len(cases)} cases)"):
            results[name] = evaluate(cases, methods)
            results[name]["vigil_interval_coverage"] = interval_coverage(cases)  # type: ignore[index]
    if json_out:
        print_json(_json_safe(results))
        return
    table = Table(title="Time-to-threshold error in hours (MAE / median) and cost")
    for col in (
        "suite",
        "method",
        "cases",
        "predicted",
        "MAE all",
        "median all",
        "MAE common",
        "median common",
        "ms/forecast",
    ):
        table.add_column(col, justify="right" if col not in ("suite", "method") else "left")
    for suite, res in results.items():
        assert isinstance(res, dict)
        for m in methods:
            r = res[m]
            table.add_row(
                suite,
                m,
                str(res["cases"]),
                str(r["predicted"]),
                f"{r['mae_h']:.1f}",
                f"{r['median_ae_h']:.1f}",
                f"{r['mae_h_on_common']:.1f}",
                f"{r['median_ae_h_on_common']:.1f}",
                f"{r['ms_per_forecast']:.2f}",
            )
    Console(width=160).print(table)
    for suite, res in results.items():
        assert isinstance(res, dict)
        err.print(f"{suite}: Vigil 90% interval coverage {res['vigil_interval_coverage']:.2f}")
    err.print(f"machine: {machine()}")
