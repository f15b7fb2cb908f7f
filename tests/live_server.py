"""The Vigil app on a real loopback port, served from the test's event loop: for clients that
need a socket (WebSockets, sentry-sdk's own thread, the demo's HTTP senders)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import uvicorn

from tests.services import free_port
from vigil.backends import Backends


class LiveServer:
    def __init__(self, backends: Backends) -> None:
        from vigil.api.app import create_app

        self.port = free_port()
        config = uvicorn.Config(
            create_app(backends, manage_backends=False),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            ws_ping_interval=None,
        )
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> LiveServer:
        self._task = asyncio.create_task(self.server.serve())
        deadline = time.monotonic() + 10
        while not self.server.started:
            if self._task.done():
                await self._task
            if time.monotonic() > deadline:
                raise RuntimeError("live server did not start")
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=10)
