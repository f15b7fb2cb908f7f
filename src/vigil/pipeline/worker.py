"""Assembling the worker: the pipeline stages and services of its roles, built from the backends.

A worker runs every role unless told otherwise. Splitting roles over processes (say, a worker
with only ``alerting`` for fast live updates and others for the rest) changes nothing about the
results, as long as every role runs somewhere: each stage reads its own consumer group.
"""

from __future__ import annotations

from collections.abc import Collection

from vigil.alerting.wiring import alerting_services, alerting_stages
from vigil.backends import Backends
from vigil.collectors.scheduler import CollectorScheduler
from vigil.pipeline.roles import ROLES, check_roles
from vigil.pipeline.runner import Runner, Service, Stage
from vigil.pipeline.stages.enrich import enrich_stage
from vigil.pipeline.stages.ingestion import ingestion_services, ingestion_stages
from vigil.pipeline.stages.logs import log_services
from vigil.pipeline.stages.metrics_wiring import metric_services, metric_stages


def build_stages(backends: Backends, roles: Collection[str] = ROLES) -> list[Stage]:
    check_roles(roles)
    stages: list[Stage] = []
    if "ingest" in roles:
        stages += ingestion_stages(backends)
    if "alerting" in roles:
        stages += alerting_stages(backends)
    if "enrich" in roles:
        stages.append(enrich_stage(backends))
    if "metrics" in roles:
        stages += metric_stages(backends)
    return stages


def build_services(backends: Backends, roles: Collection[str] = ROLES) -> list[Service]:
    check_roles(roles)
    services: list[Service] = []
    if "ingest" in roles:
        services += ingestion_services(backends)
    if "alerting" in roles:
        services += alerting_services(backends)
    if "ingest" in roles:
        services += log_services(backends)
    if "metrics" in roles:
        services += metric_services(backends)
    if "ingest" in roles:
        services.append(CollectorScheduler(backends))
    return services


def build_runner(backends: Backends, roles: Collection[str] = ROLES) -> Runner:
    return Runner(
        backends.bus,
        build_stages(backends, roles),
        build_services(backends, roles),
        consumer=None if backends.settings.worker_name is None else backends.settings.worker_name,
    )
