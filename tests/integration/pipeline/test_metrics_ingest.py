"""The metrics ingest stage on both profiles: both message shapes into the store, combined
writes, idempotent redelivery, partial writes, an unavailable store retried without loss."""

from __future__ import annotations

import time
from collections.abc import Sequence

from tests.integration.ingest.helpers import drain
from vigil.backends import Backends
from vigil.bus.base import Message
from vigil.domain import codec
from vigil.domain.metrics import MetricQuery, Point
from vigil.pipeline import topology
from vigil.pipeline.stages.metrics_ingest import POINTS_DROPPED, MetricsIngestStage
from vigil.store.metrics.base import MetricStore, MetricStoreUnavailable

T0 = (int(time.time()) - 600) * 10**9


async def _count(backends: Backends, measurement: str, field: str = "v") -> int:
    query = MetricQuery(measurement, field, T0 - 10**14, T0 + 10**14, aggregation="count")
    return int(sum(s.values[0] or 0 for s in await backends.metrics.query(query)))


def _lp(measurement: str, n: int, offset: int = 0) -> str:
    return "\n".join(f"{measurement},host=h{i % 10} v={i} {T0 + (offset + i) * 10**9}" for i in range(n))


async def _consume_all(backends: Backends, stage: MetricsIngestStage) -> list[Message]:
    await backends.bus.ensure_group(stage.topic, stage.group)
    out: list[Message] = []
    while batch := await backends.bus.consume(stage.topic, stage.group, "c", count=100, block_ms=20):
        out += batch
    return out


async def test_both_shapes_are_written_together_and_redelivery_changes_nothing(backends: Backends) -> None:
    stage = MetricsIngestStage(backends.metrics)
    await backends.bus.ensure_group(stage.topic, stage.group)
    await backends.bus.publish_many(
        topology.METRICS,
        [
            codec.encode_line_protocol(_lp("lp", 5000), "a"),
            codec.encode_line_protocol(_lp("lp", 5000, offset=5000), "a"),
            codec.encode_points(
                [Point("pts", {"v": i}, {"host": "x"}, T0 + i * 10**9) for i in range(300)], "b"
            ),
        ],
    )
    messages = await _consume_all(backends, stage)
    assert len(messages) == 3
    outcome = await stage.handle(messages)
    assert outcome.failed == {}
    assert (await _count(backends, "lp"), await _count(backends, "pts")) == (10_000, 300)
    again = await stage.handle(messages)  # a redelivery after a crash before the ack
    assert again.failed == {}
    assert (await _count(backends, "lp"), await _count(backends, "pts")) == (10_000, 300)


async def test_a_partial_write_keeps_the_rest_and_is_acknowledged(backends: Backends) -> None:
    stage = MetricsIngestStage(backends.metrics)
    await backends.metrics.write([Point("typed", {"v": 1}, {"host": "a"}, T0)])  # v is an integer now
    conflicting = [
        codec.encode_points([Point("typed", {"v": 1.5}, {"host": "b"}, T0 + 10**9)]),
        codec.encode_line_protocol(f"typed,host=c v=2i {T0 + 2 * 10**9}"),
    ]
    await backends.bus.ensure_group(stage.topic, stage.group)
    await backends.bus.publish_many(topology.METRICS, conflicting)
    dropped_before = POINTS_DROPPED._value.get()
    assert await drain(backends, [stage]) == 2
    assert POINTS_DROPPED._value.get() == dropped_before + 1
    assert await _count(backends, "typed") == 2  # a and c; b conflicted
    assert await backends.bus.list_dead_letters() == []


class _FlakyStore:
    """The real store, unreachable for the first ``failures`` writes."""

    def __init__(self, store: MetricStore, failures: int) -> None:
        self.store = store
        self.failures = failures

    async def write(self, points: Sequence[Point]) -> None:
        if self.failures:
            self.failures -= 1
            raise MetricStoreUnavailable("store is down (test)")
        await self.store.write(points)


async def test_an_unreachable_store_fails_the_batch_and_redelivery_stores_it(backends: Backends) -> None:
    flaky = _FlakyStore(backends.metrics, failures=1)
    stage = MetricsIngestStage(flaky)  # type: ignore[arg-type]
    await backends.bus.ensure_group(stage.topic, stage.group)
    await backends.bus.publish(topology.METRICS, codec.encode_line_protocol(_lp("flaky", 50)))
    try:
        await drain(backends, [stage])
    except MetricStoreUnavailable:
        pass
    else:
        raise AssertionError("the stage should have failed the batch")
    assert await _count(backends, "flaky") == 0
    # Unacknowledged: handed out again after the visibility timeout (1 s in tests).
    deadline = time.monotonic() + 10
    handled = 0
    while not handled and time.monotonic() < deadline:
        handled = await drain(backends, [stage])
    assert handled == 1
    assert await _count(backends, "flaky") == 50
