"""A topic split into numbered partitions, each consumed by exactly one worker process at a time.

Workers join a members group; each partition has a preferred owner among the members (rendezvous
hashing, ``preferred_owner``), which takes it when its lease is free. Leases are renewed every
third of their time to live; a worker that dies loses its partitions when its leases expire and
the others pick them up. A consumer per held partition runs under a supervisor that restarts it
after a crash, with backoff. Used by metric detection and log mining, whose per-partition state
(detector state, template miners) must have a single owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Generic, Protocol, TypeVar

from vigil.backends import Backends
from vigil.collectors.leases import Leases, preferred_owner
from vigil.metrics.state import LeaseLost
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)


class LeasedConsumer(Protocol):
    stop: asyncio.Event
    lost: bool

    async def run(self) -> None: ...


ConsumerT = TypeVar("ConsumerT", bound=LeasedConsumer)


class LeasedPartitions(Generic[ConsumerT]):
    """Subclasses set the attributes below and say how to make a partition's consumer."""

    backends: Backends
    leases: Leases
    consumers: dict[int, tuple[ConsumerT, asyncio.Task[None]]]
    label: str  # "detect partition", "log shard": how log lines name a partition
    lease_prefix: str
    members_group: str

    @property
    def partition_count(self) -> int:
        raise NotImplementedError

    @property
    def partition_topic(self) -> str:
        raise NotImplementedError

    @property
    def lease_ttl(self) -> int:
        """Lease time to live in milliseconds."""
        raise NotImplementedError

    @property
    def stop_timeout_s(self) -> float:
        return 30.0

    def group_of(self, partition: int) -> str:
        raise NotImplementedError

    def new_consumer(self, partition: int) -> ConsumerT:
        raise NotImplementedError

    def after_crash(self, consumer: ConsumerT) -> None:
        """Forget what the consumer held in memory before it runs again (or is taken over)."""

    # --- leases ---------------------------------------------------------------------------------

    def lease_name(self, partition: int) -> str:
        return f"{self.lease_prefix}{partition}"

    async def still_holds(self, partition: int) -> bool:
        return bool(await self.leases.renew([self.lease_name(partition)], self.lease_ttl))

    async def ensure_groups(self) -> None:
        for partition in range(self.partition_count):
            await self.backends.bus.ensure_group(self.partition_topic, self.group_of(partition))

    async def run(self, stopping: asyncio.Event) -> None:
        await self.ensure_groups()
        try:
            while not stopping.is_set():
                await self.rebalance()
                await sleep_unless(stopping, self.lease_ttl / 3000)
        finally:
            await self.stop_all()
            with contextlib.suppress(Exception):
                await self.leases.leave(self.members_group)

    async def rebalance(self) -> None:
        """Renew what we hold, take the partitions we should hold, let go of the others."""
        ttl = self.lease_ttl
        members = await self.leases.join(self.members_group, ttl)
        wanted = {
            p
            for p in range(self.partition_count)
            if preferred_owner(self.lease_name(p), members) == self.leases.owner
        }
        held_now = set(self.consumers)
        renewed = await self.leases.renew([self.lease_name(p) for p in held_now], ttl)
        for partition in held_now:
            if self.lease_name(partition) not in renewed:
                log.warning("%s %d: lease lost", self.label, partition)
                await self._stop(partition, lost=True)
        for partition in sorted(set(self.consumers) - wanted):
            await self._stop(partition)
            await self.leases.release([self.lease_name(partition)])
        missing = [p for p in sorted(wanted) if p not in self.consumers]
        if missing:
            got = await self.leases.acquire([self.lease_name(p) for p in missing], ttl)
            for partition in missing:
                if self.lease_name(partition) in got:
                    self._start(partition)

    def _start(self, partition: int) -> None:
        consumer = self.new_consumer(partition)
        name = f"{self.label.replace(' ', '-')}-{partition}"
        task = asyncio.create_task(self._supervise(partition, consumer), name=name)
        self.consumers[partition] = (consumer, task)

    async def _supervise(self, partition: int, consumer: ConsumerT) -> None:
        backoff = 0.5
        while not consumer.stop.is_set():
            try:
                await consumer.run()
                return
            except asyncio.CancelledError:
                raise
            except LeaseLost:
                self.after_crash(consumer)
                return
            except Exception as exc:
                log.error(
                    "%s %d crashed (%s); restarting in %.1fs",
                    self.label,
                    partition,
                    exc,
                    backoff,
                    exc_info=exc,
                )
                self.after_crash(consumer)
                await sleep_unless(consumer.stop, backoff)
                backoff = min(backoff * 2, 30.0)

    async def _stop(self, partition: int, lost: bool = False) -> None:
        entry = self.consumers.pop(partition, None)
        if entry is None:
            return
        consumer, task = entry
        consumer.lost = consumer.lost or lost
        consumer.stop.set()
        try:
            await asyncio.wait_for(task, timeout=self.stop_timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        except Exception as exc:
            log.warning("%s %d stopped with an error: %s", self.label, partition, exc)

    async def stop_all(self) -> None:
        partitions = list(self.consumers)
        for partition in partitions:
            await self._stop(partition)
        if partitions:
            with contextlib.suppress(Exception):
                await self.leases.release([self.lease_name(p) for p in partitions])

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until every partition's group has handled and acknowledged everything published
        so far (tests, demo)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            busy = False
            for partition in range(self.partition_count):
                stats = await self.backends.bus.group_stats(self.partition_topic, self.group_of(partition))
                busy = busy or stats.lag > 0 or stats.pending > 0
            if not busy:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{self.label}s did not drain in time")
