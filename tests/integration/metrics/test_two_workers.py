"""Two detect worker processes on Redis give exactly the findings one worker gives: same kinds,
keys, states and times, including across the hand-over of partitions when the second worker
joins half-way through the data."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import orjson
import pytest

from tests.conftest import REPO_ROOT
from tests.integration.metrics.helpers import (
    collected_findings,
    drain_groups,
    fast_options,
    forget_detector_state,
    make_fleet,
    run_detector,
    summary,
)
from vigil.backends import Backends
from vigil.collectors.leases import RedisLeases
from vigil.pipeline.stages.detect import LEASE_PREFIX, partition_group

PARTITIONS = 4


class WorkerProcess:
    def __init__(self, backends: Backends, owner: str, topic: str, findings_topic: str) -> None:
        settings = backends.settings
        assert settings.redis_url and settings.influx_url
        self.owner = owner
        self.env = {
            **os.environ,
            "VIGIL_DATA_DIR": str(settings.data_dir),
            "VIGIL_DATABASE_URL": settings.effective_database_url,
            "VIGIL_REDIS_URL": settings.redis_url,
            "VIGIL_REDIS_PREFIX": settings.redis_prefix,
            "VIGIL_INFLUX_URL": settings.influx_url,
            "VIGIL_INFLUX_DATABASE": settings.influx_database,
            "VIGIL_BUS_VISIBILITY_TIMEOUT_MS": str(settings.bus_visibility_timeout_ms),
            "VIGIL_SECRET_KEY": "test-secret-key",
            "DETECT_TEST_OWNER": owner,
            "DETECT_TEST_PARTITIONS": str(PARTITIONS),
            "DETECT_TEST_TOPIC": topic,
            "DETECT_TEST_FINDINGS": findings_topic,
            "PYTHONPATH": str(REPO_ROOT),
        }
        self.process: asyncio.subprocess.Process | None = None

    async def spawn(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.metrics.worker_process",
            cwd=REPO_ROOT,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def join(self) -> None:
        """Wait until the process has imported and connected, then let it take partitions."""
        assert self.process is not None and self.process.stdout and self.process.stdin
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=120)
        assert b"worker ready" in line, line
        self.process.stdin.write(b"go\n")
        await self.process.stdin.drain()

    async def stop(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        output = await asyncio.wait_for(self.process.stdout.read(), timeout=60)
        await self.process.wait()
        stats = [line for line in output.decode().splitlines() if line.startswith('{"owner"')]
        assert stats, output.decode()[-3000:]
        result: dict[str, Any] = orjson.loads(stats[-1])
        return result

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()


async def _owners(leases: RedisLeases) -> set[str]:
    holders = [await leases.holder(f"{LEASE_PREFIX}{p}") for p in range(PARTITIONS)]
    return {h for h in holders if h is not None}


async def _wait_owners(leases: RedisLeases, count: int, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (
        len(await _owners(leases)) < count
        or len([p for p in range(PARTITIONS) if await leases.holder(f"{LEASE_PREFIX}{p}")]) < PARTITIONS
    ):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"partitions not spread over {count} workers")
        await asyncio.sleep(0.1)


async def test_two_worker_processes_find_what_one_finds(backends: Backends) -> None:
    settings = backends.settings
    if not settings.redis_url:
        pytest.skip("several worker processes need the distributed profile (Redis leases and bus)")
    fleet = make_fleet(quiet_hosts=2)
    messages = fleet.messages()
    topic, findings_topic = "test.metrics.two", "test.findings.two"
    leases = RedisLeases(settings.redis_url, settings.redis_prefix, owner="observer")
    first = WorkerProcess(backends, "worker-a", topic, findings_topic)
    second = WorkerProcess(backends, "worker-b", topic, findings_topic)
    try:
        # the processes import and connect while the single worker runs
        await first.spawn()
        await second.spawn()
        await backends.bus.ensure_group("test.findings.one", "test")
        await run_detector(
            backends,
            messages,
            topic="test.metrics.one",
            findings_topic="test.findings.one",
            options=fast_options(PARTITIONS),
        )
        one = summary(await collected_findings(backends.bus, "test.findings.one"))
        assert {kind for kind, *_ in one} == {"anomaly", "prediction"}

        await forget_detector_state(backends)
        await backends.bus.ensure_group(findings_topic, "test")
        for partition in range(PARTITIONS):
            await backends.bus.ensure_group(topic, partition_group(partition))
        half = len(messages) // 2
        await first.join()
        await _wait_owners(leases, 1)
        await backends.bus.publish_many(topic, messages[:half])
        await second.join()
        # the first worker hands some partitions over (state saved, then loaded by the second)
        await _wait_owners(leases, 2)
        await backends.bus.publish_many(topic, messages[half:])
        await drain_groups(backends.bus, topic, PARTITIONS, timeout_s=120)
        stats = list(await asyncio.gather(first.stop(), second.stop()))
    finally:
        first.kill()
        second.kill()
        await leases.close()
    two = summary(await collected_findings(backends.bus, findings_topic))

    assert all(s["points"] > 0 and s["partitions"] for s in stats), stats
    assert set(stats[0]["partitions"]) | set(stats[1]["partitions"]) == set(range(PARTITIONS))
    assert two == one
