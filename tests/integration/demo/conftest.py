"""Vigil on a real loopback port (the demo talks HTTP, and sentry-sdk posts from its own
thread), and a way to run the ingestion stages until what the demo sent is processed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence

import pytest
import uvicorn

from tests.integration.conftest import Api
from tests.services import free_port
from vigil.backends import Backends
from vigil.pipeline.runner import Runner, Stage


class LiveVigil:
    def __init__(self, backends: Backends) -> None:
        from vigil.api.app import create_app

        self.port = free_port()
        config = uvicorn.Config(
            create_app(backends, manage_backends=False), host="127.0.0.1", port=self.port,
            log_level="warning", lifespan="off",
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        deadline = time.monotonic() + 10
        while not self.server.started:
            if self.task.done():
                await self.task
            if time.monotonic() > deadline:
                raise RuntimeError("Vigil did not start listening")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self.task, timeout=10)


@pytest.fixture
async def live(api: Api) -> AsyncIterator[LiveVigil]:
    server = LiveVigil(api.backends)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def drain(backends: Backends, stages: Sequence[Stage], idle_rounds: int = 3) -> int:
    """Run the stages as the worker would until their topics stay empty; messages handled."""
    runner = Runner(backends.bus, stages, consumer="demo-test")
    for stage in stages:
        await backends.bus.ensure_group(stage.topic, stage.group)
    handled = idle = 0
    while idle < idle_rounds:
        busy = False
        for stage in stages:
            messages = await backends.bus.consume(
                stage.topic, stage.group, "demo-test", count=stage.batch_size, block_ms=20
            )
            if messages:
                busy = True
                handled += len(messages)
                await runner.process(stage, messages)
        idle = 0 if busy else idle + 1
    return handled
