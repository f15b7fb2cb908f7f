"""Every API router, in the order they are mounted."""

from fastapi import APIRouter

from vigil.api.routes import audit, auth, deadletters, health, tokens, users

ROUTERS: list[APIRouter] = [
    health.router,
    auth.router,
    users.router,
    tokens.router,
    audit.router,
    deadletters.router,
]
