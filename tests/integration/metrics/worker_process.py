"""A detect worker in its own process, for the N-workers test: imports and connects, says
"worker ready", waits for a line on stdin, then runs one ``MetricDetector`` on the settings in
VIGIL_* variables (topics and owner from DETECT_TEST_*) until SIGTERM, and prints what it did
as one JSON line."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import orjson

from tests.integration.metrics.helpers import fast_options
from vigil.backends import Backends
from vigil.collectors.leases import RedisLeases
from vigil.config import load_settings
from vigil.observability import REGISTRY
from vigil.pipeline.stages.detect import MetricDetector


async def main() -> None:
    settings = load_settings()
    assert settings.redis_url, "the N-workers test runs on Redis"
    backends = Backends.from_settings(settings)
    await backends.bus.start()
    await backends.metrics.start()
    owner = os.environ["DETECT_TEST_OWNER"]
    detector = MetricDetector(
        backends,
        options=fast_options(int(os.environ["DETECT_TEST_PARTITIONS"])),
        leases=RedisLeases(settings.redis_url, settings.redis_prefix, owner=owner),
        consumer=owner,
        topic=os.environ["DETECT_TEST_TOPIC"],
        findings_topic=os.environ["DETECT_TEST_FINDINGS"],
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    print("worker ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the test says when to join
    task = asyncio.create_task(detector.run(stopping))
    held: set[int] = set()
    while not task.done():
        held |= set(detector.consumers)
        await asyncio.sleep(0.05)
    await task
    points = REGISTRY.get_sample_value("vigil_detect_points_total") or 0.0
    print(orjson.dumps({"owner": owner, "partitions": sorted(held), "points": points}).decode(), flush=True)
    await backends.close()


if __name__ == "__main__":
    asyncio.run(main())
