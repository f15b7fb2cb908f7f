"""The metric intelligence side of the worker, as ``pipeline.worker`` assembles it."""

from __future__ import annotations

from vigil.backends import Backends
from vigil.pipeline.runner import Service, Stage
from vigil.pipeline.stages.detect import MetricDetector
from vigil.pipeline.stages.metrics_findings import FindingsStoreStage
from vigil.pipeline.stages.multivariate import HostModelService


def metric_stages(backends: Backends) -> list[Stage]:
    return [FindingsStoreStage(backends.db)]


def metric_services(backends: Backends) -> list[Service]:
    from vigil.llm.factory import second_opinion

    # None unless an LLM is configured: detection then runs without a second opinion.
    return [MetricDetector(backends, reviewer=second_opinion(backends)), HostModelService(backends)]
