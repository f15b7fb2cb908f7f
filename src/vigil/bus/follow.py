"""Following a broadcast channel for as long as the caller's task runs: every payload goes to
a callback, and a lost subscription is resumed with backoff (broadcasts are not durable, so a
follower misses what was sent while it was away and nothing else)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from vigil.bus.base import Bus

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0


def cancel_requested() -> bool:
    """True when the current task has been asked to stop.

    Python 3.11's ``asyncio.wait_for`` (which redis-py uses while reconnecting) returns normally
    when a cancellation arrives just as its inner call completes: the request stays counted on
    the task but nothing raises it. A loop that retries after errors must check this, or a
    cancelled task goes on forever (seen as shutdowns that never finished)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def follow_broadcast(
    bus: Bus,
    channel: str,
    deliver: Callable[[bytes], None],
    on_subscribed: Callable[[], None] | None = None,
) -> None:
    """Call ``deliver(payload)`` for every broadcast on ``channel`` until cancelled.

    ``on_subscribed`` runs each time the subscription is (re)established, once Redis (or the
    in-process bus) has confirmed it."""
    backoff = FIRST_BACKOFF_S
    while True:
        try:
            async with bus.subscribe(channel) as subscription:
                if on_subscribed is not None:
                    on_subscribed()
                backoff = FIRST_BACKOFF_S
                async for _, payload in subscription:
                    deliver(payload)
                    if cancel_requested():
                        raise asyncio.CancelledError
        except Exception as exc:
            if cancel_requested():
                raise asyncio.CancelledError from exc
            log.warning("broadcast channel %s lost (%s); resubscribing in %.1fs", channel, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        else:
            # The subscription ended without an error: the bus was closed under it.
            if cancel_requested():
                raise asyncio.CancelledError
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
