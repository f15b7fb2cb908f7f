"""Killing a worker process (SIGKILL) while it polls loses nothing: what it had not published is
polled again by the next lease owner, and published once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest

from tests.conftest import REPO_ROOT
from tests.fakes.datadog import FakeDatadog
from tests.integration.collectors.scheduling import Fleet, add_source, drain, points_of, wait_for
from vigil.backends import Backends
from vigil.pipeline import topology

KEYS = {"api_key": "dd-api-key", "app_key": "dd-app-key"}


async def test_killed_worker_process_loses_nothing(backends: Backends, datadog_fake: FakeDatadog) -> None:
    settings = backends.settings
    if not settings.redis_url:
        pytest.skip("the embedded profile runs one process (its crash test is in test_scheduler.py)")
    datadog_fake.add_recent_series("app.requests", {"host": "web1"}, seconds=60, step=10)
    config = {"queries": ["avg:app.requests{*} by {host}"], "lookback_s": 60, "lag_s": 0}
    await add_source(backends, "dd", "datadog", datadog_fake.url, config, KEYS, interval_s=2)
    datadog_fake.delay_s = 20  # the worker's request hangs until it is killed
    env = {
        **os.environ,
        "VIGIL_DATA_DIR": str(settings.data_dir),
        "VIGIL_DATABASE_URL": settings.effective_database_url,
        "VIGIL_REDIS_URL": settings.redis_url,
        "VIGIL_REDIS_PREFIX": settings.redis_prefix,
        "VIGIL_SECRET_KEY": settings.secret_key.get_secret_value() if settings.secret_key else "",
        "PYTHONPATH": str(REPO_ROOT),
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.collectors.worker_process",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await wait_for(
            lambda: len(datadog_fake.query_calls()) == 1 or worker.returncode is not None,
            60,
            "the worker process to poll",
        )
        assert worker.returncode is None, "the worker process exited early"
        killed_at = time.monotonic()
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    datadog_fake.delay_s = 0
    fleet = Fleet(backends)
    survivor = fleet.start("survivor")
    try:
        await wait_for(lambda: survivor.completed_polls == 1, 15, "the survivor to poll")
        took_over_after = time.monotonic() - killed_at
    finally:
        await fleet.close()
    # The dead worker's lease (1.5 s) had to expire first; then the poll was redone, once.
    assert 1.0 <= took_over_after <= 2 + 3
    published = await drain(backends, topology.METRICS)
    assert len(published) == 1
    times = [p.time_ns for _, p in points_of(published)]
    assert len(times) == len(set(times)) >= 5
