"""Helpers for alerting tests: run pipeline stages until their topics are drained, publish
signals and findings, serve the app on a real port (for WebSockets)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import uvicorn

from tests.services import free_port
from vigil.backends import Backends
from vigil.domain import codec
from vigil.domain.alerts import AlertSignal
from vigil.domain.findings import Finding
from vigil.pipeline import topology
from vigil.pipeline.runner import Runner, Stage


async def drain(backends: Backends, stages: Sequence[Stage], idle_rounds: int = 2) -> int:
    """Run the stages (as the worker would) until none of their topics has anything left;
    returns how many messages were processed."""
    runner = Runner(backends.bus, stages, consumer="test-consumer")
    for stage in stages:
        await backends.bus.ensure_group(stage.topic, stage.group)
    handled = 0
    idle = 0
    while idle < idle_rounds:
        busy = False
        for stage in stages:
            messages = await backends.bus.consume(
                stage.topic, stage.group, "test-consumer", count=stage.batch_size, block_ms=20
            )
            if messages:
                busy = True
                handled += len(messages)
                await runner.process(stage, messages)
        idle = 0 if busy else idle + 1
    return handled


async def publish_signals(
    backends: Backends, signals: Sequence[AlertSignal], source: str | None = None
) -> None:
    await backends.bus.publish(
        topology.EXTERNAL_ALERTS, codec.encode_dicts("alerts", [s.to_dict() for s in signals], source=source)
    )


async def publish_findings(backends: Backends, findings: Sequence[Finding]) -> None:
    await backends.bus.publish(
        topology.FINDINGS, codec.encode_dicts("findings", [f.to_dict() for f in findings])
    )


def now_ns(minutes_ago: float = 0) -> int:
    return time.time_ns() - int(minutes_ago * 60e9)


class LiveServer:
    """The Vigil app on a real loopback port, in this event loop."""

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


@contextlib.asynccontextmanager
async def live_server(backends: Backends) -> AsyncIterator[LiveServer]:
    async with LiveServer(backends) as server:
        yield server


def signal(**kw: Any) -> AlertSignal:
    base: dict[str, Any] = {
        "origin": "alertmanager",
        "title": "Something broke",
        "severity": "high",
        "time_ns": now_ns(),
    }
    base.update(kw)
    return AlertSignal(**base)
