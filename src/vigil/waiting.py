"""Sleeping that an event cuts short: the loops of the worker's services and stages wait
between rounds with ``sleep_unless``, so a stop (SIGTERM) ends their wait at once rather than
when it would have run out."""

from __future__ import annotations

import asyncio
import contextlib


async def sleep_unless(event: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds``, or until ``event`` is set; returns whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)
    return event.is_set()
