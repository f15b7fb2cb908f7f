"""The in-process bus of the embedded profile: Redis Streams semantics inside one event loop.

Topics are logs addressed by offset; each consumer group has a cursor (the next offset to
deliver) and pending entries (delivered, not acked) with their holder, delivery count and
visibility deadline, exactly like a Redis stream's last-delivered-id and PEL. An entry is
dropped once every group of its topic has acked it (there is no history to re-read).

With a journal, every state change is written to a SQLite file by one writer thread. Writes
from concurrent callers are batched into one transaction (group commit), so ``publish``,
``ack``, ``dead_letter`` and ``replay_dead_letter`` return only once their change is on disk.
Deliveries are journaled too but not waited for: after a crash a message's delivery count can
be one short, never its content missing. A published message becomes visible to consumers only
once it is durable. ``options.extra["journal_synchronous"]`` (``FULL`` by default) may be set
to ``NORMAL`` to survive process crashes but not power loss, for less fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from vigil.bus.base import (
    DEAD_LETTER_TOPIC,
    BusOptions,
    BusSaturated,
    BusUnavailable,
    DeadLetter,
    GroupStats,
    Message,
)

BROADCAST_BUFFER = 10_000  # per subscriber; the oldest broadcasts are dropped beyond it


class IdClock:
    """Redis-style ``<ms>-<seq>`` ids that strictly increase even if the wall clock steps back."""

    __slots__ = ("_ms", "_seq")

    def __init__(self, last_id: str | None = None) -> None:
        self._ms, self._seq = parse_id(last_id) if last_id else (0, -1)

    def next(self) -> str:
        now = int(time.time() * 1000)
        if now > self._ms:
            self._ms, self._seq = now, 0
        else:
            self._seq += 1
        return f"{self._ms}-{self._seq}"


def parse_id(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(slots=True)
class _Pending:
    consumer: str
    deliveries: int
    deadline: float  # loop time after which another consumer may claim it


@dataclass(slots=True)
class _Group:
    name: str
    cursor: int  # offset of the next entry to deliver
    # Keyed by offset; insertion order is offset order (entries are delivered in order and a
    # claim updates its entry in place), like Redis's PEL.
    pending: dict[int, _Pending] = field(default_factory=dict)
    consumers: set[str] = field(default_factory=set)
    # No pending entry expires before this, so consume scans the pending entries only then.
    next_expiry: float = float("inf")


@dataclass(slots=True)
class _Entry:
    id: str
    payload: bytes


@dataclass
class _Topic:
    name: str
    head: int = 0  # lowest offset still held
    end: int = 0  # next offset to assign
    visible: int = 0  # entries below this offset are durable, so consumers may have them
    entries: dict[int, _Entry] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)  # message id -> offset
    groups: dict[str, _Group] = field(default_factory=dict)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    ids: IdClock = field(default_factory=IdClock)

    def backlog(self) -> int:
        if not self.groups:
            return self.end - self.head
        return max(self.end - g.cursor + len(g.pending) for g in self.groups.values())

    def wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


# --- journal ------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    topic TEXT NOT NULL, "offset" INTEGER NOT NULL, id TEXT NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (topic, "offset"));
CREATE TABLE IF NOT EXISTS groups (
    topic TEXT NOT NULL, name TEXT NOT NULL, cursor INTEGER NOT NULL,
    PRIMARY KEY (topic, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    topic TEXT NOT NULL, grp TEXT NOT NULL, "offset" INTEGER NOT NULL, consumer TEXT NOT NULL,
    deliveries INTEGER NOT NULL, PRIMARY KEY (topic, grp, "offset")) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deadletters (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL, grp TEXT NOT NULL,
    payload BLOB NOT NULL, deliveries INTEGER NOT NULL, reason TEXT NOT NULL,
    dead_at_ms INTEGER NOT NULL);
"""

# One statement per kind of state change; a journal op is (kind, parameters).
_STATEMENTS = {
    "message": 'INSERT INTO messages (topic, "offset", id, payload) VALUES (?, ?, ?, ?)',
    "trim": 'DELETE FROM messages WHERE topic = ? AND "offset" < ?',
    "group": "INSERT INTO groups (topic, name, cursor) VALUES (?, ?, ?) "
    "ON CONFLICT (topic, name) DO UPDATE SET cursor = excluded.cursor",
    "deliver": 'INSERT INTO pending (topic, grp, "offset", consumer, deliveries) VALUES (?, ?, ?, ?, ?) '
    'ON CONFLICT (topic, grp, "offset") DO UPDATE SET consumer = excluded.consumer, '
    "deliveries = excluded.deliveries",
    "ack": 'DELETE FROM pending WHERE topic = ? AND grp = ? AND "offset" = ?',
    "dead": "INSERT INTO deadletters (id, topic, grp, payload, deliveries, reason, dead_at_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)",
    "undead": "DELETE FROM deadletters WHERE id = ?",
}

Op = tuple[str, tuple[Any, ...]]


class JournalInUse(Exception):
    pass


@dataclass
class _Snapshot:
    messages: list[tuple[str, int, str, bytes]]
    groups: list[tuple[str, str, int]]
    pending: list[tuple[str, str, int, str, int]]
    dead_letters: list[tuple[str, str, str, bytes, int, str, int]]


class _Journal:
    """SQLite file written by one thread; ops queued by the event loop are committed in
    batches, and ``commit`` resolves once its batch is on disk."""

    def __init__(self, path: Path, synchronous: str, on_commit: Callable[[list[Op]], None]) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"journal_synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.path = path
        self._synchronous = synchronous.upper()
        self._on_commit = on_commit
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-bus-journal")
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._ops: list[Op] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._work = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.failure: BaseException | None = None
        self.batches = 0  # transactions written, for observing group commit

    async def open(self) -> _Snapshot:
        loop = asyncio.get_running_loop()
        snapshot = await loop.run_in_executor(self._executor, self._open_sync)
        self._writer = asyncio.create_task(self._write_batches(), name="vigil-bus-journal")
        return snapshot

    def _open_sync(self) -> _Snapshot:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Two processes sharing a journal would each deliver and trim the other's messages.
        lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise JournalInUse(f"bus journal {self.path} is in use by another process") from None
        self._lock_fd = lock_fd
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.executescript(_SCHEMA)
        self._conn = conn
        return _Snapshot(
            messages=conn.execute(
                'SELECT topic, "offset", id, payload FROM messages ORDER BY topic, "offset"'
            ).fetchall(),
            groups=conn.execute("SELECT topic, name, cursor FROM groups").fetchall(),
            pending=conn.execute(
                'SELECT topic, grp, "offset", consumer, deliveries FROM pending '
                'ORDER BY topic, grp, "offset"'
            ).fetchall(),
            dead_letters=conn.execute(
                "SELECT id, topic, grp, payload, deliveries, reason, dead_at_ms FROM deadletters "
                "ORDER BY seq"
            ).fetchall(),
        )

    def submit(self, *ops: Op) -> None:
        """Queue ops for the next batch without waiting for them."""
        self._ops.extend(ops)
        self._work.set()

    async def commit(self, *ops: Op) -> None:
        """Queue ops and return once they (and everything queued before) are durable."""
        if self.failure is not None:
            raise BusUnavailable(f"bus journal {self.path} failed: {self.failure}")
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.submit(*ops)
        await waiter

    async def _write_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._work.wait()
            self._work.clear()
            if not self._ops:
                if self._closing:
                    return
                continue
            ops, self._ops = self._ops, []
            waiters, self._waiters = self._waiters, []
            try:
                await loop.run_in_executor(self._executor, self._write_sync, ops)
            except Exception as exc:
                # The journal no longer matches memory: refuse everything from now on rather
                # than accept messages that would not survive a restart.
                self.failure = exc
                error = BusUnavailable(f"bus journal {self.path} failed: {exc}")
                for waiter in waiters + self._waiters:
                    if not waiter.done():
                        waiter.set_exception(error)
                return
            self.batches += 1
            self._on_commit(ops)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            if self._closing and not self._ops:
                return

    def _write_sync(self, ops: list[Op]) -> None:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN")
        try:
            # Order matters (an ack follows its delivery), so only runs of the same statement
            # are grouped into one executemany.
            start = 0
            while start < len(ops):
                kind = ops[start][0]
                stop = start + 1
                while stop < len(ops) and ops[stop][0] == kind:
                    stop += 1
                conn.executemany(_STATEMENTS[kind], [params for _, params in ops[start:stop]])
                start = stop
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        self._closing = True
        self._work.set()
        if self._writer is not None:
            await self._writer
        loop = asyncio.get_running_loop()
        if self._conn is not None:
            await loop.run_in_executor(self._executor, self._conn.close)
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None
        self._executor.shutdown(wait=True)


# --- broadcast ----------------------------------------------------------------------------------


class MemorySubscription:
    """Active from creation: ``bus.subscribe(...)`` registers it before returning."""

    def __init__(self, bus: MemoryBus, channels: tuple[str, ...], buffer: int = BROADCAST_BUFFER) -> None:
        self._bus = bus
        self.channels = channels
        self._items: deque[tuple[str, bytes]] = deque()
        self._buffer = buffer
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0  # broadcasts lost because this subscriber fell behind

    def deliver(self, channel: str, payload: bytes) -> None:
        if len(self._items) >= self._buffer:
            self._items.popleft()
            self.dropped += 1
        self._items.append((channel, payload))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._items.popleft()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bus._unsubscribe(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


# --- the bus ------------------------------------------------------------------------------------


class MemoryBus:
    def __init__(self, options: BusOptions, journal_path: Path | None = None) -> None:
        self.options = options
        self.journal_path = journal_path
        self._topics: dict[str, _Topic] = {}
        self._dead_letters: dict[str, DeadLetter] = {}  # insertion order is oldest first
        self._dead_ids = IdClock()
        self._subscribers: dict[str, set[MemorySubscription]] = {}
        self._journal: _Journal | None = None
        self._started = False
        self._closed = False

    @property
    def journal_batches(self) -> int:
        """Journal transactions written so far (0 without a journal)."""
        return self._journal.batches if self._journal is not None else 0

    # lifecycle

    async def start(self) -> None:
        if self._started:
            return
        if self.journal_path is not None:
            self._journal = _Journal(
                self.journal_path,
                self.options.extra.get("journal_synchronous", "FULL"),
                self._on_commit,
            )
            try:
                snapshot = await self._journal.open()
            except JournalInUse as exc:
                await self._journal.close()
                raise BusUnavailable(str(exc)) from exc
            except (sqlite3.Error, OSError) as exc:
                await self._journal.close()
                raise BusUnavailable(f"cannot open bus journal {self.journal_path}: {exc}") from exc
            self._restore(snapshot)
        self._started = True

    def _restore(self, snapshot: _Snapshot) -> None:
        for name, offset, message_id, payload in snapshot.messages:
            topic = self._topic(name)
            if not topic.entries:
                topic.head = offset
            topic.entries[offset] = _Entry(message_id, payload)
            topic.offsets[message_id] = offset
            topic.end = topic.visible = offset + 1
        for topic in self._topics.values():
            topic.ids = IdClock(topic.entries[topic.end - 1].id)
        for name, group_name, cursor in snapshot.groups:
            topic = self._topic(name)
            if not topic.entries:
                topic.head = max(topic.head, cursor)
            topic.end = topic.visible = max(topic.end, cursor)
            topic.groups[group_name] = _Group(group_name, cursor)
        for name, group_name, offset, consumer, deliveries in snapshot.pending:
            held = self._topics.get(name)
            group = held.groups.get(group_name) if held else None
            if held is None or group is None or offset not in held.entries:
                continue
            # Every holder died with the previous process: these are claimable at once.
            group.pending[offset] = _Pending(consumer, deliveries, deadline=0.0)
            group.next_expiry = 0.0
        for dead_id, name, group_name, payload, deliveries, reason, dead_at_ms in snapshot.dead_letters:
            self._dead_letters[dead_id] = DeadLetter(
                dead_id, name, group_name, payload, deliveries, reason, dead_at_ms
            )
            self._dead_ids = IdClock(dead_id)
        for topic in self._topics.values():
            for group in topic.groups.values():
                # Cursor updates are journaled lazily, but never behind a trim (acks follow
                # deliveries); clamp anyway so a damaged journal cannot point below the head.
                group.cursor = max(group.cursor, topic.head)
            self._trim(topic, journal=False)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for topic in self._topics.values():
            topic.wake()
        for subscribers in list(self._subscribers.values()):
            for subscription in list(subscribers):
                subscription.close()
        if self._journal is not None:
            await self._journal.close()

    async def ping(self) -> None:
        self._check_open()

    def _check_open(self) -> None:
        if self._closed:
            raise BusUnavailable("the in-process bus is closed")
        if not self._started:
            raise BusUnavailable("the in-process bus is not started")
        if self._journal is not None and self._journal.failure is not None:
            raise BusUnavailable(f"bus journal {self.journal_path} failed: {self._journal.failure}")

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic(name)
        return topic

    @staticmethod
    def _check_topic(name: str) -> None:
        if name == DEAD_LETTER_TOPIC:
            raise ValueError(f"{DEAD_LETTER_TOPIC!r} is reserved for dead letters")

    def _on_commit(self, ops: list[Op]) -> None:
        """Journal batch durable: its messages may now be delivered."""
        woken: set[str] = set()
        for kind, params in ops:
            if kind == "message":
                topic = self._topics.get(params[0])
                if topic is not None:
                    topic.visible = max(topic.visible, params[1] + 1)
                    woken.add(topic.name)
        for name in woken:
            self._topics[name].wake()

    # publishing

    async def publish(self, topic: str, payload: bytes) -> str:
        return (await self.publish_many(topic, (payload,)))[0]

    async def publish_many(self, topic: str, payloads: Sequence[bytes]) -> list[str]:
        self._check_open()
        self._check_topic(topic)
        if not payloads:
            return []
        state = self._topic(topic)
        backlog = state.backlog()
        if backlog + len(payloads) > self.options.max_backlog:
            raise BusSaturated(topic, backlog, self.options.max_backlog)
        return await self._append(state, payloads)

    async def _append(self, topic: _Topic, payloads: Sequence[bytes]) -> list[str]:
        ids: list[str] = []
        ops: list[Op] = []
        for payload in payloads:
            message_id = topic.ids.next()
            offset = topic.end
            topic.end += 1
            topic.entries[offset] = _Entry(message_id, bytes(payload))
            topic.offsets[message_id] = offset
            ids.append(message_id)
            ops.append(("message", (topic.name, offset, message_id, payload)))
        if self._journal is None:
            topic.visible = topic.end
            topic.wake()
        else:
            await self._journal.commit(*ops)
        return ids

    # consuming

    async def ensure_group(self, topic: str, group: str) -> None:
        self._check_open()
        self._check_topic(topic)
        state = self._topic(topic)
        if group in state.groups:
            return
        state.groups[group] = _Group(group, cursor=state.head)
        if self._journal is not None:
            await self._journal.commit(("group", (topic, group, state.head)))

    async def consume(
        self, topic: str, group: str, consumer: str, count: int = 100, block_ms: int = 1000
    ) -> list[Message]:
        self._check_open()
        await self.ensure_group(topic, group)
        state = self._topics[topic]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block_ms / 1000
        while True:
            state_group = state.groups[group]
            now = loop.time()
            messages = self._claim_expired(state, state_group, consumer, count, now)
            if not messages:
                messages = self._deliver_new(state, state_group, consumer, count, now)
            if messages:
                state_group.consumers.add(consumer)
                return messages
            if now >= deadline:
                return []
            await self._wait(state, min(deadline, state_group.next_expiry) - now)
            if self._closed:
                return []

    async def _wait(self, topic: _Topic, seconds: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        topic.waiters.append(waiter)
        try:
            async with asyncio.timeout(max(seconds, 0.0)):
                await waiter
        except TimeoutError:
            with contextlib.suppress(ValueError):
                topic.waiters.remove(waiter)

    def _deliver_new(
        self, topic: _Topic, group: _Group, consumer: str, count: int, now: float
    ) -> list[Message]:
        stop = min(group.cursor + count, topic.visible)
        if stop <= group.cursor:
            return []
        deadline = now + self.options.visibility_timeout_ms / 1000
        messages: list[Message] = []
        ops: list[Op] = [("group", (topic.name, group.name, stop))]
        for offset in range(group.cursor, stop):
            entry = topic.entries[offset]
            group.pending[offset] = _Pending(consumer, 1, deadline)
            messages.append(Message(entry.id, topic.name, entry.payload, 1))
            ops.append(("deliver", (topic.name, group.name, offset, consumer, 1)))
        group.cursor = stop
        group.next_expiry = min(group.next_expiry, deadline)
        if self._journal is not None:
            self._journal.submit(*ops)
        return messages

    def _claim_expired(
        self, topic: _Topic, group: _Group, consumer: str, count: int, now: float
    ) -> list[Message]:
        if now < group.next_expiry:
            return []
        deadline = now + self.options.visibility_timeout_ms / 1000
        messages: list[Message] = []
        exhausted: list[tuple[int, _Pending]] = []
        ops: list[Op] = []
        next_expiry = float("inf")
        for offset, pending in group.pending.items():
            if pending.deadline <= now and len(messages) < count:
                if pending.deliveries >= self.options.max_deliveries:
                    exhausted.append((offset, pending))
                    continue
                pending.consumer = consumer
                pending.deliveries += 1
                pending.deadline = deadline
                entry = topic.entries[offset]
                messages.append(Message(entry.id, topic.name, entry.payload, pending.deliveries))
                ops.append(("deliver", (topic.name, group.name, offset, consumer, pending.deliveries)))
            next_expiry = min(next_expiry, pending.deadline)
        group.next_expiry = next_expiry
        if ops and self._journal is not None:
            self._journal.submit(*ops)
        for offset, pending in exhausted:
            reason = f"not acked after {pending.deliveries} deliveries (max_deliveries)"
            ops = self._bury(topic, group, offset, pending.deliveries, reason)
            if self._journal is not None:
                self._journal.submit(*ops)
        return messages

    def _bury(self, topic: _Topic, group: _Group, offset: int, deliveries: int, reason: str) -> list[Op]:
        """Move a pending entry to the dead letters; returns the journal ops that record it."""
        del group.pending[offset]
        entry = topic.entries[offset]
        letter = DeadLetter(
            id=self._dead_ids.next(),
            topic=topic.name,
            group=group.name,
            payload=entry.payload,
            deliveries=deliveries,
            reason=reason,
            dead_at_ms=int(time.time() * 1000),
        )
        self._dead_letters[letter.id] = letter
        ops: list[Op] = [
            ("ack", (topic.name, group.name, offset)),
            ("dead", (letter.id, letter.topic, letter.group, letter.payload, deliveries, reason,
                      letter.dead_at_ms)),
        ]
        return ops + self._trim(topic)

    def _trim(self, topic: _Topic, journal: bool = True) -> list[Op]:
        """Drop the entries at the head that every group has acked."""
        if not topic.groups:
            return []
        groups = topic.groups.values()
        head = topic.head
        while head < topic.visible and all(head < g.cursor and head not in g.pending for g in groups):
            entry = topic.entries.pop(head)
            del topic.offsets[entry.id]
            head += 1
        if head == topic.head:
            return []
        topic.head = head
        return [("trim", (topic.name, head))] if journal else []

    async def ack(self, topic: str, group: str, ids: Sequence[str]) -> None:
        self._check_open()
        state = self._topics.get(topic)
        state_group = state.groups.get(group) if state else None
        if state is None or state_group is None:
            return
        ops: list[Op] = []
        for message_id in ids:
            offset = state.offsets.get(message_id)
            if offset is not None and state_group.pending.pop(offset, None) is not None:
                ops.append(("ack", (topic, group, offset)))
        if not ops:
            return
        ops += self._trim(state)
        if self._journal is not None:
            await self._journal.commit(*ops)

    # dead letters

    async def dead_letter(self, message: Message, group: str, reason: str) -> None:
        self._check_open()
        state = self._topics.get(message.topic)
        state_group = state.groups.get(group) if state else None
        offset = state.offsets.get(message.id) if state else None
        if state is None or state_group is None or offset is None or offset not in state_group.pending:
            return  # already acked or buried: nothing to give up on
        ops = self._bury(state, state_group, offset, message.deliveries, reason)
        if self._journal is not None:
            await self._journal.commit(*ops)

    async def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        self._check_open()
        letters: list[DeadLetter] = []
        for letter in self._dead_letters.values():
            if len(letters) >= limit:
                break
            letters.append(letter)
        return letters

    async def get_dead_letter(self, dead_letter_id: str) -> DeadLetter | None:
        self._check_open()
        return self._dead_letters.get(dead_letter_id)

    async def dead_letter_count(self) -> int:
        self._check_open()
        return len(self._dead_letters)

    async def replay_dead_letter(self, dead_letter_id: str) -> str:
        self._check_open()
        letter = self._dead_letters.get(dead_letter_id)
        if letter is None:
            raise KeyError(dead_letter_id)
        topic = self._topic(letter.topic)
        backlog = topic.backlog()
        if backlog + 1 > self.options.max_backlog:
            raise BusSaturated(letter.topic, backlog, self.options.max_backlog)
        del self._dead_letters[dead_letter_id]
        if self._journal is not None:
            # Same batch as the message insert below: the dead letter is never both gone and
            # not yet republished on disk.
            self._journal.submit(("undead", (dead_letter_id,)))
        return (await self._append(topic, (letter.payload,)))[0]

    async def group_stats(self, topic: str, group: str) -> GroupStats:
        self._check_open()
        state = self._topics.get(topic)
        state_group = state.groups.get(group) if state else None
        if state is None or state_group is None:
            raise KeyError(f"no group {group!r} on topic {topic!r}")
        return GroupStats(
            topic=topic,
            group=group,
            pending=len(state_group.pending),
            lag=max(state.visible - state_group.cursor, 0),
            consumers=len(state_group.consumers),
        )

    # broadcast

    async def broadcast(self, channel: str, payload: bytes) -> None:
        self._check_open()
        for subscription in self._subscribers.get(channel, ()):
            subscription.deliver(channel, payload)

    def subscribe(self, *channels: str) -> MemorySubscription:
        subscription = MemorySubscription(self, channels)
        for channel in channels:
            self._subscribers.setdefault(channel, set()).add(subscription)
        return subscription

    def _unsubscribe(self, subscription: MemorySubscription) -> None:
        for channel in subscription.channels:
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[channel]
