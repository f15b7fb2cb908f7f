"""The bus of the distributed profile: Redis Streams consumer groups, Pub/Sub for broadcasts.

Keys (all under ``prefix``): ``stream:<topic>`` per topic (payload in field ``p``),
``deadletters`` for dead letters (payload plus original topic, group, reason, deliveries),
and Pub/Sub channels ``broadcast:<channel>``.

The saturation check is per process: each publisher trusts a backlog measurement (XINFO
GROUPS) for up to a second plus what it published itself since, so N API processes together
may overshoot ``max_backlog`` by what the others publish in that second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from vigil.bus.base import (
    DEAD_LETTER_TOPIC,
    BusOptions,
    BusSaturated,
    BusUnavailable,
    DeadLetter,
    GroupStats,
    Message,
)
from vigil.bus.follow import cancel_requested

PAYLOAD = b"p"
# A blocking XREADGROUP is cut into chunks no longer than this (and than the visibility
# timeout) so expired messages of other consumers are claimed while waiting, and so a read
# never outlives the socket timeout.
MAX_BLOCK_MS = 2_000
SOCKET_TIMEOUT_S = 10.0
# How often a waiting pub/sub reader checks whether its subscription was closed.
POLL_S = 1.0
BACKLOG_CACHE_S = 1.0  # how long a measured backlog is trusted (plus what we published since)

# Republish a dead letter to its topic and delete it, atomically, so two concurrent replays
# cannot both succeed. KEYS: dead-letter stream, topic stream. ARGV: dead-letter id, maxlen.
_REPLAY = """
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entries == 0 then return false end
local fields = entries[1][2]
local payload
for i = 1, #fields, 2 do
  if fields[i] == 'p' then payload = fields[i + 1] end
end
local id
if ARGV[2] ~= '' then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'p', payload)
else
  id = redis.call('XADD', KEYS[2], '*', 'p', payload)
end
redis.call('XDEL', KEYS[1], ARGV[1])
return id
"""


# Ack a pending message and add it to the dead letters, atomically, and only if it was still
# pending: a message acked (or buried) meanwhile is not buried again. KEYS: topic stream,
# dead-letter stream. ARGV: group, message id, maxlen, then the dead letter's field/value pairs.
_BURY = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return false end
local args = {KEYS[2]}
if ARGV[3] ~= '' then
  table.insert(args, 'MAXLEN'); table.insert(args, '~'); table.insert(args, ARGV[3])
end
table.insert(args, '*')
for i = 4, #ARGV do table.insert(args, ARGV[i]) end
return redis.call('XADD', unpack(args))
"""


def redact_url(url: str) -> str:
    """The URL without its password, fit for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(slots=True)
class _Backlog:
    measured_at: float  # monotonic
    backlog: int  # measured, plus what this process published since


class RedisSubscription:
    """Pub/Sub on its own connection. Entering it (or the first ``__anext__``) returns only
    once Redis has confirmed every channel, so nothing broadcast afterwards is missed."""

    def __init__(self, bus: RedisBus, channels: tuple[str, ...]) -> None:
        self._bus = bus
        self._channels = {bus._channel_key(c).encode(): c for c in channels}
        # Any: the types-redis stubs in some environments predate redis-py 5's asyncio API.
        self._pubsub: Any = None
        self._early: deque[tuple[str, bytes]] = deque()
        self._closed = False

    async def _activate(self) -> Any:
        if self._pubsub is not None:
            return self._pubsub
        redis = self._bus._client()
        with self._bus._errors():
            pubsub = redis.pubsub()
            self._pubsub = pubsub
            await pubsub.subscribe(*self._channels)
            confirmed: set[bytes] = set()
            while len(confirmed) < len(self._channels):
                event = await pubsub.get_message(timeout=SOCKET_TIMEOUT_S)
                if event is None:
                    raise redis_errors.TimeoutError("no SUBSCRIBE confirmation")
                if event["type"] == "subscribe":
                    confirmed.add(event["channel"])
                elif event["type"] == "message":
                    self._early.append((self._channels[event["channel"]], event["data"]))
        self._bus._subscriptions.add(self)
        return pubsub

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        if self._closed:
            raise StopAsyncIteration
        pubsub = await self._activate()
        if self._early:
            return self._early.popleft()
        while True:
            if self._closed:
                raise StopAsyncIteration
            if cancel_requested():
                raise asyncio.CancelledError
            try:
                with self._bus._errors():
                    # A bounded wait, not an endless one: redis-py's retry layer reconnects a
                    # pub/sub connection that ``aclose`` has just shut, and a reader blocked on
                    # that new socket would outlive its subscription (seen as a task that never
                    # finished cancelling at shutdown). Each timeout re-checks ``_closed``.
                    event = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
            except BusUnavailable:
                if self._closed:
                    raise StopAsyncIteration from None
                raise
            if event is not None and event["type"] == "message":
                return self._channels[event["channel"]], event["data"]

    async def __aenter__(self) -> Self:
        await self._activate()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bus._subscriptions.discard(self)
        if self._pubsub is not None:
            with contextlib.suppress(redis_errors.RedisError, OSError):
                await self._pubsub.aclose()


class RedisBus:
    def __init__(self, url: str, options: BusOptions, prefix: str = "vigil:") -> None:
        if options.stream_maxlen is not None and options.max_backlog > options.stream_maxlen:
            # Trimming drops the oldest entries whether processed or not: the backlog limit
            # must stop publishers before unprocessed messages reach the trimmed end.
            raise ValueError(
                f"max_backlog ({options.max_backlog}) must not exceed stream_maxlen ({options.stream_maxlen})"
            )
        self.url = url
        self.options = options
        self.prefix = prefix
        self.safe_url = redact_url(url)
        self._redis: Redis | None = None
        self._backlogs: dict[str, _Backlog] = {}
        self._next_claim: dict[tuple[str, str], float] = {}
        self._claim_cursor: dict[tuple[str, str], bytes] = {}
        self._subscriptions: set[RedisSubscription] = set()
        self._replay: Any = None
        self._bury_script: Any = None

    # keys and plumbing

    def _stream_key(self, topic: str) -> str:
        return f"{self.prefix}stream:{topic}"

    @property
    def _dead_key(self) -> str:
        return f"{self.prefix}deadletters"

    def _channel_key(self, channel: str) -> str:
        return f"{self.prefix}broadcast:{channel}"

    def _client(self) -> Any:
        # Any: redis-py's own annotations describe replies as str | bytes | None unions that do
        # not depend on decode_responses, so every reply would need casts; we never decode.
        if self._redis is None:
            raise BusUnavailable(f"the Redis bus ({self.safe_url}) is not started")
        return self._redis

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            raise BusUnavailable(f"Redis at {self.safe_url} is unavailable: {exc}") from exc

    @staticmethod
    def _check_topic(topic: str) -> None:
        if topic == DEAD_LETTER_TOPIC:
            raise ValueError(f"{DEAD_LETTER_TOPIC!r} is reserved for dead letters")

    @property
    def _claim_interval_s(self) -> float:
        return min(self.options.visibility_timeout_ms / 5000, 1.0)

    # lifecycle

    async def start(self) -> None:
        if self._redis is None:
            self._redis = Redis.from_url(
                self.url,
                socket_connect_timeout=5.0,
                socket_timeout=SOCKET_TIMEOUT_S,
                # A couple of quick retries ride over a blip; a dead server fails fast.
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
                health_check_interval=30,
            )
            self._replay = self._redis.register_script(_REPLAY)
            self._bury_script = self._redis.register_script(_BURY)
        await self.ping()

    async def close(self) -> None:
        for subscription in list(self._subscriptions):
            await subscription.aclose()
        if self._redis is not None:
            redis: Any = self._redis  # see RedisSubscription._pubsub
            self._redis = None
            with contextlib.suppress(redis_errors.RedisError, OSError):
                await redis.aclose()

    async def ping(self) -> None:
        redis = self._client()
        with self._errors():
            await redis.ping()

    # publishing

    async def _admit(self, topic: str, count: int) -> None:
        """Raise BusSaturated when ``count`` more messages would exceed ``max_backlog``.

        The backlog is measured at most every BACKLOG_CACHE_S; in between, this process's own
        publishes are added to it. That estimate only errs upwards, so only a refusal needs a
        fresh measurement (consumers may have caught up since)."""
        limit = self.options.max_backlog
        known = self._backlogs.get(topic)
        fresh = False
        if known is None or time.monotonic() - known.measured_at > BACKLOG_CACHE_S:
            known = await self._remeasure(topic)
            fresh = True
        if known.backlog + count > limit and not fresh:
            known = await self._remeasure(topic)
        if known.backlog + count > limit:
            raise BusSaturated(topic, known.backlog, limit)
        known.backlog += count

    async def _remeasure(self, topic: str) -> _Backlog:
        measured_at = time.monotonic()
        known = self._backlogs[topic] = _Backlog(measured_at, await self._measure_backlog(topic))
        return known

    async def _measure_backlog(self, topic: str) -> int:
        key = self._stream_key(topic)
        redis = self._client()
        with self._errors():
            async with redis.pipeline(transaction=False) as pipe:
                pipe.xlen(key)
                pipe.xinfo_groups(key)
                length, groups = await pipe.execute(raise_on_error=False)
        if isinstance(length, Exception):
            raise length
        if isinstance(groups, redis_errors.ResponseError) or not groups:
            return int(length)
        return max([await self._group_backlog(key, info) for info in groups])

    async def _group_backlog(self, key: str, info: dict[str, Any]) -> int:
        return await self._lag(key, info) + int(info["pending"])

    async def _lag(self, key: str, info: dict[str, Any]) -> int:
        if info.get("lag") is not None:
            return int(info["lag"])
        # Redis cannot tell the lag after some deletions: count what is past the group's cursor.
        redis = self._client()
        with self._errors():
            entries = await redis.xrange(
                key, min=f"({_text(info['last-delivered-id'])}", max="+",
                count=self.options.max_backlog + 1,
            )
        return len(entries)

    async def publish(self, topic: str, payload: bytes) -> str:
        self._check_topic(topic)
        await self._admit(topic, 1)
        redis = self._client()
        with self._errors():
            message_id = await redis.xadd(
                self._stream_key(topic), {PAYLOAD: payload}, maxlen=self.options.stream_maxlen,
                approximate=True,
            )
        return _text(message_id)

    async def publish_many(self, topic: str, payloads: Sequence[bytes]) -> list[str]:
        self._check_topic(topic)
        if not payloads:
            return []
        await self._admit(topic, len(payloads))
        key = self._stream_key(topic)
        redis = self._client()
        with self._errors():
            async with redis.pipeline(transaction=False) as pipe:
                for payload in payloads:
                    pipe.xadd(key, {PAYLOAD: payload}, maxlen=self.options.stream_maxlen, approximate=True)
                ids = await pipe.execute()
        return [_text(i) for i in ids]

    # consuming

    async def ensure_group(self, topic: str, group: str) -> None:
        self._check_topic(topic)
        redis = self._client()
        try:
            with self._errors():
                await redis.xgroup_create(self._stream_key(topic), group, id="0", mkstream=True)
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def consume(
        self, topic: str, group: str, consumer: str, count: int = 100, block_ms: int = 1000
    ) -> list[Message]:
        self._check_topic(topic)
        try:
            return await self._consume(topic, group, consumer, count, block_ms)
        except redis_errors.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
        await self.ensure_group(topic, group)
        return await self._consume(topic, group, consumer, count, block_ms)

    async def _consume(
        self, topic: str, group: str, consumer: str, count: int, block_ms: int
    ) -> list[Message]:
        deadline = time.monotonic() + block_ms / 1000
        while True:
            claimed = await self._claim_expired(topic, group, consumer, count)
            if claimed:
                return claimed
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            block = None
            if remaining_ms > 0:
                block = max(1, min(remaining_ms, self.options.visibility_timeout_ms, MAX_BLOCK_MS))
            messages = await self._read_new(topic, group, consumer, count, block)
            if messages or block is None:
                return messages

    async def _read_new(
        self, topic: str, group: str, consumer: str, count: int, block: int | None
    ) -> list[Message]:
        redis = self._client()
        with self._errors():
            response = await redis.xreadgroup(
                group, consumer, {self._stream_key(topic): ">"}, count=count, block=block
            )
        if not response:
            return []
        return [
            Message(_text(message_id), topic, fields[PAYLOAD], 1)
            for _, entries in response
            for message_id, fields in entries
        ]

    async def _claim_expired(self, topic: str, group: str, consumer: str, count: int) -> list[Message]:
        """XAUTOCLAIM what has been pending past the visibility timeout, at most every
        ``_claim_interval_s`` per group (a reclaim can wait that long; a consume that finds
        nothing to reclaim costs no round trip in between)."""
        now = time.monotonic()
        slot = (topic, group)
        if now < self._next_claim.get(slot, 0.0):
            return []
        key = self._stream_key(topic)
        redis = self._client()
        with self._errors():
            next_start, entries, *_ = await redis.xautoclaim(
                key, group, consumer, self.options.visibility_timeout_ms,
                start_id=self._claim_cursor.get(slot, b"0-0"), count=count,
            )
        self._claim_cursor[slot] = next_start
        # A scan that stopped part-way through the pending entries goes on at the next call.
        self._next_claim[slot] = now + self._claim_interval_s if next_start in (b"0-0", "0-0") else 0.0
        entries = [(message_id, fields) for message_id, fields in entries if fields is not None]
        if not entries:
            return []
        with self._errors():
            async with redis.pipeline(transaction=False) as pipe:
                for message_id, _ in entries:
                    pipe.xpending_range(key, group, min=message_id, max=message_id, count=1)
                details = await pipe.execute()
        messages: list[Message] = []
        exhausted: list[tuple[bytes, bytes, int]] = []
        for (message_id, fields), detail in zip(entries, details, strict=True):
            if not detail:  # its first holder acked it after all, just now
                continue
            # XAUTOCLAIM already counted this delivery.
            deliveries = int(detail[0]["times_delivered"])
            if deliveries > self.options.max_deliveries:
                exhausted.append((message_id, fields[PAYLOAD], deliveries - 1))
            else:
                messages.append(Message(_text(message_id), topic, fields[PAYLOAD], deliveries))
        for message_id, payload, delivered in exhausted:
            reason = f"not acked after {delivered} deliveries (max_deliveries)"
            await self._bury(topic, group, message_id, payload, delivered, reason)
        return messages

    async def _bury(
        self, topic: str, group: str, message_id: bytes | str, payload: bytes, deliveries: int, reason: str
    ) -> None:
        self._client()
        fields: list[bytes | str | int] = [
            PAYLOAD, payload,
            b"topic", topic,
            b"group", group,
            b"reason", reason,
            b"deliveries", deliveries,
            b"dead_at_ms", int(time.time() * 1000),
            b"message_id", message_id,
        ]
        maxlen = self.options.stream_maxlen
        with self._errors():
            await self._bury_script(
                keys=[self._stream_key(topic), self._dead_key],
                args=[group, message_id, "" if maxlen is None else maxlen, *fields],
            )

    async def ack(self, topic: str, group: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        redis = self._client()
        with self._errors():
            await redis.xack(self._stream_key(topic), group, *ids)

    # dead letters

    async def dead_letter(self, message: Message, group: str, reason: str) -> None:
        await self._bury(message.topic, group, message.id, message.payload, message.deliveries, reason)

    @staticmethod
    def _dead_letter(message_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
        return DeadLetter(
            id=_text(message_id),
            topic=fields[b"topic"].decode(),
            group=fields[b"group"].decode(),
            payload=fields[PAYLOAD],
            deliveries=int(fields[b"deliveries"]),
            reason=fields[b"reason"].decode(),
            dead_at_ms=int(fields[b"dead_at_ms"]),
        )

    async def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        redis = self._client()
        with self._errors():
            entries = await redis.xrange(self._dead_key, count=limit)
        return [self._dead_letter(message_id, fields) for message_id, fields in entries]

    async def get_dead_letter(self, dead_letter_id: str) -> DeadLetter | None:
        redis = self._client()
        try:
            with self._errors():
                entries = await redis.xrange(self._dead_key, min=dead_letter_id, max=dead_letter_id)
        except redis_errors.ResponseError:  # not a stream id at all
            return None
        return self._dead_letter(*entries[0]) if entries else None

    async def dead_letter_count(self) -> int:
        redis = self._client()
        with self._errors():
            return int(await redis.xlen(self._dead_key))

    async def replay_dead_letter(self, dead_letter_id: str) -> str:
        letter = await self.get_dead_letter(dead_letter_id)
        if letter is None:
            raise KeyError(dead_letter_id)
        await self._admit(letter.topic, 1)
        maxlen = self.options.stream_maxlen
        with self._errors():
            new_id = await self._replay(
                keys=[self._dead_key, self._stream_key(letter.topic)],
                args=[dead_letter_id, "" if maxlen is None else maxlen],
            )
        if new_id is None:  # replayed by someone else in the meantime
            raise KeyError(dead_letter_id)
        return _text(new_id)

    async def group_stats(self, topic: str, group: str) -> GroupStats:
        key = self._stream_key(topic)
        redis = self._client()
        try:
            with self._errors():
                groups = await redis.xinfo_groups(key)
        except redis_errors.ResponseError as exc:  # no such stream
            raise KeyError(f"no group {group!r} on topic {topic!r}") from exc
        for info in groups:
            if _text(info["name"]) == group:
                return GroupStats(
                    topic=topic,
                    group=group,
                    pending=int(info["pending"]),
                    lag=await self._lag(key, info),
                    consumers=int(info["consumers"]),
                )
        raise KeyError(f"no group {group!r} on topic {topic!r}")

    # broadcast

    async def broadcast(self, channel: str, payload: bytes) -> None:
        redis = self._client()
        with self._errors():
            await redis.publish(self._channel_key(channel), payload)

    def subscribe(self, *channels: str) -> RedisSubscription:
        return RedisSubscription(self, channels)
