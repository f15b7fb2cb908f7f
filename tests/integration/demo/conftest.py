"""Vigil on a real loopback port (the demo talks HTTP, and sentry-sdk posts from its own
thread), and a way to run the ingestion stages until what the demo sent is processed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest

from tests.integration.conftest import Api
from tests.live_server import LiveServer
from vigil.backends import Backends
from vigil.pipeline.runner import Runner, Stage


@pytest.fixture
async def live(api: Api) -> AsyncIterator[LiveServer]:
    # the demo's senders may hold a connection open past the server's shutdown wait
    with contextlib.suppress(TimeoutError):
        async with LiveServer(api.backends) as server:
            yield server


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
