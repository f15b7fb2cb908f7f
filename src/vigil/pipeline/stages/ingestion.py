"""The ingestion stages and services, as the worker assembles them (see pipeline.worker)."""

from __future__ import annotations

from vigil.backends import Backends
from vigil.pipeline.runner import Service, Stage
from vigil.pipeline.stages.errors_ingest import ErrorsIngestStage
from vigil.pipeline.stages.inventory import inventory_stages
from vigil.pipeline.stages.metrics_ingest import MetricsIngestStage


def ingestion_stages(backends: Backends) -> list[Stage]:
    settings = backends.settings
    return [
        MetricsIngestStage(backends.metrics),
        ErrorsIngestStage(backends.db, backends.bus, events_per_group=settings.error_events_per_group),
        *inventory_stages(backends.db),
    ]


def ingestion_services(backends: Backends) -> list[Service]:
    settings = backends.settings
    services: list[Service] = []
    if settings.syslog_port is not None:
        from vigil.ingest.syslog import SyslogListener

        services.append(SyslogListener(backends.bus, settings.syslog_host, settings.syslog_port))
    return services
