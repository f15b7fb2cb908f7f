"""Live tail over a real WebSocket (uvicorn in the test's event loop), and retention, on both
profiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn
import websockets
from sqlalchemy import func, select

from tests.integration.conftest import Api
from tests.integration.logs.conftest import RunningWorker, publish, sample_records
from tests.services import free_port
from vigil.api.app import create_app
from vigil.backends import Backends
from vigil.domain.logs import LogRecord
from vigil.logs.retention import LogRetention
from vigil.store.models.logs import LogLine, LogTemplate


@pytest.fixture
async def live_url(api: Api) -> AsyncIterator[str]:
    port = free_port()
    app = create_app(api.backends, manage_backends=False)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=5)


async def _next_logs(ws: websockets.ClientConnection) -> list[dict[str, object]]:
    message = json.loads(await asyncio.wait_for(ws.recv(), timeout=5.0))
    assert message["type"] == "logs"
    return list(message["items"])


async def test_live_tail_with_filters(api: Api, live_url: str, log_worker: RunningWorker) -> None:
    token = await api.token("viewer")
    url = f"{live_url}/ws/logs?token={token}&service=sshd&q=user1"
    async with websockets.connect(url) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
        assert hello["type"] == "hello" and hello["filters"] == {"service": ["sshd"], "q": "user1"}
        await publish(api.backends, sample_records(60))
        items = await _next_logs(ws)
        assert items and all(i["service"] == "sshd" and "user1" in str(i["message"]) for i in items)
        assert {"id", "template_id", "failure_type", "host"} <= set(items[0])
        # Lines that do not match never arrive.
        await publish(api.backends, [LogRecord(time.time_ns(), "GET / 200", service="nginx")])
        await publish(
            api.backends,
            [LogRecord(time.time_ns(), "Failed password for user1 from 1.2.3.4 port 1 ssh2", service="sshd")],
        )
        later = await _next_logs(ws)
        assert [i["service"] for i in later] == ["sshd"]


async def test_live_tail_refuses_strangers(api: Api, live_url: str) -> None:
    async with websockets.connect(f"{live_url}/ws/logs") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    async with websockets.connect(f"{live_url}/ws/logs?token=not-a-token") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def _count_lines(backends: Backends) -> int:
    async with backends.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(LogLine))).scalar_one())


async def test_retention_by_age_and_count(backends: Backends, log_worker: RunningWorker) -> None:
    day_ns = 86_400_000_000_000
    now = time.time_ns()
    old = [LogRecord(now - 10 * day_ns + i, f"old event {i} happened", host="a") for i in range(30)]
    new = [LogRecord(now - 60_000_000_000 + i * 1000, f"new event {i} happened", host="a") for i in range(40)]
    await publish(backends, old + new)
    await log_worker.drain()
    assert await _count_lines(backends) == 70

    result = await LogRetention(backends, max_age_days=7, max_lines=25).run_once()
    assert (result.by_age, result.by_count) == (30, 15)
    async with backends.db.session() as session:
        kept = list((await session.execute(select(LogLine.message).order_by(LogLine.time_ns))).scalars())
        templates = (await session.execute(select(func.count()).select_from(LogTemplate))).scalar_one()
    assert kept == [f"new event {i} happened" for i in range(15, 40)]
    assert templates >= 1  # templates are history: kept
    # The full-text index follows the deletions.
    from vigil.logs.search import LogFilters, search

    assert (await search(backends.db, LogFilters(q="old"), limit=10))[0] == []
    assert len((await search(backends.db, LogFilters(q="new"), limit=100))[0]) == 25
