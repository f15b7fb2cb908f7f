"""The metrics ingest stage: metric batches from the bus into the metric store.

Several messages are combined into each write (InfluxDB and DuckDB both prefer few large
writes). Writes are idempotent — the same series and timestamp overwrite — so a batch that is
redelivered after a crash is simply written again.

Line-protocol batches (validated by the API, see ``codec``) go to InfluxDB as they are when the
store can take line protocol directly (``write_line_protocol``); otherwise they are parsed.

Failures: an unreachable store (or a 5xx) fails the whole batch, which the runner retries; a
partial write (e.g. a field type conflict, which will never succeed) keeps what was stored, is
logged and counted, and the batch is acknowledged; an undecodable message is dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from prometheus_client import Counter

from vigil.bus.base import Message
from vigil.domain import codec
from vigil.domain.metrics import Point
from vigil.observability import REGISTRY
from vigil.pipeline import topology
from vigil.pipeline.runner import BatchOutcome, PoisonMessage
from vigil.store.metrics.base import MetricStore, MetricStoreError, MetricStoreUnavailable

log = logging.getLogger(__name__)

GROUP = "ingest"
# Line protocol per store request: about one bus message (≤ 5,000 lines), the batch size
# InfluxDB recommends, and below the InfluxDB store's 1 MB gzip threshold: compressing costs
# the worker ~60 ms of CPU per MB, far more than sending the bytes uncompressed on a LAN.
MAX_WRITE_BYTES = (1 << 20) - 1
WRITE_CONCURRENCY = 4

POINTS_WRITTEN = Counter(
    "vigil_metric_points_written_total",
    "Metric points written to the metric store by the ingest stage.",
    registry=REGISTRY,
)
POINTS_DROPPED = Counter(
    "vigil_metric_write_problems_total",
    "Metric writes the store partly refused (e.g. field type conflicts); the rest was stored.",
    registry=REGISTRY,
)

_SERVER_ERROR = re.compile(r"\bHTTP 5\d\d\b")
LineWriter = Callable[[str], Awaitable[None]]


def _is_transient(error: MetricStoreError) -> bool:
    """Worth retrying: the store is unreachable or failed on its side (rather than refusing
    the data, which would fail again)."""
    return isinstance(error, MetricStoreUnavailable) or bool(_SERVER_ERROR.search(str(error)))


class MetricsIngestStage:
    name = "metrics-ingest"
    topic = topology.METRICS
    group = GROUP

    def __init__(self, store: MetricStore, batch_size: int = 20, name: str = "metrics-ingest") -> None:
        self.name = name
        self.store = store
        self.batch_size = batch_size
        writer: Any = getattr(store, "write_line_protocol", None)
        self._write_lines: LineWriter | None = writer if callable(writer) else None

    async def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        outcome = BatchOutcome()
        texts: list[str] = []
        points: list[Point] = []
        count = 0
        for message in messages:
            try:
                batch = codec.decode_metric_batch(message.payload)
                if batch.line_protocol is not None and self._write_lines is not None:
                    texts.append(batch.line_protocol)
                    count += len(batch)
                else:
                    decoded = batch.points()
                    points.extend(decoded)
                    count += len(decoded)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                outcome.failed[message.id] = PoisonMessage(f"not a metric batch: {type(exc).__name__}: {exc}")
        try:
            await self._write(texts, points)
        except MetricStoreError as exc:
            if _is_transient(exc):
                raise
            POINTS_DROPPED.inc()
            log.warning("metric store refused part of a batch (the rest is stored): %s", exc)
        POINTS_WRITTEN.inc(count)
        return outcome

    async def _write(self, texts: list[str], points: list[Point]) -> None:
        jobs: list[Awaitable[None]] = []
        if texts and self._write_lines is not None:
            jobs.extend(self._write_lines(body) for body in _bodies(texts))
        if points:
            jobs.append(self.store.write(points))
        if len(jobs) == 1:
            await jobs[0]
            return
        # A few writes in flight keep InfluxDB busy while the next body is on its way; every
        # write is awaited (and its error raised) before the batch is acknowledged.
        semaphore = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def bounded(job: Awaitable[None]) -> None:
            async with semaphore:
                await job

        results = await asyncio.gather(*(bounded(job) for job in jobs), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            transient = [e for e in errors if not isinstance(e, MetricStoreError) or _is_transient(e)]
            raise transient[0] if transient else errors[0]


def _bodies(texts: list[str]) -> list[str]:
    """Join message texts into request bodies of about MAX_WRITE_BYTES."""
    bodies: list[str] = []
    current: list[str] = []
    size = 0
    for text in texts:
        if current and size + len(text) > MAX_WRITE_BYTES:
            bodies.append("\n".join(current))
            current, size = [], 0
        current.append(text.rstrip("\n"))
        size += len(text) + 1
    if current:
        bodies.append("\n".join(current))
    return bodies
