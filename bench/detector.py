"""Detector throughput and memory: Vigil's univariate detector against a rolling windowed Gaussian.

Both run in this one process on one core, in pure Python, over the same synthetic series (a
daily cycle with noise, spikes and a level shift, one point a minute). The peer keeps the last
``WINDOW`` points in a deque with running sums (O(1) per point, the usual "rolling z-score").
Memory per series is measured two ways: serialised state, and retained Python heap per series
with tracemalloc over 10,000 live series (200 for the peer, whose windows must be filled).
"""

from __future__ import annotations

import gc
import math
import time
import tracemalloc
from array import array
from collections import deque
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console
from rich.table import Table

from bench._common import machine, print_json
from vigil.analytics.anomaly import UnivariateDetector

app = typer.Typer(add_completion=False, help=__doc__)

WINDOW = 1440  # a day of one-minute points: the peer's memory horizon, like Vigil's daily profile
SERIES_FOR_MEMORY = 10_000


class RollingGaussian:
    """The peer: |z| of each point against the mean and SD of the previous ``WINDOW`` points."""

    __slots__ = ("_sum", "_sum_sq", "_window")

    def __init__(self) -> None:
        self._window: deque[float] = deque(maxlen=WINDOW)
        self._sum = 0.0
        self._sum_sq = 0.0

    def update(self, t: float, x: float) -> float:
        window = self._window
        n = len(window)
        score = 0.0
        if n > 1:
            mean = self._sum / n
            var = self._sum_sq / n - mean * mean
            score = abs(x - mean) / math.sqrt(var) if var > 0 else 0.0
        if n == WINDOW:
            old = window[0]
            self._sum -= old
            self._sum_sq -= old * old
        window.append(x)
        self._sum += x
        self._sum_sq += x * x
        return score

    def update_many(self, times: npt.NDArray[np.float64], values: npt.NDArray[np.float64]) -> list[float]:
        update = self.update
        return [update(t, x) for t, x in zip(times.tolist(), values.tolist(), strict=True)]

    def to_bytes(self) -> bytes:
        return array("d", [self._sum, self._sum_sq, *self._window]).tobytes()


def synthetic_series(n: int, seed: int = 0) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    t: npt.NDArray[np.float64] = 1_700_000_000.0 + 60.0 * np.arange(n, dtype=np.float64)
    y: npt.NDArray[np.float64] = 50 + 10 * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 1, n)
    y[rng.integers(0, n, n // 500)] += 15
    y[n // 2 :] += 5
    return t, y


def _rates(fns: list[Callable[[], object]], n: int, repeats: int = 3) -> list[float]:
    """Points per second of each function, best of ``repeats``. The functions take turns in
    every round, so a burst of load from other processes hits Vigil and the peer alike."""
    best = [math.inf] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            started = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - started)
    return [n / b for b in best]


def _retained_bytes_per_series(
    factory: type, t: npt.NDArray[np.float64], y: npt.NDArray[np.float64], count: int
) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = []
    for _ in range(count):
        det = factory()
        det.update_many(t, y)
        keep.append(det)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    size = (after - before) / count
    del keep
    return size


def measure(n_points: int = 100_000) -> dict[str, dict[str, float]]:
    t, y = synthetic_series(n_points)
    per_point_n = n_points // 4
    results: dict[str, dict[str, float]] = {}

    def vigil_batch() -> None:
        UnivariateDetector().update_many(t, y)

    def vigil_batches_of_100() -> None:
        det = UnivariateDetector()
        for i in range(0, n_points, 100):
            det.update_many(t[i : i + 100], y[i : i + 100])

    def vigil_point() -> None:
        det = UnivariateDetector()
        for tt, yy in zip(t[:per_point_n].tolist(), y[:per_point_n].tolist(), strict=True):
            det.update(tt, yy)

    def peer_batch() -> None:
        RollingGaussian().update_many(t, y)

    def peer_point() -> None:
        det = RollingGaussian()
        for tt, yy in zip(t[:per_point_n].tolist(), y[:per_point_n].tolist(), strict=True):
            det.update(tt, yy)

    vigil_full = UnivariateDetector()
    vigil_full.update_many(t, y)
    peer_full = RollingGaussian()
    peer_full.update_many(t, y)
    memory_t, memory_y = t[:WINDOW], y[:WINDOW]  # enough points to fill the peer's window
    many_vigil, many_peer = _rates([vigil_batch, peer_batch], n_points)
    (batches_vigil,) = _rates([vigil_batches_of_100], n_points)
    point_vigil, point_peer = _rates([vigil_point, peer_point], per_point_n)
    results["vigil"] = {
        "update_many_points_per_s": many_vigil,
        "update_many_batches_of_100_points_per_s": batches_vigil,
        "update_points_per_s": point_vigil,
        "serialised_bytes": float(len(vigil_full.to_bytes())),
        "retained_bytes_per_series": _retained_bytes_per_series(
            UnivariateDetector, memory_t[:20], memory_y[:20], SERIES_FOR_MEMORY
        ),
    }
    results["rolling_gaussian"] = {
        "update_many_points_per_s": many_peer,
        "update_many_batches_of_100_points_per_s": math.nan,
        "update_points_per_s": point_peer,
        "serialised_bytes": float(len(peer_full.to_bytes())),
        # the peer's size grows with its window, so its windows are filled: fewer series
        # suffice (tracemalloc makes filling thousands of windows very slow)
        "retained_bytes_per_series": _retained_bytes_per_series(
            RollingGaussian, memory_t, memory_y, SERIES_FOR_MEMORY // 50
        ),
    }
    return results


def _json_safe(value: object) -> object:
    """NaN is not JSON: report a missing figure as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


@app.command()
def main(
    points: int = typer.Option(100_000, help="Points per throughput run."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object and nothing else."),
) -> None:
    """Points/s per core and memory per series, Vigil vs a rolling windowed Gaussian."""
    err = Console(stderr=True)
    with err.status(f"measuring over {points} points and {SERIES_FOR_MEMORY} series"):
        results = measure(points)
    v, p = results["vigil"], results["rolling_gaussian"]
    ratios = {
        "update_many_vigil_over_peer": v["update_many_points_per_s"] / p["update_many_points_per_s"],
        "update_vigil_over_peer": v["update_points_per_s"] / p["update_points_per_s"],
        "retained_vigil_over_peer": v["retained_bytes_per_series"] / p["retained_bytes_per_series"],
    }
    if json_out:
        print_json(_json_safe({**results, "ratios": ratios, "peer_window": WINDOW}))
        return
    table = Table(title=f"Univariate detector, one core, {points} points (peer window {WINDOW})")
    table.add_column("detector")
    for col in (
        "update_many pts/s",
        "batches of 100 pts/s",
        "update pts/s",
        "serialised B",
        "retained B/series",
    ):
        table.add_column(col, justify="right")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['update_many_points_per_s']:,.0f}",
            "-"
            if math.isnan(r["update_many_batches_of_100_points_per_s"])
            else f"{r['update_many_batches_of_100_points_per_s']:,.0f}",
            f"{r['update_points_per_s']:,.0f}",
            f"{r['serialised_bytes']:,.0f}",
            f"{r['retained_bytes_per_series']:,.0f}",
        )
    Console(width=160).print(table)
    err.print(", ".join(f"{k} {val:.2f}" for k, val in ratios.items()))
    err.print(f"machine: {machine()}")
