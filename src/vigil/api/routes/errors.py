"""Error groups (application errors grouped by fingerprint) and their recent events."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import String, and_, cast, or_, select
from sqlalchemy.sql.elements import ColumnElement

from vigil.api.audit import record, snapshot
from vigil.api.auth import Reader, Writer, backends_of
from vigil.api.pagination import decode_cursor, encode_cursor
from vigil.api.problems import Problem
from vigil.bus.base import BusError
from vigil.domain import codec
from vigil.domain.alerts import AlertSignal
from vigil.pipeline import topology
from vigil.store.models import ErrorEventRecord, ErrorGroup

router = APIRouter(prefix="/api/v1/errors", tags=["errors"])

Status = Literal["unresolved", "resolved", "ignored"]
Sort = Literal["last_seen", "first_seen", "count"]


class ErrorGroupOut(BaseModel):
    id: int
    project: str
    fingerprint: str
    source: str | None
    title: str
    culprit: str | None
    exception_type: str | None
    level: str
    platform: str | None
    status: str
    count: int
    first_seen: datetime
    last_seen: datetime
    first_release: str | None
    last_release: str | None
    environments: list[str]
    last_host: str | None
    last_service: str | None
    resolved_at: datetime | None
    regressed_at: datetime | None
    times_regressed: int

    model_config = {"from_attributes": True}


class StackFrameOut(BaseModel):
    filename: str | None = None
    function: str | None = None
    module: str | None = None
    lineno: int | None = None
    in_app: bool | None = None
    context_line: str | None = None


class ErrorEventOut(BaseModel):
    id: int
    event_id: str
    time: datetime
    received_at: datetime
    level: str
    exception_type: str | None
    exception_value: str | None
    message: str | None
    release: str | None
    environment: str | None
    host: str | None
    service: str | None
    transaction: str | None
    frames: list[StackFrameOut] = Field(description="Stack trace, innermost frame last")
    tags: dict[str, str]

    model_config = {"from_attributes": True}


class ErrorEventDetail(ErrorEventOut):
    raw: dict[str, Any] | None = Field(None, description="The event as the SDK sent it")


class ErrorGroupPage(BaseModel):
    items: list[ErrorGroupOut]
    next_cursor: str | None


class ErrorEventPage(BaseModel):
    items: list[ErrorEventOut]
    next_cursor: str | None


class ErrorGroupDetail(ErrorGroupOut):
    events: list[ErrorEventOut] = Field(description="The most recent events, newest first")


class ErrorGroupUpdate(BaseModel):
    status: Status


def _sort_column(sort: Sort) -> Any:
    return {
        "last_seen": ErrorGroup.last_seen,
        "first_seen": ErrorGroup.first_seen,
        "count": ErrorGroup.count,
    }[sort]


def _after(sort: Sort, cursor: list[Any]) -> ColumnElement[bool]:
    if len(cursor) != 2:
        raise Problem(400, "cursor: not a cursor returned by this API")
    value, last_id = cursor
    column = _sort_column(sort)
    try:
        key = int(value) if sort == "count" else datetime.fromisoformat(str(value))
        last = int(last_id)
    except (TypeError, ValueError):
        raise Problem(400, "cursor: not a cursor returned by this API") from None
    return or_(column < key, and_(column == key, ErrorGroup.id < last))


@router.get("", response_model=ErrorGroupPage, summary="List and search error groups")
async def list_groups(
    request: Request,
    principal: Reader,
    q: str | None = Query(None, max_length=200, description="Text in the title, culprit or exception type"),
    status: list[Status] | None = Query(None, description="Any of these statuses (repeat the parameter)"),
    project: str | None = Query(None, max_length=64),
    source: str | None = Query(None, max_length=128),
    level: str | None = Query(None, max_length=16),
    environment: str | None = Query(None, max_length=64),
    sort: Sort = Query("last_seen", description="Newest/largest first"),
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
) -> ErrorGroupPage:
    column = _sort_column(sort)
    query = select(ErrorGroup).order_by(column.desc(), ErrorGroup.id.desc()).limit(limit + 1)
    if q:
        query = query.where(
            or_(
                ErrorGroup.title.icontains(q, autoescape=True),
                ErrorGroup.culprit.icontains(q, autoescape=True),
                ErrorGroup.exception_type.icontains(q, autoescape=True),
            )
        )
    if status:
        query = query.where(ErrorGroup.status.in_(status))
    if project:
        query = query.where(ErrorGroup.project == project)
    if source:
        query = query.where(ErrorGroup.source == source)
    if level:
        query = query.where(ErrorGroup.level == level.lower())
    if environment:
        # The JSON list as text holds the quoted name; exact on both databases.
        query = query.where(
            cast(ErrorGroup.environments, String).contains(f'"{environment}"', autoescape=True)
        )
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(_after(sort, after))
    async with backends_of(request).db.session() as session:
        rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        value = last.count if sort == "count" else getattr(last, sort).isoformat()
        next_cursor = encode_cursor([value, last.id])
    return ErrorGroupPage(items=[ErrorGroupOut.model_validate(r) for r in rows], next_cursor=next_cursor)


async def _group(request: Request, group_id: int) -> ErrorGroup:
    async with backends_of(request).db.session() as session:
        row = await session.get(ErrorGroup, group_id)
    if row is None:
        raise Problem(404, f"error group {group_id} does not exist")
    return row


@router.get("/{group_id}", response_model=ErrorGroupDetail, summary="An error group with its recent events")
async def get_group(
    group_id: int,
    request: Request,
    principal: Reader,
    events: int = Query(10, ge=0, le=100, description="How many recent events to include"),
) -> ErrorGroupDetail:
    row = await _group(request, group_id)
    async with backends_of(request).db.session() as session:
        recent = list(
            (
                await session.execute(
                    select(ErrorEventRecord)
                    .where(ErrorEventRecord.group_id == group_id)
                    .order_by(ErrorEventRecord.id.desc())
                    .limit(events)
                )
            ).scalars()
        )
    return ErrorGroupDetail(
        **ErrorGroupOut.model_validate(row).model_dump(),
        events=[ErrorEventOut.model_validate(e) for e in recent],
    )


@router.get("/{group_id}/events", response_model=ErrorEventPage, summary="A group's stored events")
async def list_events(
    group_id: int,
    request: Request,
    principal: Reader,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
) -> ErrorEventPage:
    await _group(request, group_id)
    query = (
        select(ErrorEventRecord)
        .where(ErrorEventRecord.group_id == group_id)
        .order_by(ErrorEventRecord.id.desc())
        .limit(limit + 1)
    )
    after = decode_cursor(cursor)
    if after is not None:
        if len(after) != 1 or not isinstance(after[0], int):
            raise Problem(400, "cursor: not a cursor returned by this API")
        query = query.where(ErrorEventRecord.id < after[0])
    async with backends_of(request).db.session() as session:
        rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return ErrorEventPage(
        items=[ErrorEventOut.model_validate(r) for r in rows],
        next_cursor=encode_cursor([rows[-1].id]) if more and rows else None,
    )


@router.get("/{group_id}/events/{event_id}", response_model=ErrorEventDetail, summary="One event, as sent")
async def get_event(group_id: int, event_id: str, request: Request, principal: Reader) -> ErrorEventDetail:
    async with backends_of(request).db.session() as session:
        row = (
            await session.execute(
                select(ErrorEventRecord).where(
                    ErrorEventRecord.group_id == group_id, ErrorEventRecord.event_id == event_id
                )
            )
        ).scalar()
    if row is None:
        raise Problem(404, f"event {event_id} of error group {group_id} is not stored (only recent ones are)")
    return ErrorEventDetail.model_validate(row)


@router.patch("/{group_id}", response_model=ErrorGroupOut, summary="Resolve, ignore or reopen a group")
async def update_group(
    group_id: int, body: ErrorGroupUpdate, request: Request, principal: Writer
) -> ErrorGroupOut:
    """Resolving also resolves the group's alert; a later event then reopens the group as a
    regression and raises a new alert."""
    backends = backends_of(request)
    async with backends.db.session() as session:
        row = await session.get(ErrorGroup, group_id, with_for_update=True)
        if row is None:
            raise Problem(404, f"error group {group_id} does not exist")
        before = snapshot(row)
        if row.status != body.status:
            row.status = body.status
            row.resolved_at = datetime.now(UTC) if body.status == "resolved" else None
            await record(
                session, principal, "error_group.update", "error_group", row.id,
                before=before, after=snapshot(row), request=request,
            )  # fmt: skip
            if body.status in ("resolved", "ignored"):
                signal = AlertSignal(
                    origin="error",
                    title=f"Resolved: {row.title}"[:512],
                    severity="low",
                    time_ns=time.time_ns(),
                    host=row.last_host,
                    service=row.last_service,
                    labels={"project": row.project},
                    fingerprint=f"error-group:{row.id}",
                    resolved=True,
                    source=row.source,
                    evidence=[{"kind": "error_group", "id": row.id, "title": row.title}],
                )
                try:
                    await backends.bus.publish(
                        topology.EXTERNAL_ALERTS, codec.encode_dicts("alerts", [signal.to_dict()])
                    )
                except BusError as exc:
                    raise Problem(
                        503, f"cannot resolve the group's alert right now ({exc}); retry",
                        headers={"Retry-After": "5"},
                    ) from None  # fmt: skip
    return ErrorGroupOut.model_validate(row)
