"""Every API router, in the order they are mounted."""

from fastapi import APIRouter

from vigil.api import ws
from vigil.api.routes import (
    alerts,
    audit,
    auth,
    deadletters,
    errors,
    health,
    incidents,
    influx_compat,
    inventory,
    kpis,
    llm,
    log_clusters,
    log_tail,
    logs,
    notifications,
    rca,
    sentry_ingest,
    silences,
    tokens,
    users,
    webhooks,
)

ROUTERS: list[APIRouter] = [
    health.router,
    auth.router,
    users.router,
    tokens.router,
    audit.router,
    deadletters.router,
    webhooks.router,
    influx_compat.router,
    sentry_ingest.router,
    errors.router,
    inventory.router,
    alerts.router,
    incidents.router,
    silences.router,
    notifications.router,
    kpis.router,
    ws.router,
    logs.router,
    log_clusters.router,
    log_tail.router,
    llm.router,
    rca.router,
]
