"""Redis leases: SET NX PX, owner-checked renew/release, membership on the Redis clock, and
state saves fenced by the lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from vigil.collectors.leases import RedisLeases
from vigil.collectors.state import RedisStateStore


@pytest.fixture
async def pair(redis_url: str, redis_prefix: str) -> AsyncIterator[tuple[RedisLeases, RedisLeases]]:
    a, b = RedisLeases(redis_url, redis_prefix, "a"), RedisLeases(redis_url, redis_prefix, "b")
    yield a, b
    await a.close()
    await b.close()


async def test_one_holder_until_release_or_expiry(pair: tuple[RedisLeases, RedisLeases]) -> None:
    a, b = pair
    assert await a.acquire(["x", "y"], 10_000) == {"x", "y"}
    assert await b.acquire(["x", "z"], {"x": 10_000, "z": 10_000}) == {"z"}
    assert await b.holder("x") == "a"
    await b.release(["x"])  # not b's to release
    assert await a.holder("x") == "a"
    await a.release(["x"])
    assert await b.acquire(["x"], 100) == {"x"}
    await asyncio.sleep(0.2)
    assert await a.holder("x") is None  # expired on the Redis clock
    assert await a.acquire(["x"], 10_000) == {"x"}


async def test_renew_only_extends_what_is_still_ours(pair: tuple[RedisLeases, RedisLeases]) -> None:
    a, b = pair
    await a.acquire(["x", "y"], 150)
    assert await a.renew(["x"], 5_000) == {"x"}
    await asyncio.sleep(0.25)
    assert await b.acquire(["x", "y"], 5_000) == {"y"}
    assert await a.renew(["x", "y"], 5_000) == {"x"}
    ttl = await a.redis.pttl(a.lease_key("x"))
    assert 4_000 < ttl <= 5_000


async def test_many_leases_in_one_call(pair: tuple[RedisLeases, RedisLeases]) -> None:
    a, b = pair
    names = [f"source:{i}" for i in range(1200)]  # more than one script batch
    assert await a.acquire(names, 10_000) == set(names)
    assert await b.acquire(names, 10_000) == set()
    await a.release(names[:600])
    assert await b.acquire(names, 10_000) == set(names[:600])


async def test_membership_expires_silent_members(pair: tuple[RedisLeases, RedisLeases]) -> None:
    a, b = pair
    assert await a.join("collectors", 200) == ["a"]
    assert await b.join("collectors", 5_000) == ["a", "b"]
    await asyncio.sleep(0.3)
    assert await b.join("collectors", 5_000) == ["b"]
    await b.leave("collectors")
    assert await a.join("collectors", 5_000) == ["a"]


async def test_state_saves_are_fenced_by_the_lease(pair: tuple[RedisLeases, RedisLeases]) -> None:
    a, b = pair
    store_a, store_b = RedisStateStore(a), RedisStateStore(b)
    await a.acquire(["source:7"], 10_000)
    assert await store_a.save(7, "source:7", {"counters": {"1": 42}})
    assert not await store_b.save(7, "source:7", {"counters": {"1": 0}})
    assert await store_b.load(7) == {"counters": {"1": 42}}
    await store_a.delete(7)
    assert await store_b.load(7) is None
