"""sleep_unless: a sleep that an event ends early."""

from __future__ import annotations

import asyncio
import time

from vigil.waiting import sleep_unless


async def test_sleeps_the_whole_time_when_the_event_stays_clear() -> None:
    event = asyncio.Event()
    begin = time.monotonic()
    assert await sleep_unless(event, 0.05) is False
    assert time.monotonic() - begin >= 0.045


async def test_returns_as_soon_as_the_event_is_set() -> None:
    event = asyncio.Event()
    asyncio.get_running_loop().call_later(0.02, event.set)
    begin = time.monotonic()
    assert await sleep_unless(event, 30) is True
    assert time.monotonic() - begin < 5


async def test_an_event_already_set_does_not_wait() -> None:
    event = asyncio.Event()
    event.set()
    assert await sleep_unless(event, 30) is True
