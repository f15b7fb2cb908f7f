"""Metric intelligence around the pure detectors: series identity and partitioning, detector
state, baselines in the metric store, prediction rules, findings and the series query service.

The pipeline side (which worker runs what) is in ``vigil.pipeline.stages.detect``,
``predict`` and ``multivariate``; the API in ``vigil.api.routes.metrics`` and ``findings``.
"""
