"""Every API router, in the order they are mounted."""

from fastapi import APIRouter

from vigil.api.routes import (
    audit,
    auth,
    deadletters,
    health,
    llm,
    log_clusters,
    log_tail,
    logs,
    rca,
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
    logs.router,
    log_clusters.router,
    log_tail.router,
    llm.router,
    rca.router,
]
