"""The FastAPI application: routes, middleware, error format, the web UI's static files."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from vigil import __version__
from vigil.api.problems import install_problem_handlers
from vigil.api.routes import ROUTERS
from vigil.backends import Backends
from vigil.observability import HTTP_REQUEST_SECONDS

log = logging.getLogger(__name__)

DEFAULT_WEB_DIR = Path(__file__).resolve().parents[3] / "web" / "out"


def create_app(backends: Backends, *, manage_backends: bool = True) -> FastAPI:
    """Build the API. With ``manage_backends`` the app starts and closes the backends itself
    (``vigil api``); ``vigil up`` starts them once for the API and the worker together."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_backends and not backends.started:
            await backends.start()
        try:
            yield
        finally:
            if manage_backends:
                await backends.close()

    app = FastAPI(
        title="Vigil API",
        version=__version__,
        description="Ingest telemetry, query metrics and logs, manage alerts, incidents and "
        "automation. Authenticate with a session cookie (POST /api/v1/auth/login) or "
        "`Authorization: Bearer <token>`. Errors are RFC 9457 problem documents.",
        lifespan=lifespan,
    )
    app.state.backends = backends
    from vigil.pipeline.topology import consumer_groups

    app.state.bus_groups = consumer_groups()
    install_problem_handlers(app)
    app.middleware("http")(_observe)
    for router in ROUTERS:
        app.include_router(router)

    web_dir = backends.settings.web_dir or DEFAULT_WEB_DIR
    if (web_dir / "index.html").is_file():
        app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
    else:

        @app.get("/", include_in_schema=False)
        async def root() -> dict[str, str]:
            return {
                "name": "Vigil",
                "version": __version__,
                "docs": "/docs",
                "web": "no web UI is built here: set VIGIL_WEB_DIR to serve one at /",
            }

    return app


def _route_template(request: Request) -> str:
    """The matched route's path template, so metric labels do not explode with ids."""
    route = request.scope.get("route")
    return str(getattr(route, "path", "unmatched"))


async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    request.state.request_id = request_id
    begin = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - begin
        HTTP_REQUEST_SECONDS.labels(request.method, _route_template(request), f"{status // 100}xx").observe(
            elapsed
        )
