"""The errors ingest stage: application error events grouped by fingerprint and stored.

For each batch, in one transaction: events already stored (a redelivery) are skipped; each
event's fingerprint (``vigil.ingest.grouping``) picks its group, created on first sight; groups
get their count, first/last seen, releases, environments and latest host updated; the events
are stored with their stack traces and only the newest ``events_per_group`` are kept.

A group that is new, or that receives an event after it was resolved (a regression), raises
an AlertSignal (origin ``error``) on the external-alerts topic. The signal is published inside
the transaction, before it commits: if publishing fails nothing is committed and the batch is
retried, so no new group goes unannounced (a crash between publish and commit can announce one
twice, which alert de-duplication absorbs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.bus.base import Bus, Message
from vigil.domain import codec
from vigil.domain.alerts import AlertSignal
from vigil.domain.errors import ErrorEvent
from vigil.ingest import grouping
from vigil.ingest.sentry import severity_of
from vigil.pipeline import topology
from vigil.pipeline.runner import BatchOutcome, PoisonMessage
from vigil.store.db import Database
from vigil.store.models import ErrorEventRecord, ErrorGroup, Source

log = logging.getLogger(__name__)

GROUP = "ingest"
MAX_ENVIRONMENTS = 20
SOURCE_CACHE_S = 60.0


def _at(time_ns: int) -> datetime:
    return datetime.fromtimestamp(time_ns / 1e9, tz=UTC)


@dataclass
class _Pending:
    """The events of one batch that belong to one group."""

    project: str
    fingerprint: str
    source: str | None
    events: list[ErrorEvent] = field(default_factory=list)

    @property
    def latest(self) -> ErrorEvent:
        return max(self.events, key=lambda e: e.time_ns)

    @property
    def earliest(self) -> ErrorEvent:
        return min(self.events, key=lambda e: e.time_ns)


class ErrorsIngestStage:
    name = "errors-ingest"
    topic = topology.ERRORS
    group = GROUP

    def __init__(self, db: Database, bus: Bus, events_per_group: int = 50, batch_size: int = 100) -> None:
        self.db = db
        self.bus = bus
        self.events_per_group = events_per_group
        self.batch_size = batch_size
        self._source_ids: dict[str, tuple[float, int | None]] = {}

    async def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        outcome = BatchOutcome()
        events: list[tuple[ErrorEvent, str | None]] = []
        for message in messages:
            try:
                data = codec.decode(message.payload)
                source = data.get("source")
                events.extend((ErrorEvent.from_dict(item), source) for item in data["items"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                outcome.failed[message.id] = PoisonMessage(f"not an error batch: {type(exc).__name__}: {exc}")
        if events:
            await self.store(events)
        return outcome

    async def store(self, events: list[tuple[ErrorEvent, str | None]]) -> list[AlertSignal]:
        """Group and store events; returns the alert signals it published."""
        async with self.db.session() as session:
            fresh = await self._unseen(session, events)
            if not fresh:
                return []
            pending: dict[tuple[str, str], _Pending] = {}
            for event, source in fresh:
                key = (event.project, grouping.fingerprint(event))
                entry = pending.get(key)
                if entry is None:
                    entry = pending[key] = _Pending(key[0], key[1], source)
                entry.events.append(event)
            created = await self._create_groups(session, pending)
            rows = (
                await session.execute(
                    select(ErrorGroup)
                    .where(tuple_(ErrorGroup.project, ErrorGroup.fingerprint).in_(list(pending)))
                    .order_by(ErrorGroup.id)  # one lock order for every worker: no deadlocks
                    .with_for_update()
                )
            ).scalars()
            signals: list[AlertSignal] = []
            touched: list[int] = []
            for row in rows:
                entry = pending[(row.project, row.fingerprint)]
                regressed = self._update_group(row, entry, created=row.id in created)
                touched.append(row.id)
                if row.id in created or regressed:
                    signals.append(_signal(row, entry, regressed))
                session.add_all(_records(row.id, entry.events))
            await session.flush()
            for group_id in touched:
                await self._trim(session, group_id)
            if signals:
                await self.bus.publish(
                    topology.EXTERNAL_ALERTS, codec.encode_dicts("alerts", [s.to_dict() for s in signals])
                )
        return signals

    async def _unseen(
        self, session: AsyncSession, events: list[tuple[ErrorEvent, str | None]]
    ) -> list[tuple[ErrorEvent, str | None]]:
        """Events not stored yet (redeliveries and in-batch duplicates dropped)."""
        keys = list({(event.project, event.event_id) for event, _ in events})
        stored: set[tuple[str, str]] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            result = await session.execute(
                select(ErrorEventRecord.project, ErrorEventRecord.event_id).where(
                    tuple_(ErrorEventRecord.project, ErrorEventRecord.event_id).in_(chunk)
                )
            )
            stored.update((project, event_id) for project, event_id in result.all())
        fresh = []
        for event, source in events:
            key = (event.project, event.event_id)
            if key not in stored:
                stored.add(key)
                fresh.append((event, source))
        return fresh

    async def _source_id(self, session: AsyncSession, name: str | None) -> int | None:
        if not name:
            return None
        cached = self._source_ids.get(name)
        now = time.monotonic()
        if cached and now - cached[0] < SOURCE_CACHE_S:
            return cached[1]
        source_id = (await session.execute(select(Source.id).where(Source.name == name))).scalar()
        self._source_ids[name] = (now, source_id)
        return source_id

    async def _create_groups(
        self, session: AsyncSession, pending: dict[tuple[str, str], _Pending]
    ) -> set[int]:
        """Insert the groups that do not exist yet; the ids of those this call created."""
        insert = sqlite_insert if self.db.is_sqlite else pg_insert
        created: set[int] = set()
        for _, entry in sorted(pending.items()):
            first, latest = entry.earliest, entry.latest
            values: dict[str, Any] = {
                "project": entry.project,
                "fingerprint": entry.fingerprint,
                "source_id": await self._source_id(session, entry.source),
                "source": entry.source,
                "title": grouping.title(first),
                "culprit": grouping.culprit(first),
                "exception_type": first.exception_type,
                "level": latest.level,
                "platform": first.platform,
                "status": "unresolved",
                "count": 0,
                "first_seen": _at(first.time_ns),
                "last_seen": _at(first.time_ns),
                "first_release": first.release,
                "last_release": None,
                "environments": [],
                "times_regressed": 0,
                "created_at": datetime.now(UTC),
                "updated_at": datetime.now(UTC),
            }
            statement = (
                insert(ErrorGroup)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["project", "fingerprint"])
                .returning(ErrorGroup.id)
            )
            new_id = (await session.execute(statement)).scalar()
            if new_id is not None:
                created.add(new_id)
        return created

    @staticmethod
    def _update_group(row: ErrorGroup, entry: _Pending, *, created: bool) -> bool:
        """Fold the batch's events into the group; True when this is a regression."""
        latest = entry.latest
        first = entry.earliest
        regressed = False
        if not created and row.status == "resolved":
            row.status = "unresolved"
            row.resolved_at = None
            row.regressed_at = datetime.now(UTC)
            row.times_regressed = (row.times_regressed or 0) + 1
            regressed = True
        row.count = (row.count or 0) + len(entry.events)
        if _at(first.time_ns) < row.first_seen:
            row.first_seen = _at(first.time_ns)
        if _at(latest.time_ns) >= row.last_seen:
            row.last_seen = _at(latest.time_ns)
            row.level = latest.level
            row.last_release = latest.release or row.last_release
            row.last_host = latest.host or row.last_host
            row.last_service = latest.service or row.last_service
        if row.first_release is None and first.release:
            row.first_release = first.release
        environments = list(row.environments or [])
        for event in entry.events:
            if (
                event.environment
                and event.environment not in environments
                and len(environments) < MAX_ENVIRONMENTS
            ):
                environments.append(event.environment)
        if environments != list(row.environments or []):
            row.environments = environments
        return regressed

    async def _trim(self, session: AsyncSession, group_id: int) -> None:
        """Keep the newest ``events_per_group`` events of a group."""
        cutoff = (
            select(ErrorEventRecord.id)
            .where(ErrorEventRecord.group_id == group_id)
            .order_by(ErrorEventRecord.id.desc())
            .offset(self.events_per_group - 1)
            .limit(1)
            .scalar_subquery()
        )
        await session.execute(
            delete(ErrorEventRecord).where(
                ErrorEventRecord.group_id == group_id, ErrorEventRecord.id < cutoff
            )
        )


def _records(group_id: int, events: list[ErrorEvent]) -> list[ErrorEventRecord]:
    return [
        ErrorEventRecord(
            group_id=group_id,
            project=event.project,
            event_id=event.event_id,
            time=_at(event.time_ns),
            received_at=datetime.now(UTC),
            level=event.level,
            exception_type=event.exception_type,
            exception_value=event.exception_value,
            message=event.message,
            release=event.release,
            environment=event.environment,
            host=event.host,
            service=event.service,
            transaction=event.transaction,
            frames=[frame.to_dict() for frame in event.frames],
            tags=event.tags,
            raw=event.raw,
        )
        for event in sorted(events, key=lambda e: e.time_ns)
    ]


def _signal(row: ErrorGroup, entry: _Pending, regressed: bool) -> AlertSignal:
    latest = entry.latest
    kind = "Regression" if regressed else "New error"
    labels = {"project": row.project, "level": latest.level}
    if latest.environment:
        labels["environment"] = latest.environment
    if latest.release:
        labels["release"] = latest.release
    return AlertSignal(
        origin="error",
        title=f"{kind}: {row.title}"[:512],
        severity=severity_of(latest.level),
        time_ns=latest.time_ns,
        host=latest.host,
        service=latest.service,
        description=row.culprit,
        labels=labels,
        annotations={"error_group_id": row.id, "count": row.count, "regressed": regressed},
        fingerprint=f"error-group:{row.id}",
        source=entry.source,
        evidence=[{"kind": "error_group", "id": row.id, "title": row.title}],
    )
