"""Multivariate anomaly detection per host: an Isolation Forest over the host's key metrics.

Each column is one metric (CPU, memory, disk I/O, ...); each row one time step. Columns are
robustly standardised (median / IQR of the training matrix) so no metric dominates by its
unit. The score is the forest's (it catches unusual *combinations*), raised for values beyond
anything in the training data, which a forest alone ranks poorly. The pipeline refits the
model on the host's recent history on its own schedule and scores each new row with
``score``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest


@dataclass(frozen=True, slots=True)
class MultivariateResult:
    score: float  # 0..1, Isolation Forest's anomaly score (about 0.5 and below is normal)
    is_anomalous: bool  # score above the model's threshold learnt at fit time
    contributions: dict[str, float]  # per metric: |robust z| against the training data


class HostModel:
    """Isolation Forest over a host's metrics; ``fit(matrix)`` then ``score(vector)``."""

    def __init__(
        self,
        metric_names: Sequence[str],
        *,
        n_estimators: int = 100,
        contamination: float = 0.01,
        random_state: int = 0,
    ) -> None:
        self.metric_names = tuple(metric_names)
        self.n_estimators = n_estimators
        self.contamination = contamination
        self.random_state = random_state
        self._forest: IsolationForest | None = None
        self._center = np.zeros(len(self.metric_names))
        self._spread = np.ones(len(self.metric_names))
        self._threshold = 1.0
        self._max_abs_z = np.ones(len(self.metric_names))

    @property
    def is_fitted(self) -> bool:
        return self._forest is not None

    def fit(self, matrix: npt.ArrayLike) -> HostModel:
        """Train on recent history (rows = time steps, columns = ``metric_names``)."""
        data = np.asarray(matrix, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != len(self.metric_names):
            raise ValueError(f"expected a (n, {len(self.metric_names)}) matrix, got {data.shape}")
        if data.shape[0] < 16:
            raise ValueError("need at least 16 rows of history to fit")
        self._center = np.median(data, axis=0)
        q75, q25 = np.percentile(data, [75, 25], axis=0)
        spread = (q75 - q25) / 1.349
        # a constant metric has no spread: use a small share of its magnitude instead
        fallback = np.maximum(np.abs(self._center) * 0.01, 1e-9)
        self._spread = np.where(spread > 0, spread, fallback)
        forest = IsolationForest(
            n_estimators=self.n_estimators,
            contamination="auto",
            random_state=self.random_state,
        )
        standard = self._standardise(data)
        self._max_abs_z = np.maximum(np.abs(standard).max(axis=0), 1.0)
        forest.fit(standard)
        train_scores = -forest.score_samples(standard)
        self._threshold = float(np.quantile(train_scores, 1.0 - self.contamination))
        self._forest = forest
        return self

    def _standardise(self, data: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return (data - self._center) / self._spread

    def score_many(self, matrix: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Anomaly scores (0..1) of many rows at once."""
        if self._forest is None:
            raise RuntimeError("fit the model before scoring")
        data = np.atleast_2d(np.asarray(matrix, dtype=np.float64))
        standard = self._standardise(data)
        forest_score = -self._forest.score_samples(standard)
        # The forest's splits are drawn inside the training range, so it cannot tell "just past
        # the largest value seen" from "ten times past it". Values beyond every training value
        # of a metric are scored by how far beyond they are: 0.5 at the edge, 0.75 at twice.
        beyond = (np.abs(standard) / self._max_abs_z).max(axis=1)
        beyond_score = np.where(beyond > 1.0, 1.0 - 0.5 / np.maximum(beyond, 1.0), 0.0)
        return np.maximum(forest_score, beyond_score)

    def score(self, vector: Sequence[float] | npt.ArrayLike) -> MultivariateResult:
        """Score one row of current values."""
        row = np.asarray(vector, dtype=np.float64).reshape(1, -1)
        value = float(self.score_many(row)[0])
        z = np.abs(self._standardise(row)[0])
        return MultivariateResult(
            score=value,
            is_anomalous=value > self._threshold,
            contributions={name: float(v) for name, v in zip(self.metric_names, z, strict=True)},
        )
