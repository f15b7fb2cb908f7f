"""Killing a worker while it holds webhook batches loses nothing: on Redis, a worker process
is SIGKILLed half-way through writing a batch; another worker picks the messages up after the
visibility timeout and every point ends up in InfluxDB exactly once."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.conftest import Api
from tests.integration.ingest.helpers import Ingest, drain, make_ingest
from vigil.domain.metrics import MetricQuery
from vigil.pipeline.stages.metrics_ingest import MetricsIngestStage

HERE = Path(__file__).parent
BATCHES = 4
POINTS_PER_BATCH = 2_500
T0 = (int(time.time()) - 3600) * 10**9


@pytest.fixture
async def ingest(api: Api) -> AsyncIterator[Ingest]:
    async with api.anonymous() as client:
        yield await make_ingest(api.backends, client)


async def _count(ingest: Ingest) -> int:
    query = MetricQuery("killtest", "v", T0 - 10**9, T0 + 10**14, aggregation="count")
    return int(sum(s.values[0] or 0 for s in await ingest.backends.metrics.query(query)))


@pytest.mark.parametrize("profile", ["distributed"])
async def test_a_killed_worker_loses_no_webhook_batch(profile: str, ingest: Ingest, tmp_path: Path) -> None:
    assert profile == "distributed"  # Redis Streams and InfluxDB
    settings = ingest.backends.settings
    token = await ingest.token()
    for batch in range(BATCHES):
        lines = "\n".join(
            f"killtest,host=h{i % 25} v={i}i {T0 + (batch * POINTS_PER_BATCH + i) * 10**6}"
            for i in range(POINTS_PER_BATCH)
        )
        response = await ingest.client.post(
            "/webhooks/telegraf", content=lines.encode(), headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 204
    marker = tmp_path / "holding"
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "stalling_metrics_worker.py"),
        "--redis-url",
        str(settings.redis_url),
        "--prefix",
        settings.redis_prefix,
        "--influx-url",
        str(settings.influx_url),
        "--database",
        settings.influx_database,
        "--marker",
        str(marker),
        "--visibility-ms",
        str(settings.bus_visibility_timeout_ms),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            if worker.returncode is not None:
                output = await worker.stdout.read() if worker.stdout else b""
                raise AssertionError(f"the worker exited: {output.decode()}")
            assert time.monotonic() < deadline, "the worker never took a batch"
            await asyncio.sleep(0.05)
        held_messages, held_points = map(int, marker.read_text().split())
        assert held_messages == BATCHES and held_points == BATCHES * POINTS_PER_BATCH
        worker.send_signal(signal.SIGKILL)
        await asyncio.wait_for(worker.wait(), timeout=10)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    partial = await _count(ingest)
    assert 0 < partial < BATCHES * POINTS_PER_BATCH  # it died half-way

    stages = [s for s in ingest.stages if isinstance(s, MetricsIngestStage)]
    deadline = time.monotonic() + 20
    while await _count(ingest) < BATCHES * POINTS_PER_BATCH and time.monotonic() < deadline:
        await drain(ingest.backends, stages)
    assert await _count(ingest) == BATCHES * POINTS_PER_BATCH
    assert await ingest.backends.bus.list_dead_letters() == []
    stats = await ingest.backends.bus.group_stats(stages[0].topic, stages[0].group)
    assert (stats.pending, stats.lag) == (0, 0)
