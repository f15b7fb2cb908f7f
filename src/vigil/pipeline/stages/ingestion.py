"""The ingestion stages and services, as the worker assembles them (see pipeline.worker)."""

from __future__ import annotations

from vigil.backends import Backends
from vigil.pipeline.runner import Service, Stage
from vigil.pipeline.stages.errors_ingest import ErrorsIngestStage
from vigil.pipeline.stages.inventory import inventory_stages
from vigil.pipeline.stages.metrics_ingest import MetricsIngestStage

# Consumers of the metrics topic per worker (one consumer group): while one waits for the metric
# store to acknowledge its writes, the others take the next batches, so a single worker keeps
# several writes in flight, as a direct InfluxDB client would.
METRICS_CONSUMERS = 3


def ingestion_stages(backends: Backends) -> list[Stage]:
    settings = backends.settings
    return [
        *(
            MetricsIngestStage(backends.metrics, name=f"metrics-ingest-{n}")
            for n in range(1, METRICS_CONSUMERS + 1)
        ),
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
