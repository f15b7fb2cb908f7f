"""Every API router, in the order they are mounted."""

from fastapi import APIRouter

from vigil.api import ws
from vigil.api.routes import (
    alerts,
    audit,
    auth,
    deadletters,
    health,
    incidents,
    kpis,
    llm,
    log_clusters,
    log_tail,
    logs,
    notifications,
    rca,
    silences,
    tokens,
    users,
)

ROUTERS: list[APIRouter] = [
    health.router,
    auth.router,
    users.router,
    tokens.router,
    audit.router,
    deadletters.router,
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
