"""Assembling the worker: every pipeline stage and service, built from the backends."""

from __future__ import annotations

from vigil.alerting.wiring import alerting_services, alerting_stages
from vigil.backends import Backends
from vigil.collectors.scheduler import CollectorScheduler
from vigil.pipeline.runner import Runner, Service, Stage
from vigil.pipeline.stages.enrich import enrich_stage
from vigil.pipeline.stages.ingestion import ingestion_services, ingestion_stages
from vigil.pipeline.stages.logs import log_services
from vigil.pipeline.stages.metrics_wiring import metric_services, metric_stages


def build_stages(backends: Backends) -> list[Stage]:
    stages: list[Stage] = []
    stages += ingestion_stages(backends)
    stages += alerting_stages(backends)
    stages.append(enrich_stage(backends))
    stages += metric_stages(backends)
    return stages


def build_services(backends: Backends) -> list[Service]:
    services: list[Service] = []
    services += ingestion_services(backends)
    services += alerting_services(backends)
    services += log_services(backends)
    services += metric_services(backends)
    services.append(CollectorScheduler(backends))
    return services


def build_runner(backends: Backends) -> Runner:
    return Runner(
        backends.bus,
        build_stages(backends),
        build_services(backends),
        consumer=None if backends.settings.worker_name is None else backends.settings.worker_name,
    )
