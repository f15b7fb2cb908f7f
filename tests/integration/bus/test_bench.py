"""`vigil bench bus` runs end to end on a small load and leaves no keys behind."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis.asyncio as redis_client

from bench import bus as bench_bus


async def test_bench_measures_every_bus_and_cleans_up(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = uuid.uuid4()
    monkeypatch.setattr(bench_bus.uuid, "uuid4", lambda: run_id)  # so we know its key prefix

    result = await bench_bus.run(200, payload_bytes=50, batch=20, concurrency=4, rounds=1,
                                 redis_url=redis_url)

    rates = result["messages_per_second"]
    assert set(rates) == {"memory", "memory_journal", "redis", "redis_raw"}
    assert all(rates[peer][phase] > 0 for peer in rates for phase in bench_bus.PHASES)
    assert set(result["ratio_vs_redisbus"]) == {"memory", "memory_journal", "redis_raw"}
    # 200 single publishes are 200 journal transactions; 20-message batches are 10.
    assert "publish 200" in result["notes"]["memory_journal"]
    assert "publish_many 10" in result["notes"]["memory_journal"]

    raw: Any = redis_client.Redis.from_url(redis_url)
    try:
        assert [key async for key in raw.scan_iter(match=f"vigilbench:{run_id.hex[:10]}:*")] == []
    finally:
        await raw.aclose()
