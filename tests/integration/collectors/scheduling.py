"""Helpers for scheduler tests: sources in the database, schedulers with isolated leases, and
reading what they published."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vigil.backends import Backends
from vigil.collectors import polling
from vigil.collectors.leases import LocalLeases, LocalLeaseTable, RedisLeases
from vigil.collectors.scheduler import CollectorScheduler, SchedulerOptions
from vigil.collectors.state import LocalStateTable, MemoryStateStore, RedisStateStore
from vigil.domain import codec
from vigil.domain.metrics import Point
from vigil.store.models import Source

FAST = SchedulerOptions(
    tick_s=0.1,
    refresh_s=0.3,
    member_ttl_s=1.5,
    min_lease_s=1.5,
    first_poll_spread_s=0.2,
    stop_timeout_s=3.0,
)


async def add_source(
    backends: Backends,
    name: str,
    type_: str,
    target: str | None,
    config: dict[str, Any],
    credentials: dict[str, Any],
    interval_s: int = 1,
    enabled: bool = True,
) -> int:
    async with backends.db.session() as session:
        row = Source(
            name=name,
            type=type_,
            target=target,
            config=config,
            credentials_encrypted=polling.encrypt_credentials(backends.secrets, credentials),
            interval_s=interval_s,
            enabled=enabled,
            status="unknown",
        )
        session.add(row)
        await session.flush()
        return int(row.id)


@dataclass
class Fleet:
    """Schedulers sharing one lease space: Redis on the distributed profile, one in-process
    table otherwise (as separate processes would share Redis)."""

    backends: Backends
    options: SchedulerOptions = field(default_factory=lambda: FAST)
    table: LocalLeaseTable = field(default_factory=LocalLeaseTable)
    states: LocalStateTable = field(default_factory=LocalStateTable)
    running: dict[str, tuple[CollectorScheduler, asyncio.Event, asyncio.Task[None]]] = field(
        default_factory=dict
    )

    def scheduler(self, owner: str) -> CollectorScheduler:
        settings = self.backends.settings
        if settings.redis_url:
            redis_leases = RedisLeases(settings.redis_url, settings.redis_prefix, owner)
            return CollectorScheduler(
                self.backends, leases=redis_leases, states=RedisStateStore(redis_leases), options=self.options
            )
        local = LocalLeases(owner, self.table)
        return CollectorScheduler(
            self.backends, leases=local, states=MemoryStateStore(local, self.states), options=self.options
        )

    def start(self, owner: str) -> CollectorScheduler:
        scheduler = self.scheduler(owner)
        stopping = asyncio.Event()
        task = asyncio.create_task(scheduler.run(stopping))
        self.running[owner] = (scheduler, stopping, task)
        return scheduler

    async def stop(self, owner: str) -> None:
        """Graceful: finish polls, release leases."""
        scheduler, stopping, task = self.running.pop(owner)
        stopping.set()
        await task
        await scheduler.close()

    async def crash(self, owner: str) -> None:
        """Like a killed process: polls cut short, leases and membership left to expire."""
        scheduler, _, task = self.running.pop(owner)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await scheduler.close()

    async def close(self) -> None:
        for owner in list(self.running):
            await self.stop(owner)


@dataclass
class PollLog:
    """When the schedulers started each poll that returned data (source id -> wall times),
    recorded around ``polling.poll`` as the scheduler calls it. A poll cut short by a crash is
    not in it: it published nothing, and the next owner is meant to redo it."""

    completed: dict[int, list[float]] = field(default_factory=dict)

    def install(self, monkeypatch: Any) -> None:
        original = polling.poll

        async def recorded(spec: polling.SourceSpec, *args: Any, **kwargs: Any) -> Any:
            started = time.time()
            result = await original(spec, *args, **kwargs)
            self.completed.setdefault(spec.id, []).append(started)
            return result

        monkeypatch.setattr(polling, "poll", recorded)


async def wait_for(check: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def drain(backends: Backends, topic: str, group: str = "test-drain") -> list[bytes]:
    """Every message published to ``topic`` so far (the group reads from the oldest)."""
    await backends.bus.ensure_group(topic, group)
    payloads: list[bytes] = []
    while True:
        messages = await backends.bus.consume(topic, group, "test", count=500, block_ms=200)
        if not messages:
            return payloads
        payloads.extend(m.payload for m in messages)
        await backends.bus.ack(topic, group, [m.id for m in messages])


def points_of(payloads: list[bytes]) -> list[tuple[str | None, Point]]:
    out = []
    for payload in payloads:
        source, points = codec.decode_points(payload)
        out.extend((source, p) for p in points)
    return out
