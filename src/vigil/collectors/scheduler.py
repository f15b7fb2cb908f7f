"""The collector scheduler: a worker service that polls every enabled pull source on time,
each by exactly one worker, and hands a dead worker's sources to the living within an interval.

How the work is shared:

- Every scheduler re-reads the enabled pull sources from the database every ``refresh_s``
  (so API changes are picked up within seconds) and announces itself as a live member of the
  "collectors" group every tick (``Leases.join``).
- Rendezvous hashing over the live members says which worker *should* poll each source. That
  worker takes the source's lease (``source:<id>``: Redis SET NX PX on the distributed profile,
  in-process otherwise) and renews it every tick; a worker that is no longer the preferred one
  (a new worker joined) releases the lease between polls. The lease, not the membership view,
  is what guarantees a single poller.
- A lease lives ``clamp(interval / 2, min_lease_s, max_lease_s)``, members ``member_ttl_s``: when
  a worker dies, its leases and membership expire, the survivors become preferred, acquire the
  leases and poll what is overdue at once — within one interval for intervals above roughly
  twice the lease floor.

How a source is polled:

- Due times are ``last poll + interval + a small random jitter``; first polls of a fresh
  source are spread over ``min(interval, first_poll_spread_s)`` so a restart does not poll
  everything at the same instant.
- A poll has a timeout no longer than the interval (``polling.poll_timeout_s``). Its result is
  published to the bus durably *before* the poll counts as done; only then are the collector
  state and the poll time saved (fenced by the lease). A worker killed mid-poll therefore
  saved nothing, and the next owner, seeing the source overdue, polls it again: nothing is
  lost, and nothing published twice except in the instant between publish and save.
- Failures back off exponentially (interval × 2^(n-1), capped at ``max_backoff_s``); a peer's
  rate-limit answer sets the earliest retry. Consecutive failures are saved with the state, so
  a new owner keeps backing off. Health (status, last success/error, latency) is written to the
  source's row after every poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import select

from vigil.backends import Backends
from vigil.collectors import health, polling
from vigil.collectors.base import CollectError, pull_types
from vigil.collectors.leases import Leases, build_leases, preferred_owner
from vigil.collectors.polling import Prepared, SourceSpec
from vigil.collectors.state import StateStore, build_state_store
from vigil.observability import REGISTRY
from vigil.store.models import Source
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)

GROUP = "collectors"

POLLS = Counter(
    "vigil_collector_polls_total",
    "Polls of pull sources by source type and outcome (ok, error).",
    ["type", "outcome"],
    registry=REGISTRY,
)
POLL_SECONDS = Histogram(
    "vigil_collector_poll_duration_seconds",
    "Time to poll a source and publish what it returned.",
    ["type"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
OWNED = Gauge(
    "vigil_collector_sources_owned", "Pull sources whose lease this worker holds.", registry=REGISTRY
)


@dataclass
class SchedulerOptions:
    tick_s: float = 1.0
    refresh_s: float = 2.0
    member_ttl_s: float = 5.0
    min_lease_s: float = 3.0
    max_lease_s: float = 30.0
    max_concurrent_polls: int = 32
    max_backoff_s: float = 600.0
    first_poll_spread_s: float = 10.0
    jitter_fraction: float = 0.05  # of the interval, at most max_jitter_s
    max_jitter_s: float = 5.0
    stop_timeout_s: float = 10.0


@dataclass
class Owned:
    """A source whose lease we hold, with its state kept in memory between polls."""

    spec: SourceSpec
    collector_state: dict[str, Any]
    last_poll_at: float | None  # wall clock, start of the last successful poll
    last_attempt_at: float | None
    failures: int
    next_due: float  # wall clock
    lease_valid_until: float = 0.0  # monotonic
    prepared: Prepared | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class CollectorScheduler:
    name = "collectors"

    def __init__(
        self,
        backends: Backends,
        *,
        leases: Leases | None = None,
        states: StateStore | None = None,
        options: SchedulerOptions | None = None,
    ) -> None:
        self.backends = backends
        self.options = options or SchedulerOptions()
        self.leases = leases or build_leases(backends.settings)
        self.states = states or build_state_store(self.leases)
        self.specs: dict[int, SourceSpec] = {}
        self.owned: dict[int, Owned] = {}
        self.members: list[str] = []
        self.completed_polls = 0
        self._limit = asyncio.Semaphore(self.options.max_concurrent_polls)
        self._last_refresh = float("-inf")
        self._preference_members: tuple[str, ...] = ()
        self._preference: dict[int, bool] = {}

    @property
    def owner(self) -> str:
        return self.leases.owner

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        graceful = False
        try:
            while not stopping.is_set():
                try:
                    await self.tick()
                except Exception as exc:
                    # The database or Redis is away: keep ticking; leases we cannot renew
                    # expire and polls stop (see Owned.lease_valid_until).
                    log.warning("collector scheduler tick failed: %s: %s", type(exc).__name__, exc)
                await sleep_unless(stopping, self.options.tick_s)
            graceful = True
        finally:
            if graceful:
                await self.stop()
            else:
                # Cancelled (the process is dying): like a crash, leases are left to expire and
                # polls in flight are abandoned before they publish or save anything.
                await self._cancel_polls()

    async def stop(self) -> None:
        """Let in-flight polls finish (publish and save), then hand every source back."""
        tasks = [o.task for o in self.owned.values() if o.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.options.stop_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.leases.release([o.spec.lease for o in self.owned.values()])
        with contextlib.suppress(Exception):
            await self.leases.leave(GROUP)
        self.owned.clear()
        OWNED.set(0)

    async def _cancel_polls(self) -> None:
        tasks = [o.task for o in self.owned.values() if o.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.leases.close()

    # --- one tick -------------------------------------------------------------------------------

    async def tick(self) -> None:
        if time.monotonic() - self._last_refresh >= self.options.refresh_s:
            await self.refresh()
        self.members = await self.leases.join(GROUP, int(self.options.member_ttl_s * 1000))
        await self._renew()
        await self._rebalance()
        self._start_due()
        OWNED.set(len(self.owned))

    async def refresh(self) -> None:
        async with self.backends.db.session() as session:
            rows = (
                await session.execute(
                    select(Source).where(Source.enabled.is_(True), Source.type.in_(pull_types()))
                )
            ).scalars()
            self.specs = {row.id: SourceSpec.from_row(row) for row in rows}
        self._last_refresh = time.monotonic()

    def lease_ttl_s(self, spec: SourceSpec) -> float:
        return min(max(spec.interval_s / 2, self.options.min_lease_s), self.options.max_lease_s)

    async def _renew(self) -> None:
        if not self.owned:
            return
        started = time.monotonic()
        ttls = {o.spec.lease: int(self.lease_ttl_s(o.spec) * 1000) for o in self.owned.values()}
        held = await self.leases.renew(list(ttls), ttls)
        for source_id, owned in list(self.owned.items()):
            if owned.spec.lease in held:
                owned.lease_valid_until = started + ttls[owned.spec.lease] / 1000
            else:
                log.warning(
                    "lost the lease of source %s (%s); another worker polls it now",
                    owned.spec.id,
                    owned.spec.name,
                )
                self._drop(source_id)

    def _drop(self, source_id: int) -> None:
        owned = self.owned.pop(source_id, None)
        if owned is not None and owned.task is not None:
            owned.task.cancel()

    async def _rebalance(self) -> None:
        now = time.time()
        release: list[int] = []
        for source_id, owned in self.owned.items():
            spec = self.specs.get(source_id)
            if spec is None:  # deleted or disabled
                release.append(source_id)
                continue
            if spec != owned.spec:
                self._update_spec(owned, spec, now)
            if owned.task is None and not self._mine(spec):
                release.append(source_id)
        if release:
            leases = [self.owned[i].spec.lease for i in release]
            for source_id in release:
                self._drop(source_id)
            await self.leases.release(leases)

        wanted = [
            spec for source_id, spec in self.specs.items() if source_id not in self.owned and self._mine(spec)
        ]
        if not wanted:
            return
        started = time.monotonic()
        ttls = {spec.lease: int(self.lease_ttl_s(spec) * 1000) for spec in wanted}
        held = await self.leases.acquire(list(ttls), ttls)
        for spec in wanted:
            if spec.lease in held:
                owned = await self._adopt(spec, time.time())
                owned.lease_valid_until = started + ttls[spec.lease] / 1000
                self.owned[spec.id] = owned

    def _mine(self, spec: SourceSpec) -> bool:
        """Whether this worker should hold the source, for the current members (cached: the
        answer only changes when a worker joins or leaves)."""
        members = tuple(self.members)
        if members != self._preference_members:
            self._preference_members, self._preference = members, {}
        mine = self._preference.get(spec.id)
        if mine is None:
            mine = self._preference[spec.id] = preferred_owner(spec.lease, members) == self.owner
        return mine

    def _update_spec(self, owned: Owned, spec: SourceSpec, now: float) -> None:
        if spec.identity != owned.spec.identity:
            # Different target, config or credentials: old counters are meaningless; poll soon.
            owned.collector_state = {}
            owned.prepared = None
            owned.failures = 0
            owned.next_due = now
        elif spec.interval_s != owned.spec.interval_s and owned.last_poll_at is not None:
            owned.next_due = owned.last_poll_at + spec.interval_s
        owned.spec = spec

    async def _adopt(self, spec: SourceSpec, now: float) -> Owned:
        saved = await self.states.load(spec.id) or {}
        same = saved.get("identity") == spec.identity
        owned = Owned(
            spec=spec,
            collector_state=dict(saved.get("collector") or {}) if same else {},
            last_poll_at=_float(saved.get("last_poll_at")),
            last_attempt_at=_float(saved.get("last_attempt_at")),
            failures=int(saved.get("failures") or 0) if same else 0,
            next_due=now,
        )
        if owned.failures and owned.last_attempt_at is not None:
            owned.next_due = owned.last_attempt_at + self._backoff_s(spec, owned.failures)
        elif owned.last_poll_at is not None and same:
            owned.next_due = owned.last_poll_at + spec.interval_s + self._jitter_s(spec)
        else:
            owned.next_due = now + random.uniform(0, min(spec.interval_s, self.options.first_poll_spread_s))
        return owned

    def _start_due(self) -> None:
        now, mono = time.time(), time.monotonic()
        for owned in self.owned.values():
            if owned.task is None and owned.next_due <= now and owned.lease_valid_until > mono:
                owned.task = asyncio.create_task(self._poll(owned), name=f"poll:{owned.spec.name}")

    # --- one poll -------------------------------------------------------------------------------

    def _backoff_s(self, spec: SourceSpec, failures: int) -> float:
        cap = max(self.options.max_backoff_s, float(spec.interval_s))
        return float(min(spec.interval_s * 2 ** max(0, failures - 1), cap))

    def _jitter_s(self, spec: SourceSpec) -> float:
        spread = min(spec.interval_s * self.options.jitter_fraction, self.options.max_jitter_s)
        return random.uniform(0, spread)

    async def _poll(self, owned: Owned) -> None:
        spec = owned.spec
        try:
            async with self._limit:
                await self._poll_once(owned, spec)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("poll bookkeeping of source %s failed", spec.name)
        finally:
            owned.task = None

    async def _poll_once(self, owned: Owned, spec: SourceSpec) -> None:
        started = time.time()
        begin = time.perf_counter()
        try:
            if owned.prepared is None:
                owned.prepared = polling.prepare(spec, self.backends.secrets)
            result = await polling.poll(
                spec, owned.prepared, owned.collector_state, polling.poll_timeout_s(spec.interval_s)
            )
            await polling.publish(self.backends.bus, spec, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            latency_ms = (time.perf_counter() - begin) * 1000
            message = str(exc) if isinstance(exc, CollectError) else f"{type(exc).__name__}: {exc}"
            owned.failures += 1
            owned.last_attempt_at = started
            delay = self._backoff_s(spec, owned.failures)
            retry_after = exc.retry_after_s if isinstance(exc, CollectError) else None
            if retry_after is not None:
                delay = max(delay, retry_after)
            owned.next_due = time.time() + delay
            POLLS.labels(spec.type, "error").inc()
            log.warning(
                "poll of %s (%s) failed (%d in a row; next in %.0fs): %s",
                spec.name, spec.type, owned.failures, delay, message,
            )  # fmt: skip
            await self._save(owned)
            await health.record_failure(self.backends.db, spec.id, message, latency_ms)
            return
        latency_ms = (time.perf_counter() - begin) * 1000
        POLL_SECONDS.labels(spec.type).observe(latency_ms / 1000)
        POLLS.labels(spec.type, "ok").inc()
        if owned.spec.identity == spec.identity:  # unless the source changed during the poll
            owned.collector_state = result.new_state
        owned.last_poll_at = started
        owned.last_attempt_at = started
        owned.failures = 0
        owned.next_due = started + owned.spec.interval_s + self._jitter_s(owned.spec)
        self.completed_polls += 1
        await self._save(owned)
        await health.record_success(self.backends.db, spec.id, latency_ms)

    async def _save(self, owned: Owned) -> None:
        state = {
            "identity": owned.spec.identity,
            "collector": owned.collector_state,
            "last_poll_at": owned.last_poll_at,
            "last_attempt_at": owned.last_attempt_at,
            "failures": owned.failures,
        }
        if not await self.states.save(owned.spec.id, owned.spec.lease, state):
            log.warning("source %s: state not saved, the lease moved to another worker", owned.spec.name)


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
