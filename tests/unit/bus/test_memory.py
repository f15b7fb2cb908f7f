"""What is specific to the in-process bus (the shared contract is in tests/integration/bus)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from vigil.bus.base import BusOptions, BusUnavailable
from vigil.bus.memory import MemoryBus


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus(BusOptions(visibility_timeout_ms=1000))
    await bus.start()
    yield bus
    await bus.close()


async def test_entries_every_group_acked_are_dropped(bus: MemoryBus) -> None:
    await bus.ensure_group("events", "fast")
    await bus.ensure_group("events", "slow")
    await bus.publish_many("events", [b"a", b"b", b"c"])
    done = await bus.consume("events", "fast", "c1", block_ms=0)
    await bus.ack("events", "fast", [m.id for m in done])
    slow = await bus.consume("events", "slow", "c1", block_ms=0)
    await bus.ack("events", "slow", [slow[0].id])

    # A group created now starts at the oldest entry some group still needs.
    await bus.ensure_group("events", "late")
    late = await bus.consume("events", "late", "c1", block_ms=0)
    assert [m.payload for m in late] == [b"b", b"c"]


async def test_a_slow_subscriber_loses_the_oldest_broadcasts(monkeypatch: pytest.MonkeyPatch) -> None:
    bus = MemoryBus(BusOptions())
    await bus.start()
    subscription = bus.subscribe("live")
    monkeypatch.setattr(subscription, "_buffer", 3)
    for i in range(5):
        await bus.broadcast("live", str(i).encode())

    assert [await anext(subscription) for _ in range(3)] == [("live", b"2"), ("live", b"3"), ("live", b"4")]
    assert subscription.dropped == 2
    await bus.close()


async def test_close_wakes_blocked_consumers_and_ends_subscriptions(bus: MemoryBus) -> None:
    waiting = asyncio.create_task(bus.consume("events", "stage", "c1", block_ms=10_000))
    subscription = bus.subscribe("live")
    listening = asyncio.create_task(anext(subscription))
    await asyncio.sleep(0.01)

    await bus.close()

    assert await asyncio.wait_for(waiting, 1) == []
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(listening, 1)
    with pytest.raises(BusUnavailable):
        await bus.publish("events", b"x")
    with pytest.raises(BusUnavailable):
        await bus.ping()


async def test_a_bus_must_be_started() -> None:
    with pytest.raises(BusUnavailable, match="not started"):
        await MemoryBus(BusOptions()).publish("events", b"x")


async def test_an_unsubscribed_channel_is_forgotten(bus: MemoryBus) -> None:
    async with bus.subscribe("live") as subscription:
        await bus.broadcast("live", b"x")
        assert await anext(subscription) == ("live", b"x")
    await bus.broadcast("live", b"nobody listens")
    assert bus._subscribers == {}
