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


def _role_parts(backends: Backends, role: str) -> tuple[list[Stage], list[Service]]:
    """The stages and services one role runs (each service runs as its own task, so their
    order does not matter)."""
    if role == "ingest":
        services = [*ingestion_services(backends), *log_services(backends), CollectorScheduler(backends)]
        return ingestion_stages(backends), services
    if role == "alerting":
        return alerting_stages(backends), alerting_services(backends)
    if role == "enrich":
        return [enrich_stage(backends)], []
    if role == "metrics":
        return metric_stages(backends), metric_services(backends)
    raise ValueError(f"unknown worker role {role!r}")


def build_parts(backends: Backends, roles: Collection[str] = ROLES) -> tuple[list[Stage], list[Service]]:
    """The stages and services of these roles, built once each."""
    check_roles(roles)
    stages: list[Stage] = []
    services: list[Service] = []
    for role in ROLES:
        if role in roles:
            role_stages, role_services = _role_parts(backends, role)
            stages += role_stages
            services += role_services
    return stages, services


def build_runner(backends: Backends, roles: Collection[str] = ROLES) -> Runner:
    stages, services = build_parts(backends, roles)
    return Runner(backends.bus, stages, services, consumer=backends.settings.worker_name)
