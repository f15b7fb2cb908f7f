"""The worker runner: pipeline stages and periodic services, concurrently, supervised.

- A stage consumes one topic as a member of its consumer group, handles a batch, and acks what
  it handled. A message whose handling fails stays unacked, so the bus redelivers it after the
  visibility timeout and dead-letters it after the retry limit; ``PoisonMessage`` sends it to
  the dead letters at once (input that can never succeed).
- A stage or service that crashes is restarted with exponential backoff, and the log says why.
- On stop (SIGTERM), stages take no new messages, finish and ack what they hold, then return.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from vigil.bus.base import Bus, Message
from vigil.observability import STAGE_MESSAGES, STAGE_RESTARTS, STAGE_SECONDS
from vigil.pipeline.topology import register_group
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)


class PoisonMessage(Exception):
    """The message can never be processed (malformed); dead-letter it instead of retrying."""


@dataclass
class BatchOutcome:
    """Per-message failures of a batch; every message not listed here is acked."""

    failed: dict[str, Exception] = field(default_factory=dict)


class Stage(Protocol):
    """A bus consumer. A stage may also set ``batch_interval_s``: after a batch that did not
    fill ``batch_size`` it waits until that long after the batch began, so a busy topic is
    taken in fewer, larger batches (for work whose cost is per batch, not per message)."""

    name: str
    topic: str
    group: str
    batch_size: int

    async def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        """Process a batch. Raise only when nothing in the batch could be handled (e.g. a
        store is down): the runner then restarts the stage with backoff."""


class Service(Protocol):
    """A long-running task that is not a bus consumer (collector scheduler, retention...)."""

    name: str

    async def run(self, stopping: asyncio.Event) -> None: ...


def consumer_name(worker: str | None = None) -> str:
    return f"{worker or socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Runner:
    def __init__(
        self,
        bus: Bus,
        stages: Sequence[Stage] = (),
        services: Sequence[Service] = (),
        *,
        consumer: str | None = None,
        block_ms: int = 500,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.bus = bus
        self.stages = list(stages)
        self.services = list(services)
        self.consumer = consumer or consumer_name()
        self.block_ms = block_ms
        self.max_backoff_s = max_backoff_s
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        for stage in self.stages:
            register_group(stage.topic, stage.group)

    async def start(self) -> None:
        for stage in self.stages:
            await self.bus.ensure_group(stage.topic, stage.group)
        for stage in self.stages:
            self._tasks.append(
                asyncio.create_task(
                    self._supervise(stage.name, functools.partial(self._run_stage, stage)),
                    name=f"stage:{stage.name}",
                )
            )
        for service in self.services:
            self._tasks.append(
                asyncio.create_task(
                    self._supervise(service.name, functools.partial(service.run, self.stopping)),
                    name=f"service:{service.name}",
                )
            )
        log.info(
            "worker %s running %d stages and %d services", self.consumer, len(self.stages), len(self.services)
        )

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop taking work, let in-flight batches finish and ack, then return."""
        self.stopping.set()
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            log.warning("%s did not finish within %.0fs; cancelling", task.get_name(), timeout_s)
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks.clear()

    async def run_until_stopped(self) -> None:
        await self.start()
        await self.stopping.wait()
        await self.stop()

    async def _supervise(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        backoff = 0.5
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                await body()
                return  # a clean return means the stage saw the stop signal
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                STAGE_RESTARTS.labels(name).inc()
                if time.monotonic() - started > 60:
                    backoff = 0.5  # it ran fine for a while: this is a new problem
                log.error(
                    "%s crashed (%s: %s); restarting in %.1fs",
                    name,
                    type(exc).__name__,
                    exc,
                    backoff,
                    exc_info=exc,
                )
                await sleep_unless(self.stopping, backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def _next_batch(self, stage: Stage) -> list[Message]:
        consume = asyncio.create_task(
            self.bus.consume(
                stage.topic, stage.group, self.consumer, count=stage.batch_size, block_ms=self.block_ms
            )
        )
        stop = asyncio.create_task(self.stopping.wait())
        done, _ = await asyncio.wait({consume, stop}, return_when=asyncio.FIRST_COMPLETED)
        if consume in done:
            stop.cancel()
            return consume.result()
        # Stopping while waiting: anything the bus hands over now stays pending and is
        # redelivered to another consumer after the visibility timeout.
        consume.cancel()
        await asyncio.gather(consume, return_exceptions=True)
        return []

    async def _run_stage(self, stage: Stage) -> None:
        interval_s: float = getattr(stage, "batch_interval_s", 0.0)
        while not self.stopping.is_set():
            messages = await self._next_batch(stage)
            if not messages:
                continue
            taken = time.monotonic()
            await self.process(stage, messages)
            rest = interval_s - (time.monotonic() - taken)
            if rest > 0 and len(messages) < stage.batch_size:  # a full batch: behind, go on
                await sleep_unless(self.stopping, rest)

    async def process(self, stage: Stage, messages: Sequence[Message]) -> None:
        """Handle one batch and settle every message: ack, dead-letter, or leave for retry."""
        begin = time.perf_counter()
        outcome = await stage.handle(messages)
        STAGE_SECONDS.labels(stage.name).observe(time.perf_counter() - begin)
        ack: list[str] = []
        for message in messages:
            error = outcome.failed.get(message.id)
            if error is None:
                ack.append(message.id)
            elif isinstance(error, PoisonMessage):
                await self.bus.dead_letter(message, stage.group, f"{stage.name}: {error}")
                STAGE_MESSAGES.labels(stage.name, "dead_lettered").inc()
            else:
                STAGE_MESSAGES.labels(stage.name, "failed").inc()
                log.warning(
                    "%s failed on message %s (delivery %d): %s",
                    stage.name,
                    message.id,
                    message.deliveries,
                    error,
                )
        if ack:
            await self.bus.ack(stage.topic, stage.group, ack)
            STAGE_MESSAGES.labels(stage.name, "processed").inc(len(ack))
