"""A metrics ingest worker in its own process, for the kill test: it runs the real
MetricsIngestStage on the Redis bus and InfluxDB, but in its first batch writes only the first
half of the points, touches ``--marker`` and then hangs, holding the batch unacknowledged
until the test kills it."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from vigil.bus.base import BusOptions, Message
from vigil.bus.redis import RedisBus
from vigil.domain import codec
from vigil.pipeline.runner import BatchOutcome, Runner
from vigil.pipeline.stages.metrics_ingest import MetricsIngestStage
from vigil.store.metrics.influx import InfluxMetricStore


class StallingStage(MetricsIngestStage):
    def __init__(self, store: InfluxMetricStore, marker: Path) -> None:
        super().__init__(store)
        self.marker = marker

    async def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        points = [p for m in messages for p in codec.decode_points(m.payload)[1]]
        await self.store.write(points[: len(points) // 2])
        self.marker.write_text(f"{len(messages)} {len(points)}")
        await asyncio.sleep(3600)
        raise AssertionError("should have been killed")


async def main(args: argparse.Namespace) -> None:
    bus = RedisBus(args.redis_url, BusOptions(visibility_timeout_ms=args.visibility_ms), prefix=args.prefix)
    store = InfluxMetricStore(args.influx_url, args.database)
    await bus.start()
    await store.start()
    runner = Runner(bus, [StallingStage(store, Path(args.marker))], consumer="doomed-worker")
    await runner.run_until_stopped()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("--redis-url", "--prefix", "--influx-url", "--database", "--marker"):
        parser.add_argument(name, required=True)
    parser.add_argument("--visibility-ms", type=int, required=True)
    asyncio.run(main(parser.parse_args()))
