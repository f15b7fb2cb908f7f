"""Inventory: the hosts and services seen in metrics, logs and errors, with labels and times.

Three stages (one per topic, consumer group ``inventory``) feed one recorder. The recorder
remembers what it has written, so the database hears about an entity when it is new, when it
shows a label or telemetry kind not recorded yet, or at most once a minute to move
``last_seen`` — however many points mention it. Extraction is cheap on purpose: for
line-protocol batches it reads only the distinct series keys, never parsing the points.

Inventory is best effort: a message it cannot read is skipped (the ingest stages dead-letter
it); a database failure fails the batch, which is retried.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from vigil.bus.base import Message
from vigil.domain import codec
from vigil.pipeline import topology
from vigil.pipeline.runner import BatchOutcome
from vigil.store.db import Database
from vigil.store.models import InventoryEntity

log = logging.getLogger(__name__)

GROUP = "inventory"
WRITE_INTERVAL_S = 60.0
MAX_REMEMBERED = 200_000
_HOST_TAGS = ("host", "hostname")
_SERVICE_TAGS = ("service",)
_LATER_SERIES_KEYS = re.compile(r"\n([^ \n]+)")  # a literal newline first: a quick search


@dataclass(frozen=True, slots=True)
class Sighting:
    kind: str  # host | service
    name: str
    telemetry: str  # metrics | logs | errors
    labels: tuple[tuple[str, str], ...] = ()


def _labels(**values: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in values.items() if v not in (None, "")))


def _tag_sightings(tags: dict[str, str], telemetry: str, source: str | None) -> Iterable[Sighting]:
    for key in _HOST_TAGS:
        if tags.get(key):
            yield Sighting("host", tags[key][:255], telemetry, _labels(source=source))
            break
    for key in _SERVICE_TAGS:
        if tags.get(key):
            yield Sighting("service", tags[key][:255], telemetry, _labels(source=source))
            break


def _series_key_tags(key: str) -> dict[str, str]:
    """Tags of a plain series key (no escapes: the API only forwards such line protocol)."""
    tags: dict[str, str] = {}
    for pair in key.split(",")[1:]:
        name, _, value = pair.partition("=")
        tags[name] = value
    return tags


# Series key (and source) → its sightings: a batch repeats the same few hundred series keys,
# and so does every later batch from the same agents.
_KEY_SIGHTINGS: dict[tuple[str | None, str], tuple[Sighting, ...]] = {}
_MAX_CACHED_KEYS = 100_000


def metric_sightings(payload: bytes) -> set[Sighting]:
    batch = codec.decode_metric_batch(payload)
    found: set[Sighting] = set()
    source = batch.source
    if batch.line_protocol is not None:
        text = batch.line_protocol
        keys = set(_LATER_SERIES_KEYS.findall(text))
        keys.add(text.split(" ", 1)[0])
        cache = _KEY_SIGHTINGS
        for key in keys:
            sightings = cache.get((source, key))
            if sightings is None:
                if len(cache) >= _MAX_CACHED_KEYS:
                    cache.clear()
                tags = _series_key_tags(key) if "," in key else {}
                sightings = cache[(source, key)] = tuple(_tag_sightings(tags, "metrics", source))
            found.update(sightings)
        return found
    for _measurement, tags, _fields, _time in batch.rows or ():
        if tags:
            found.update(_tag_sightings(tags, "metrics", source))
    return found


def log_sightings(payload: bytes) -> set[Sighting]:
    data = codec.decode(payload)
    source = data.get("source")
    found: set[Sighting] = set()
    for item in data.get("items") or ():
        host, service = item.get("host"), item.get("service")
        if host:
            found.add(Sighting("host", str(host)[:255], "logs", _labels(os=item.get("os"), source=source)))
        if service:
            found.add(Sighting("service", str(service)[:255], "logs", _labels(source=source)))
    return found


def error_sightings(payload: bytes) -> set[Sighting]:
    data = codec.decode(payload)
    source = data.get("source")
    found: set[Sighting] = set()
    for item in data.get("items") or ():
        host, service = item.get("host"), item.get("service")
        environment = item.get("environment")
        if host:
            found.add(
                Sighting("host", str(host)[:255], "errors", _labels(environment=environment, source=source))
            )
        if service:
            found.add(
                Sighting(
                    "service", str(service)[:255], "errors", _labels(environment=environment, source=source)
                )
            )
    return found


@dataclass(slots=True)
class _Known:
    labels: dict[str, str]
    telemetry: set[str]
    written_at: float


class InventoryRecorder:
    """Writes sightings to the inventory table, de-duplicated in memory (see module docstring)."""

    def __init__(self, db: Database, write_interval_s: float = WRITE_INTERVAL_S) -> None:
        self.db = db
        self.write_interval_s = write_interval_s
        self._known: dict[tuple[str, str], _Known] = {}

    def _due(self, sightings: Iterable[Sighting], now: float) -> dict[tuple[str, str], _Known]:
        due: dict[tuple[str, str], _Known] = {}
        for sighting in sightings:
            key = (sighting.kind, sighting.name)
            update = due.get(key)
            known = self._known.get(key)
            if update is None:
                labels = dict(sighting.labels)
                if (
                    known is not None
                    and now - known.written_at < self.write_interval_s
                    and sighting.telemetry in known.telemetry
                    and all(known.labels.get(k) == v for k, v in labels.items())
                ):
                    continue
                update = due[key] = _Known(labels, {sighting.telemetry}, now)
            else:
                update.labels.update(sighting.labels)
                update.telemetry.add(sighting.telemetry)
        return due

    async def observe(self, sightings: Iterable[Sighting]) -> int:
        """Record what is due; returns how many entities were written."""
        now = time.monotonic()
        due = self._due(sightings, now)
        if not due:
            return 0
        stamp = datetime.now(UTC)
        async with self.db.session() as session:
            existing = {
                (row.kind, row.name): row
                for row in (
                    await session.execute(
                        select(InventoryEntity)
                        .where(tuple_(InventoryEntity.kind, InventoryEntity.name).in_(sorted(due)))
                        .order_by(InventoryEntity.id)
                        .with_for_update()
                    )
                ).scalars()
            }
            insert = sqlite_insert if self.db.is_sqlite else pg_insert
            for key in sorted(due):
                update = due[key]
                row = existing.get(key)
                if row is not None:
                    labels = {**(row.labels or {}), **update.labels}
                    telemetry = sorted(set(row.telemetry or []) | update.telemetry)
                    if labels != row.labels:
                        row.labels = labels
                    if telemetry != row.telemetry:
                        row.telemetry = telemetry
                    row.last_seen = stamp
                    update.labels, update.telemetry = labels, set(telemetry)
                    continue
                statement = insert(InventoryEntity).values(
                    kind=key[0],
                    name=key[1],
                    labels=update.labels,
                    telemetry=sorted(update.telemetry),
                    first_seen=stamp,
                    last_seen=stamp,
                )
                # Another worker may have inserted it since the select: then just move last_seen.
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=["kind", "name"], set_={"last_seen": statement.excluded.last_seen}
                    )
                )
        if len(self._known) > MAX_REMEMBERED:
            self._known.clear()
        self._known.update(due)
        return len(due)


class InventoryStage:
    """One topic's share of the inventory."""

    group = GROUP

    def __init__(
        self,
        recorder: InventoryRecorder,
        topic: str,
        extract: Callable[[bytes], set[Sighting]],
        batch_size: int = 50,
    ) -> None:
        self.recorder = recorder
        self.topic = topic
        self.extract = extract
        self.batch_size = batch_size
        self.name = f"inventory-{topic.rsplit('.', 1)[-1]}"

    async def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        sightings: set[Sighting] = set()
        for message in messages:
            try:
                sightings |= self.extract(message.payload)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                log.debug("inventory skips unreadable message %s: %s", message.id, exc)
        await self.recorder.observe(sightings)
        return BatchOutcome()


def inventory_stages(db: Database) -> list[InventoryStage]:
    recorder = InventoryRecorder(db)
    return [
        InventoryStage(recorder, topology.METRICS, metric_sightings),
        InventoryStage(recorder, topology.LOGS, log_sightings),
        InventoryStage(recorder, topology.ERRORS, error_sightings),
    ]
