"""The log stage: template mining per source, storage, classification, live tail and signals.

Why it is shaped like this
--------------------------
Template ids come from an online miner whose ids depend on the order it sees lines in, so a
source's lines must go through one miner, in one order, whichever worker runs it. A consumer
group hands any message to any worker, so the stage cannot simply be N replicas of one group.

Sources are hashed (crc32) into ``VIGIL_LOG_SHARDS`` shards. Shard *k* is a consumer group
``logs.<k>`` on ``topology.LOGS``, and a lease ``logs-shard:<k>`` decides which worker consumes
it: exactly one worker holds a shard at a time (Redis ``SET NX PX`` leases with renewal on the
distributed profile, in-process leases otherwise; ``vigil.collectors.leases``). Every shard's
group reads every message and keeps only the records of its own sources. That costs one JSON
decode of each message per shard, and buys the property that matters: each shard sees the
topic in publication order, so N workers produce exactly the template ids one worker would.
(Re-publishing records to per-shard topics would avoid the extra decodes, but several
re-publishers interleave batches differently from run to run, and the ids with them.)
Workers spread shards by rendezvous hashing over the live members; on takeover the new owner
waits for the old owner's unacknowledged messages to become claimable, so order survives.

State: a source's miner is restored from its snapshot in ``log_miner_state`` and the lines
stored after it are replayed (the miner is deterministic), so a crash loses nothing and a
restart continues with the same ids. Snapshots are written every ``snapshot_interval_s`` and
when a shard is released. Stored bus message ids (``log_processed_messages``) make a
redelivered message a no-op, and the lease is renewed right before each commit (fencing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import insert, select

from vigil.backends import Backends
from vigil.bus.base import Message
from vigil.collectors.leases import Leases, build_leases
from vigil.domain import codec
from vigil.domain.findings import Finding
from vigil.domain.logs import LogRecord, normalise_level
from vigil.logs.signals import SignalTracker, new_error_template_finding
from vigil.logs.store import (
    MAX_EXAMPLES,
    SourceMiner,
    TemplateState,
    insert_template,
    load_source_miner,
    reclassify_by_rules,
    save_snapshot,
    write_template_changes,
)
from vigil.pipeline import topology
from vigil.pipeline.leased_partitions import LeasedPartitions
from vigil.pipeline.runner import consumer_name, register_group
from vigil.store.models.logs import LogLine, LogProcessedMessage
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)

DEFAULT_SOURCE = "default"
LEASE_PREFIX = "logs-shard:"
MEMBERS_GROUP = "logs-shards"


def shard_group(shard: int) -> str:
    return f"logs.{shard}"


def shard_of(source: str, shards: int) -> int:
    """Stable across processes and restarts (unlike ``hash``)."""
    return zlib.crc32(source.encode()) % shards


class PoisonPayload(Exception):
    pass


def decode_records(payload: bytes) -> list[LogRecord]:
    """The records of a ``topology.LOGS`` message; PoisonPayload if it can never be read."""
    try:
        data = orjson.loads(payload)
        items = data["items"]
        default_source = data.get("source")
        records = []
        for item in items:
            record = LogRecord.from_dict(item)
            record.source = record.source or default_source or DEFAULT_SOURCE
            record.level = normalise_level(record.level) if record.level else None
            records.append(record)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PoisonPayload(f"not a log batch: {type(exc).__name__}: {exc}") from exc
    return records


def _clip(value: str | None, size: int) -> str | None:
    return value[:size] if value else value


@dataclass
class _Handled:
    lines: list[dict[str, Any]]
    findings: list[Finding]


class ShardConsumer:
    """Consumes one shard's consumer group while its lease is held."""

    def __init__(self, worker: LogWorker, shard: int) -> None:
        self.worker = worker
        self.backends = worker.backends
        self.shard = shard
        self.group = shard_group(shard)
        self.miners: dict[str, SourceMiner] = {}
        self.signals = SignalTracker()
        self.stop = asyncio.Event()
        self.lost = False  # the lease went to someone else: our state must not be saved
        self._last_snapshot = time.monotonic()
        self._last_signals = time.monotonic()

    async def run(self) -> None:
        bus = self.backends.bus
        await bus.ensure_group(topology.LOGS, self.group)
        try:
            stats = await bus.group_stats(topology.LOGS, self.group)
            if stats.pending:
                # The previous owner left messages unacknowledged: wait until they can be claimed,
                # so they are handled before anything newer.
                wait_s = bus.options.visibility_timeout_ms / 1000
                await sleep_unless(self.stop, wait_s)
            while not self.stop.is_set():
                messages = await self._next_batch()
                if messages:
                    await self.process(messages)
                await self.maintain()
        finally:
            if not self.lost:
                try:
                    await self.flush()
                except Exception as exc:
                    log.warning("log shard %d: final snapshot failed: %s", self.shard, exc)

    async def _next_batch(self) -> list[Message]:
        consume = asyncio.create_task(
            self.backends.bus.consume(
                topology.LOGS,
                self.group,
                self.worker.consumer,
                count=self.worker.batch_size,
                block_ms=self.worker.block_ms,
            )
        )
        stop = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait({consume, stop}, return_when=asyncio.FIRST_COMPLETED)
        if consume in done:
            stop.cancel()
            return consume.result()
        consume.cancel()
        await asyncio.gather(consume, return_exceptions=True)
        return []

    async def process(self, messages: Sequence[Message]) -> None:
        bus = self.backends.bus
        settled: list[str] = []
        batch: list[tuple[Message, list[LogRecord]]] = []
        for message in messages:
            try:
                records = decode_records(message.payload)
            except PoisonPayload as exc:
                # Every shard reads every message: only shard 0 files it as a dead letter.
                if self.shard == 0:
                    await bus.dead_letter(message, self.group, f"logs: {exc}")
                else:
                    settled.append(message.id)
                continue
            mine = [
                r for r in records if shard_of(r.source or DEFAULT_SOURCE, self.worker.shards) == self.shard
            ]
            if mine:
                batch.append((message, mine))
            else:
                settled.append(message.id)
        if batch:
            try:
                handled = await self._store(batch)
            except Exception as exc:
                # The miners may be ahead of the database now: rebuild them from it on retry.
                self.miners.clear()
                self.signals = SignalTracker()
                log.warning("log shard %d: batch failed, will be retried: %s", self.shard, exc, exc_info=exc)
                if settled:
                    await bus.ack(topology.LOGS, self.group, settled)
                await asyncio.sleep(1.0)
                return
            settled.extend(message.id for message, _ in batch)
            await self._publish(handled)
        if settled:
            await bus.ack(topology.LOGS, self.group, settled)

    async def _miner(self, source: str) -> SourceMiner:
        miner = self.miners.get(source)
        if miner is None:
            miner = await load_source_miner(self.backends.db, source, self.shard)
            self.miners[source] = miner
        return miner

    async def _store(self, batch: list[tuple[Message, list[LogRecord]]]) -> _Handled:
        db = self.backends.db
        async with db.session() as session:
            ids = [message.id for message, _ in batch]
            seen = set(
                (
                    await session.execute(
                        select(LogProcessedMessage.message_id).where(
                            LogProcessedMessage.shard == self.shard, LogProcessedMessage.message_id.in_(ids)
                        )
                    )
                ).scalars()
            )
        fresh = [(m, records) for m, records in batch if m.id not in seen]
        if not fresh:
            return _Handled([], [])
        sources = {r.source or DEFAULT_SOURCE for _, records in fresh for r in records}
        for source in sorted(sources):
            await self._miner(source)

        findings: list[Finding] = []
        rows: list[dict[str, Any]] = []
        touched: dict[int, tuple[SourceMiner, TemplateState]] = {}
        # SQLite has one writer: shards of this process take turns instead of failing on locks.
        async with self.worker.sqlite_write_lock, db.session() as session:
            for _, records in fresh:
                for record in records:
                    source = record.source or DEFAULT_SOURCE
                    miner = self.miners[source]
                    match = miner.miner.add(record.message)
                    state = miner.templates.get(match.template_id)
                    if state is None:
                        state, label = await insert_template(
                            session,
                            miner,
                            match.template_id,
                            match.template,
                            record.time_ns,
                            record.level,
                            record.service,
                        )
                        if label.is_error:
                            findings.append(
                                new_error_template_finding(
                                    state.id,
                                    state.text,
                                    source,
                                    label,
                                    record.time_ns,
                                    record.host,
                                    record.service,
                                    record.message,
                                )
                            )
                    elif match.change != "none":
                        await self._apply_changes(session, miner, record.level)
                    state.count += 1
                    state.first_seen_ns = min(state.first_seen_ns, record.time_ns)
                    state.last_seen_ns = max(state.last_seen_ns, record.time_ns)
                    if len(state.examples) < MAX_EXAMPLES and record.message not in state.examples:
                        state.examples.append(record.message[:2000])
                    state.dirty = True
                    touched[state.id] = (miner, state)
                    miner.dirty = True
                    rows.append(
                        {
                            "time_ns": record.time_ns,
                            "source": source[:128],
                            "host": _clip(record.host, 255),
                            "service": _clip(record.service, 255),
                            "level": _clip(record.level, 16),
                            "os": _clip(record.os, 64),
                            "facility": _clip(record.facility, 32),
                            "message": record.message,
                            "template_id": state.id,
                            "params": list(match.parameters),
                            "attributes": record.attributes,
                        }
                    )
            await write_template_changes(session, [state for _, state in touched.values() if state.dirty])
            line_ids = list(
                (
                    await session.execute(
                        insert(LogLine).returning(LogLine.id, sort_by_parameter_order=True), rows
                    )
                ).scalars()
            )
            session.add_all(LogProcessedMessage(shard=self.shard, message_id=m.id) for m, _ in fresh)
            # Fencing: commit only while we still hold the shard.
            if not await self.worker.still_holds(self.shard):
                self.lost = True
                self.stop.set()
                raise RuntimeError(f"lease of log shard {self.shard} lost; not committing")
        for row, line_id in zip(rows, line_ids, strict=True):
            row["id"] = line_id
            miner = self.miners[row["source"]]
            miner.last_line_id = max(miner.last_line_id, line_id)
            state = touched[row["template_id"]][1]
            row["template"] = state.text
            row["failure_type"] = state.failure_type
            row["severity"] = state.severity
            self.signals.count(state.canonical_id, row["source"], state.text, row["host"], row["time_ns"])
        return _Handled(rows, findings)

    async def _apply_changes(self, session: Any, miner: SourceMiner, level: str | None) -> None:
        """Templates changed text or merged: mirror that in the stored templates."""
        for info in miner.miner.templates():
            state = miner.templates.get(info.template_id)
            if state is None:
                continue  # never matched a line: nothing stored refers to it
            canonical_local = miner.miner.resolve(info.template_id)
            canonical = miner.templates.get(canonical_local)
            canonical_id = canonical.id if canonical else state.id
            text = miner.miner.template(info.template_id)
            if text != state.text or canonical_id != state.canonical_id:
                text_changed = text != state.text
                state.text = text
                state.canonical_id = canonical_id
                state.dirty = True
                if text_changed and info.successor is None:
                    await reclassify_by_rules(session, state, level)

    async def _publish(self, handled: _Handled) -> None:
        bus = self.backends.bus
        if handled.lines:
            live = [
                {
                    k: row[k]
                    for k in (
                        "id",
                        "time_ns",
                        "source",
                        "host",
                        "service",
                        "level",
                        "os",
                        "message",
                        "template_id",
                        "template",
                        "failure_type",
                        "severity",
                    )
                }
                for row in handled.lines
            ]
            with contextlib.suppress(Exception):  # live tail is best effort
                await bus.broadcast(topology.LIVE_LOGS, codec.encode({"kind": "logs", "items": live}))
        if handled.findings:
            await bus.publish(
                topology.FINDINGS, codec.encode_dicts("findings", [f.to_dict() for f in handled.findings])
            )

    async def maintain(self) -> None:
        now = time.monotonic()
        if now - self._last_signals >= self.worker.signal_interval_s:
            self._last_signals = now
            await self.flush_signals()
        if now - self._last_snapshot >= self.worker.snapshot_interval_s:
            self._last_snapshot = now
            await self.snapshot()

    async def flush_signals(self) -> None:
        points = self.signals.points()
        findings = self.signals.close_minutes(time.time_ns())
        try:
            if points:
                await self.backends.metrics.write(points)
        except Exception as exc:
            log.warning("log shard %d: writing template counts failed: %s", self.shard, exc)
        if findings:
            await self.backends.bus.publish(
                topology.FINDINGS, codec.encode_dicts("findings", [f.to_dict() for f in findings])
            )

    async def snapshot(self) -> None:
        for miner in list(self.miners.values()):
            if miner.dirty:
                async with self.worker.sqlite_write_lock:
                    await save_snapshot(self.backends.db, miner)

    async def flush(self) -> None:
        try:
            await self.flush_signals()
        except Exception as exc:
            log.warning("log shard %d: signals not flushed: %s", self.shard, exc)
        await self.snapshot()


class LogWorker(LeasedPartitions["ShardConsumer"]):
    """The ``logs`` service: holds shard leases and runs a :class:`ShardConsumer` per shard."""

    name = "logs"
    label = "log shard"
    lease_prefix = LEASE_PREFIX
    members_group = MEMBERS_GROUP

    def __init__(
        self,
        backends: Backends,
        *,
        leases: Leases | None = None,
        consumer: str | None = None,
        shards: int | None = None,
        batch_size: int = 500,
        block_ms: int = 500,
        lease_ttl_ms: int = 15_000,
        snapshot_interval_s: float = 30.0,
        signal_interval_s: float = 10.0,
    ) -> None:
        self.backends = backends
        self.shards = shards or backends.settings.log_shards
        self.leases = leases or build_leases(backends.settings)
        self.consumer = consumer or consumer_name(backends.settings.worker_name)
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.lease_ttl_ms = lease_ttl_ms
        self.snapshot_interval_s = snapshot_interval_s
        self.signal_interval_s = signal_interval_s
        self.consumers: dict[int, tuple[ShardConsumer, asyncio.Task[None]]] = {}
        self.sqlite_write_lock: asyncio.Lock | contextlib.nullcontext[None] = (
            asyncio.Lock() if backends.db.is_sqlite else contextlib.nullcontext()
        )
        for shard in range(self.shards):
            register_group(topology.LOGS, shard_group(shard))

    # --- leases (see LeasedPartitions) ---------------------------------------------------------

    @property
    def partition_count(self) -> int:
        return self.shards

    @property
    def partition_topic(self) -> str:
        return topology.LOGS

    @property
    def lease_ttl(self) -> int:
        return self.lease_ttl_ms

    def group_of(self, partition: int) -> str:
        return shard_group(partition)

    def new_consumer(self, partition: int) -> ShardConsumer:
        return ShardConsumer(self, partition)

    def after_crash(self, consumer: ShardConsumer) -> None:
        consumer.miners.clear()

    async def drain(self, timeout_s: float = 20.0) -> None:
        await super().drain(timeout_s)


def log_services(backends: Backends) -> list[Any]:
    """The log side of the worker: shard consumers, the template vector index, retention."""
    from vigil.llm.factory import template_classifier
    from vigil.logs.labels import ModelLabeler
    from vigil.logs.retention import LogRetention
    from vigil.logs.semantic import TemplateIndexer

    services: list[Any] = [LogWorker(backends), TemplateIndexer(backends), LogRetention(backends)]
    classifier = template_classifier(backends)  # None unless an LLM is configured
    if classifier is not None:
        services.append(ModelLabeler(backends, classifier))
    return services
