"""The alerting parts of the worker: stages and services, built from the backends."""

from __future__ import annotations

from vigil.alerting.notifications.dispatcher import NotificationDispatcher
from vigil.alerting.service import AlertService
from vigil.alerting.timers import AlertTimers
from vigil.backends import Backends
from vigil.pipeline.runner import Service, Stage
from vigil.pipeline.stages.alerting_live_metrics import LiveMetricsStage
from vigil.pipeline.stages.correlate import AlertSignalsStage, FindingsStage


def alerting_stages(backends: Backends) -> list[Stage]:
    service = AlertService(backends.db, backends.bus)
    return [AlertSignalsStage(service), FindingsStage(service), LiveMetricsStage(backends.bus)]


def alerting_services(backends: Backends) -> list[Service]:
    return [
        AlertTimers(AlertService(backends.db, backends.bus)),
        NotificationDispatcher(backends.db, backends.secrets),
    ]
