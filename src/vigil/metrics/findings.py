"""The findings repository: every finding event on the bus, folded into one row per occurrence.

An occurrence is identified by (kind, key, occurrence_ns). Detectors that know when their
finding opened put it in ``evidence["opened_ns"]`` (the metric detectors do); the event then
lands on its row whatever order events arrive in and however often one is replayed:

* state: ``resolved`` once any event said so, ``open`` before;
* title, severity, evidence, host, service, ``updated_at``: from the newest event (by time);
* score: the highest reported.

Events without ``opened_ns`` (log signals) attach to the newest open row of their (kind, key),
or start one. That needs the events of one key in order, which one consumer gives; with several
workers two events of the same log finding could race (rare, and the worst case is a second
row for the same burst).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.domain.findings import Finding
from vigil.store.db import Database
from vigil.store.models import FindingRecord

MAX_KEY = 1024
MAX_TITLE = 512
MAX_NAME = 255


def ns_to_datetime(time_ns: int) -> datetime:
    return datetime.fromtimestamp(time_ns / 1e9, UTC)


def _clip(value: str | None, size: int) -> str | None:
    return value[:size] if value else None


def _occurrence(finding: Finding) -> int | None:
    value = finding.evidence.get("opened_ns")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


async def store_findings(db: Database, findings: Sequence[Finding]) -> None:
    """Apply finding events in one transaction."""
    if not findings:
        return
    async with db.session() as session:
        for finding in findings:
            occurrence = _occurrence(finding)
            if occurrence is None:
                await _apply_unidentified(session, finding, db.is_sqlite)
            else:
                await _upsert(session, finding, occurrence, db.is_sqlite)


def _row_values(finding: Finding, occurrence: int) -> dict[str, Any]:
    resolved = finding.state == "resolved"
    return {
        "kind": finding.kind[:32],
        "key": finding.key[:MAX_KEY],
        "occurrence_ns": occurrence,
        "state": "resolved" if resolved else "open",
        "host": _clip(finding.host, MAX_NAME),
        "service": _clip(finding.service, MAX_NAME),
        "title": finding.title[:MAX_TITLE],
        "score": float(finding.score),
        "severity": finding.severity[:16],
        "evidence": finding.evidence,
        "opened_at": ns_to_datetime(occurrence),
        "updated_at": ns_to_datetime(finding.time_ns),
        "resolved_at": ns_to_datetime(finding.time_ns) if resolved else None,
        "last_event_ns": finding.time_ns,
        "created_at": datetime.now(UTC),
    }


async def _upsert(session: AsyncSession, finding: Finding, occurrence: int, is_sqlite: bool) -> None:
    insert = sqlite_insert if is_sqlite else pg_insert
    statement = insert(FindingRecord).values(**_row_values(finding, occurrence))
    new = statement.excluded
    old = FindingRecord.__table__.c
    newer = new.last_event_ns >= old.last_event_ns

    def latest(column: str) -> Any:
        return case((newer, getattr(new, column)), else_=getattr(old, column))

    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["kind", "key", "occurrence_ns"],
            set_={
                "state": case(
                    (or_(old.state == "resolved", new.state == "resolved"), "resolved"), else_="open"
                ),
                "resolved_at": func.coalesce(old.resolved_at, new.resolved_at),
                "title": latest("title"),
                "host": latest("host"),
                "service": latest("service"),
                "severity": latest("severity"),
                "evidence": latest("evidence"),
                "updated_at": latest("updated_at"),
                "last_event_ns": latest("last_event_ns"),
                "score": case((new.score > old.score, new.score), else_=old.score),
            },
        )
    )


async def _apply_unidentified(session: AsyncSession, finding: Finding, is_sqlite: bool) -> None:
    row = (
        await session.execute(
            select(FindingRecord)
            .where(
                FindingRecord.kind == finding.kind[:32],
                FindingRecord.key == finding.key[:MAX_KEY],
                FindingRecord.state == "open",
            )
            .order_by(FindingRecord.opened_at.desc(), FindingRecord.id.desc())
            .limit(1)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        if finding.state == "resolved":
            return  # nothing open to resolve (its open was never seen, or already resolved)
        values = _row_values(finding, finding.time_ns)
        insert = sqlite_insert if is_sqlite else pg_insert
        await session.execute(insert(FindingRecord).values(**values).on_conflict_do_nothing())
        return
    if finding.time_ns >= row.last_event_ns:
        row.title = finding.title[:MAX_TITLE]
        row.severity = finding.severity[:16]
        row.evidence = finding.evidence
        row.host = _clip(finding.host, MAX_NAME) or row.host
        row.service = _clip(finding.service, MAX_NAME) or row.service
        row.updated_at = ns_to_datetime(finding.time_ns)
        row.last_event_ns = finding.time_ns
    row.score = max(row.score, float(finding.score))
    if finding.state == "resolved":
        row.state = "resolved"
        row.resolved_at = ns_to_datetime(finding.time_ns)
