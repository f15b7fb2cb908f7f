"""Findings: what the detectors concluded (metric anomalies, predictions, log signals), with
their evidence. Newest first (by when they opened); pass ``next_cursor`` back as ``cursor``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import and_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from vigil.api.auth import Reader, backends_of
from vigil.api.pagination import decode_cursor, encode_cursor
from vigil.api.problems import Problem
from vigil.store.models import FindingRecord

router = APIRouter(prefix="/api/v1/findings", tags=["findings"])

Kind = Literal["anomaly", "prediction", "log_burst", "new_error_template", "error_spike"]
State = Literal["open", "resolved"]
Severity = Literal["critical", "high", "medium", "low"]


class FindingOut(BaseModel):
    id: int
    kind: str
    key: str
    state: str
    host: str | None
    service: str | None
    title: str
    score: float
    severity: str
    method: str | None = Field(None, description="The detector's method (e.g. zscore, forecast)")
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


class FindingDetail(FindingOut):
    evidence: dict[str, Any]


class FindingPage(BaseModel):
    items: list[FindingOut]
    next_cursor: str | None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _out(row: FindingRecord) -> dict[str, Any]:
    evidence = row.evidence or {}
    method = evidence.get("method")
    return {
        "id": row.id,
        "kind": row.kind,
        "key": row.key,
        "state": row.state,
        "host": row.host,
        "service": row.service,
        "title": row.title,
        "score": row.score,
        "severity": row.severity,
        "method": method if isinstance(method, str) else None,
        "opened_at": row.opened_at,
        "updated_at": row.updated_at,
        "resolved_at": row.resolved_at,
    }


def _after(cursor: list[Any]) -> ColumnElement[bool]:
    try:
        opened, last_id = cursor
        opened_at = datetime.fromisoformat(str(opened))
        last = int(last_id)
    except (TypeError, ValueError):
        raise Problem(400, "cursor: not a cursor returned by this API") from None
    return or_(
        FindingRecord.opened_at < opened_at,
        and_(FindingRecord.opened_at == opened_at, FindingRecord.id < last),
    )


@router.get("", response_model=FindingPage, summary="List findings, newest first")
async def list_findings(
    request: Request,
    _: Reader,
    kind: list[Kind] | None = Query(None, description="Any of these kinds (repeat the parameter)"),
    state: State | None = Query(None),
    severity: list[Severity] | None = Query(None),
    host: list[str] | None = Query(None, max_length=255),
    service: list[str] | None = Query(None, max_length=255),
    key: str | None = Query(None, max_length=1024, description="Exactly this series / subject key"),
    q: str | None = Query(None, max_length=200, description="Text in the title"),
    start: datetime | None = Query(None, description="Active at or after this time (ISO 8601)"),
    end: datetime | None = Query(None, description="Opened before this time (ISO 8601)"),
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
) -> FindingPage:
    query = select(FindingRecord).order_by(FindingRecord.opened_at.desc(), FindingRecord.id.desc())
    if start is not None and end is not None and _utc(end) <= _utc(start):
        raise Problem(422, "end: must be after start")
    if kind:
        query = query.where(FindingRecord.kind.in_(kind))
    if state:
        query = query.where(FindingRecord.state == state)
    if severity:
        query = query.where(FindingRecord.severity.in_(severity))
    if host:
        query = query.where(FindingRecord.host.in_(host))
    if service:
        query = query.where(FindingRecord.service.in_(service))
    if key:
        query = query.where(FindingRecord.key == key)
    if q:
        query = query.where(FindingRecord.title.icontains(q, autoescape=True))
    if start is not None:
        query = query.where(
            or_(FindingRecord.resolved_at.is_(None), FindingRecord.resolved_at >= _utc(start))
        )
    if end is not None:
        query = query.where(FindingRecord.opened_at < _utc(end))
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(_after(after))
    async with backends_of(request).db.session() as session:
        rows = list((await session.execute(query.limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor([rows[-1].opened_at.isoformat(), rows[-1].id]) if more and rows else None
    return FindingPage(items=[FindingOut(**_out(r)) for r in rows], next_cursor=next_cursor)


@router.get("/{finding_id}", response_model=FindingDetail, summary="A finding with its evidence")
async def get_finding(finding_id: int, request: Request, _: Reader) -> FindingDetail:
    async with backends_of(request).db.session() as session:
        row = await session.get(FindingRecord, finding_id)
    if row is None:
        raise Problem(404, f"finding {finding_id} does not exist")
    return FindingDetail(**_out(row), evidence=row.evidence or {})
