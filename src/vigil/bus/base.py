"""The event bus protocol every pipeline stage talks to.

Semantics follow Redis Streams consumer groups, so the in-process bus and the Redis bus are
interchangeable:

- ``publish`` appends a message to a topic and returns only once the message is durable
  (in Redis on the distributed profile, in the journal file on the embedded one).
- A consumer group sees every message of a topic once; its members share the work.
- A delivered message stays *pending* until acknowledged. A pending message whose holder does
  not ack it within the visibility timeout is handed to another member (``XAUTOCLAIM``), so a
  consumer that dies loses nothing.
- A message delivered more than ``max_deliveries`` times goes to the dead-letter topic, where
  the API can list it and replay it to its original topic.
- Broadcast channels (Pub/Sub) carry live updates to every subscriber; they are not durable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

DEAD_LETTER_TOPIC = "deadletter"


class BusError(Exception):
    """Base class of bus failures the API maps to HTTP answers."""


class BusUnavailable(BusError):
    """The bus cannot be reached: callers should ask the sender to retry later (503)."""


class BusSaturated(BusError):
    """A topic's backlog is above its limit: callers should ask the sender to slow down (429)."""

    def __init__(self, topic: str, backlog: int, limit: int) -> None:
        super().__init__(f"topic {topic!r} has {backlog} unprocessed messages (limit {limit})")
        self.topic = topic
        self.backlog = backlog
        self.limit = limit


@dataclass(slots=True, frozen=True)
class Message:
    id: str
    topic: str
    payload: bytes
    deliveries: int = 1  # 1 on first delivery, incremented on each redelivery


@dataclass(slots=True, frozen=True)
class DeadLetter:
    id: str
    topic: str  # the topic the message was first published to
    group: str  # the consumer group that gave up on it
    payload: bytes
    deliveries: int
    reason: str
    dead_at_ms: int


@dataclass(slots=True, frozen=True)
class GroupStats:
    topic: str
    group: str
    pending: int  # delivered, not yet acked
    lag: int  # published, not yet delivered to the group
    consumers: int = 0


@dataclass(slots=True)
class BusOptions:
    visibility_timeout_ms: int = 30_000
    max_deliveries: int = 5
    max_backlog: int = 1_000_000  # per topic; publish raises BusSaturated above it
    stream_maxlen: int | None = None  # trim acked history beyond this many entries (Redis)
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Bus(Protocol):
    options: BusOptions

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise BusUnavailable when the bus cannot be reached."""

    async def publish(self, topic: str, payload: bytes) -> str: ...

    async def publish_many(self, topic: str, payloads: Sequence[bytes]) -> list[str]: ...

    async def ensure_group(self, topic: str, group: str) -> None:
        """Create the group if missing; a new group starts at the beginning of the topic."""

    async def consume(
        self, topic: str, group: str, consumer: str, count: int = 100, block_ms: int = 1000
    ) -> list[Message]:
        """Messages for this consumer: expired pending ones first (claimed from whoever held
        them), then new ones. Blocks up to ``block_ms`` when there is nothing. Messages past
        ``max_deliveries`` are moved to the dead-letter topic instead of being returned."""

    async def ack(self, topic: str, group: str, ids: Sequence[str]) -> None: ...

    async def dead_letter(
        self, message: Message, group: str, reason: str
    ) -> None:
        """Give up on a message now (poison input): ack it and store it as a dead letter."""

    async def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    async def replay_dead_letter(self, dead_letter_id: str) -> str:
        """Publish the dead letter again to its original topic and remove it; returns the
        new message id. Raises KeyError when it does not exist."""

    async def group_stats(self, topic: str, group: str) -> GroupStats: ...

    async def broadcast(self, channel: str, payload: bytes) -> None: ...

    def subscribe(self, *channels: str) -> AsyncIterator[tuple[str, bytes]]:
        """Yield (channel, payload) for every broadcast on these channels from now on."""
