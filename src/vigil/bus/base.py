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

Message ids look like Redis stream ids (``<ms>-<seq>``) and increase within a topic. The
dead-letter topic is reserved: it is read through ``list_dead_letters``/``replay_dead_letter``,
not published to or consumed from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

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
    # Per topic: a publish that would take the backlog (lag + pending of the slowest group, or
    # the topic length when it has no group) above this raises BusSaturated instead.
    max_backlog: int = 1_000_000
    # Redis: approximate MAXLEN on XADD, so the stream keeps about this many entries. The
    # memory bus never keeps history: an entry goes once every group of its topic has acked it.
    stream_maxlen: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Subscription(Protocol):
    """Broadcasts on some channels, from the moment the subscription is active: on entering
    ``async with`` (which unsubscribes on exit), or on the first ``__anext__`` when iterated
    without it. Not durable: a subscriber that falls far behind loses the oldest broadcasts."""

    def __aiter__(self) -> Self: ...

    async def __anext__(self) -> tuple[str, bytes]: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def aclose(self) -> None: ...


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
        """Create the group if missing; a new group starts at the oldest entry the topic
        still holds."""

    async def consume(
        self, topic: str, group: str, consumer: str, count: int = 100, block_ms: int = 1000
    ) -> list[Message]:
        """Messages for this consumer: expired pending ones (claimed from whoever held them)
        when there are any, otherwise new ones. Blocks up to ``block_ms`` when there is nothing.
        Messages past ``max_deliveries`` are moved to the dead-letter topic instead of being
        returned. Creates the group when missing."""

    async def ack(self, topic: str, group: str, ids: Sequence[str]) -> None: ...

    async def dead_letter(
        self, message: Message, group: str, reason: str
    ) -> None:
        """Give up on a message now (poison input): ack it and store it as a dead letter."""

    async def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters, oldest first."""

    async def get_dead_letter(self, dead_letter_id: str) -> DeadLetter | None: ...

    async def dead_letter_count(self) -> int: ...

    async def replay_dead_letter(self, dead_letter_id: str) -> str:
        """Publish the dead letter again to its original topic and remove it; returns the
        new message id. Raises KeyError when it does not exist."""

    async def group_stats(self, topic: str, group: str) -> GroupStats:
        """Raises KeyError when the group does not exist."""

    async def broadcast(self, channel: str, payload: bytes) -> None: ...

    def subscribe(self, *channels: str) -> Subscription:
        """(channel, payload) for every broadcast on these channels once the subscription is
        active; see Subscription."""
