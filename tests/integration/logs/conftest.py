"""Helpers for the log tests: publish records like the webhooks do, run the log worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest

from vigil.backends import Backends
from vigil.domain import codec
from vigil.domain.logs import LogRecord
from vigil.logs.semantic import TemplateIndexer
from vigil.pipeline import topology
from vigil.pipeline.stages.logs import LogWorker

# An hour ago (well inside retention), on a whole minute so time buckets are predictable.
BASE_NS = (time.time_ns() - 3_600_000_000_000) // 60_000_000_000 * 60_000_000_000


async def publish(backends: Backends, records: Sequence[LogRecord], source: str | None = "app") -> None:
    await backends.bus.publish(
        topology.LOGS, codec.encode_dicts("logs", [r.to_dict() for r in records], source)
    )


def sample_records(n: int = 60, start_ns: int = BASE_NS) -> list[LogRecord]:
    """Realistic lines from three hosts: ssh failures, disk full, requests."""
    records = []
    for i in range(n):
        t = start_ns + i * 1_000_000_000
        host = f"web-{i % 3}"
        kind = i % 3
        if kind == 0:
            message = f"Failed password for user{i % 5} from 10.0.{i % 4}.{i % 200} port {4000 + i} ssh2"
            records.append(LogRecord(t, message, host=host, service="sshd", level="warning", os="linux"))
        elif kind == 1:
            message = f"write error on /dev/sda{i % 4}: No space left on device"
            records.append(LogRecord(t, message, host=host, service="kernel", level="error", os="linux"))
        else:
            message = f"GET /api/items/{i} HTTP/1.1 200 {100 + i} bytes in {i % 9} ms"
            records.append(LogRecord(t, message, host=host, service="nginx", level="info", os="linux"))
    return records


class RunningWorker:
    def __init__(self, backends: Backends, worker: LogWorker) -> None:
        self.backends = backends
        self.worker = worker
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.worker.run(self.stopping))
        deadline = time.monotonic() + 10
        while len(self.worker.consumers) < self.worker.shards:
            if time.monotonic() > deadline:
                raise TimeoutError("log worker did not take its shards")
            await asyncio.sleep(0.02)

    async def drain(self) -> None:
        await self.worker.drain()

    async def stop(self) -> None:
        self.stopping.set()
        if self.task is not None:
            await self.task


def make_worker(backends: Backends, **kwargs: object) -> LogWorker:
    options: dict[str, object] = {"shards": 2, "block_ms": 50, "lease_ttl_ms": 3000}
    options.update(kwargs)
    return LogWorker(backends, **options)  # type: ignore[arg-type]


@pytest.fixture
async def log_worker(backends: Backends) -> AsyncIterator[RunningWorker]:
    running = RunningWorker(backends, make_worker(backends))
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def index_templates(backends: Backends) -> None:
    indexer = TemplateIndexer(backends)
    while await indexer.run_once():
        pass
