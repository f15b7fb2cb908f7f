"""The per-host Isolation Forest."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.analytics.anomaly import HostModel

METRICS = ("cpu", "memory", "disk_io", "net_in")


def history(n: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cpu = rng.normal(40, 5, n)
    # memory follows CPU on this host; bytes columns have huge units
    memory = 0.5 * cpu + rng.normal(30, 1, n)
    disk = rng.normal(2e6, 2e5, n)
    net = rng.normal(5e7, 5e6, n)
    return np.column_stack([cpu, memory, disk, net])


def test_normal_rows_score_low_and_a_broken_correlation_scores_high() -> None:
    model = HostModel(METRICS).fit(history())
    normal = model.score([40.0, 50.0, 2e6, 5e7])
    assert not normal.is_anomalous
    # each value on its own is plausible, the combination is not (CPU high, memory low)
    odd = model.score([58.0, 40.0, 2e6, 5e7])
    assert odd.is_anomalous
    assert odd.score > normal.score + 0.1
    assert max(odd.contributions, key=odd.contributions.__getitem__) in {"cpu", "memory"}


def test_scale_of_a_metric_does_not_dominate() -> None:
    data = history(seed=1)
    model = HostModel(METRICS).fit(data)
    # a +4e5 step on the byte column (2 SDs) matters as much as +10 on CPU (2 SDs)
    io_step = model.score([40.0, 50.0, 2e6 + 4e5, 5e7]).score
    cpu_step = model.score([50.0, 55.0, 2e6, 5e7]).score
    typical = float(np.median(model.score_many(data)))
    assert io_step > typical and cpu_step > typical
    assert abs(io_step - cpu_step) < 0.1
    io_spike = model.score([40.0, 50.0, 2e6 + 3e6, 5e7])  # 15 robust SDs on the byte column
    assert io_spike.score > model.score_many(data).max() - 0.05
    assert max(io_spike.contributions, key=io_spike.contributions.__getitem__) == "disk_io"


def test_refit_is_deterministic_and_score_many_matches_score() -> None:
    data = history(seed=2)
    a = HostModel(METRICS, random_state=3).fit(data)
    b = HostModel(METRICS, random_state=3).fit(data)
    rows = data[:5]
    assert np.array_equal(a.score_many(rows), b.score_many(rows))
    assert a.score(rows[0]).score == pytest.approx(float(a.score_many(rows)[0]))


def test_misuse_is_reported() -> None:
    model = HostModel(METRICS)
    assert not model.is_fitted
    with pytest.raises(RuntimeError):
        model.score([1, 2, 3, 4])
    with pytest.raises(ValueError):
        model.fit(np.zeros((100, 3)))
    with pytest.raises(ValueError):
        model.fit(np.zeros((5, 4)))
