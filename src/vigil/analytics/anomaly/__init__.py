"""Streaming anomaly detection for metric series. Pure code: no I/O.

Public API (everything else is internal):

``UnivariateDetector(config=None)``
    One per series. ``update(t, x) -> DetectionResult`` or ``update_many(times, values) ->
    BatchResult`` (identical results, the batch is several times faster). **Timestamps are
    seconds since the Unix epoch (UTC) as floats** -- divide ``Point.time_ns`` by 1e9. O(1)
    time and memory per point; ``to_bytes()`` / ``UnivariateDetector.from_bytes()`` move a
    series between workers with bit-identical results afterwards (~1.1 KiB).

``DetectionResult``
    The evidence a finding carries: ``score`` (0..1, how unusual the recent behaviour is for
    this series), ``onset`` (0..1, non-zero only where the score beats the series' recent peak:
    the start of an event), ``is_anomalous`` (the ensemble's verdict), ``expected`` and the
    band ``lower``..``upper``, ``methods`` (the tests that fired: ``zscore``, ``iqr``,
    ``level_shift``, ``trend``) and ``evidence`` (strongest test, 1.0 = its threshold).

``NoiseGate(NoiseConfig)``
    Per-series state machine over a score stream: warm-up, hysteresis, minimum duration,
    cooldown; ``update(t, score)`` returns ``Transition("open" | "update" | "resolve")`` or
    None. The detect stage feeds it ``DetectionResult.score`` and turns transitions into
    findings.

``HostModel(metric_names)``
    Isolation Forest over a host's key metrics: ``fit(matrix)`` on recent history (refresh on
    a schedule), ``score(vector) -> MultivariateResult``.

``SecondOpinion`` / ``SecondOpinionPolicy`` / ``ReviewRequest`` / ``ReviewVerdict``
    The seam for an optional reviewer (e.g. an LLM) of findings whose peak score reaches
    ``SecondOpinionPolicy.min_score``; implementations live outside ``analytics``.

Typical use in the detect stage::

    det = detectors.get(key) or UnivariateDetector()
    gate = gates.get(key) or NoiseGate(NoiseConfig(warmup_points=det.config.warmup_points))
    res = det.update(point.time_ns / 1e9, value)
    if (tr := gate.update(res.time, res.score)) is not None:
        emit_finding(key, tr, res)        # open / update / resolve
"""

from vigil.analytics.anomaly.detector import (
    METHOD_NAMES,
    BatchResult,
    DetectionResult,
    DetectorConfig,
    UnivariateDetector,
    methods_from_mask,
)
from vigil.analytics.anomaly.multivariate import HostModel, MultivariateResult
from vigil.analytics.anomaly.noise import NoiseConfig, NoiseGate, Transition
from vigil.analytics.anomaly.review import ReviewRequest, ReviewVerdict, SecondOpinion, SecondOpinionPolicy

__all__ = [
    "METHOD_NAMES",
    "BatchResult",
    "DetectionResult",
    "DetectorConfig",
    "HostModel",
    "MultivariateResult",
    "NoiseConfig",
    "NoiseGate",
    "ReviewRequest",
    "ReviewVerdict",
    "SecondOpinion",
    "SecondOpinionPolicy",
    "Transition",
    "UnivariateDetector",
    "methods_from_mask",
]
