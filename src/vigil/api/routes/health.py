"""Liveness, readiness and Prometheus metrics. These three need no authentication."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vigil import __version__
from vigil.api.auth import backends_of
from vigil.observability import BUS_DEAD_LETTERS, BUS_LAG, BUS_PENDING, REGISTRY

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz", summary="Readiness: every backend is reachable, with per-backend detail")
async def readyz(request: Request) -> JSONResponse:
    backends = backends_of(request)
    checks = await backends.readiness()
    ready = all(c["ok"] for c in checks.values())
    return JSONResponse(
        {
            "status": "ready" if ready else "unavailable",
            "profile": backends.settings.profile,
            "backends": checks,
        },
        status_code=200 if ready else 503,
    )


@router.get("/metrics", summary="Prometheus metrics of this process and the bus")
async def metrics(request: Request) -> Response:
    backends = backends_of(request)
    consumers = getattr(request.app.state, "bus_groups", [])
    for topic, group in consumers:
        try:
            stats = await backends.bus.group_stats(topic, group)
        except Exception:
            continue
        BUS_PENDING.labels(topic, group).set(stats.pending)
        BUS_LAG.labels(topic, group).set(stats.lag)
    with contextlib.suppress(Exception):
        BUS_DEAD_LETTERS.set(len(await backends.bus.list_dead_letters(limit=100_000)))
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
