"""follow_broadcast: resubscribes after failures, and stops when cancelled, even when a library
swallowed the cancellation (as Python 3.11's ``asyncio.wait_for`` does inside redis-py)."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any, Self, cast

import pytest

from vigil.bus.base import Bus
from vigil.bus.follow import cancel_requested, follow_broadcast


class ScriptedSubscription:
    """Yields its payloads, then runs ``then`` (which may raise or swallow)."""

    def __init__(self, payloads: list[bytes], then: Any) -> None:
        self.payloads = list(payloads)
        self.then = then

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        if self.payloads:
            return "live", self.payloads.pop(0)
        await self.then()
        raise StopAsyncIteration


class ScriptedBus:
    def __init__(self, subscriptions: list[ScriptedSubscription]) -> None:
        self.subscriptions = subscriptions
        self.subscribed = 0

    def subscribe(self, *channels: str) -> ScriptedSubscription:
        self.subscribed += 1
        return self.subscriptions.pop(0)


async def fail() -> None:
    raise ConnectionError("connection reset")


async def wait_forever() -> None:
    await asyncio.Event().wait()


async def test_every_payload_is_delivered_across_a_lost_subscription(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vigil.bus.follow.FIRST_BACKOFF_S", 0.01)
    bus = ScriptedBus([ScriptedSubscription([b"1", b"2"], fail), ScriptedSubscription([b"3"], wait_forever)])
    delivered: list[bytes] = []
    subscribed = asyncio.Event()
    ready: list[int] = []

    def on_subscribed() -> None:
        ready.append(bus.subscribed)
        if bus.subscribed == 2:
            subscribed.set()

    task = asyncio.create_task(follow_broadcast(cast(Bus, bus), "live", delivered.append, on_subscribed))
    await asyncio.wait_for(subscribed.wait(), 5)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert delivered == [b"1", b"2", b"3"] and ready == [1, 2]


async def test_a_swallowed_cancellation_still_stops_the_follower() -> None:
    async def swallow_a_cancel_then_fail() -> None:
        # What 3.11's wait_for does when the cancel meets its inner call's completion: the
        # request stays counted on the task, nothing raises it; then the connection errors.
        current = asyncio.current_task()
        assert current is not None
        current.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(1)
        assert cancel_requested()
        raise ConnectionError("closed under us")

    bus = ScriptedBus([ScriptedSubscription([], swallow_a_cancel_then_fail)] * 50)
    task = asyncio.create_task(follow_broadcast(cast(Bus, bus), "live", lambda payload: None))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert bus.subscribed == 1  # it did not go back for another subscription


async def test_cancel_requested_is_false_in_an_ordinary_task() -> None:
    async def probe() -> bool:
        return cancel_requested()

    assert await asyncio.create_task(probe()) is False
