"""Incidents: related alerts grouped by correlation, with a summary kept current, a timeline,
and actions that apply to their alerts. Grouping rules force alerts together by labels.

Root-cause analysis results are not stored here: the enrichment layer keeps them in its own
table and serves them under ``/api/v1/incidents/{id}/rca``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import bindparam, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.alerting.ops import AlertingError
from vigil.analytics.correlation import parse_matchers
from vigil.api.audit import record, snapshot
from vigil.api.auth import Admin, Principal, Reader, Writer, backends_of
from vigil.api.pagination import decode_cursor, encode_cursor
from vigil.api.problems import Problem
from vigil.api.routes.alerts import (
    AlertOut,
    TimelineOut,
    TimelinePage,
    alert_service,
    like_pattern,
    timeline_of,
)
from vigil.store.models import Alert, GroupingRule, Incident
from vigil.store.types import UTCDateTime, utcnow

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])

Severity = Literal["critical", "high", "medium", "low"]
IncidentStatus = Literal["new", "acknowledged", "in_progress", "resolved", "open"]


class IncidentOut(BaseModel):
    id: int
    title: str
    summary: str | None
    summary_generated_by: str
    severity: str
    status: str
    assignee: str | None
    started_at: datetime
    detected_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    last_activity_at: datetime
    alert_count: int
    open_alert_count: int
    hosts: list[str]
    services: list[str]
    origins: list[str]
    categories: list[str]
    rule_key: str | None

    model_config = {"from_attributes": True}


class IncidentDetail(IncidentOut):
    summary_rules: str | None
    alerts: list[AlertOut]
    timeline: list[TimelineOut]


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    next_cursor: str | None


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


class Note(BaseModel):
    note: str | None = Field(None, max_length=10_000)


class NoteText(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


class Assign(BaseModel):
    assignee: str | None = Field(max_length=64)


class IncidentPatch(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=512)
    severity: Severity | None = None
    status: Literal["new", "acknowledged", "in_progress", "resolved"] | None = None
    assignee: str | None = Field(None, max_length=64)
    note: str | None = Field(None, max_length=10_000)


class MoveAlert(BaseModel):
    alert_id: int


class GroupingRuleIn(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    matchers: list[dict[str, str]] = Field(default_factory=list)
    group_by: list[str] = Field(min_length=1, max_length=10, description="Label names (or host, service...)")
    window_minutes: int = Field(60, ge=1, le=7 * 24 * 60)
    enabled: bool = True
    position: int = 0

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        return [m.to_dict() for m in parse_matchers(value)]


class GroupingRulePatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=128)
    matchers: list[dict[str, str]] | None = None
    group_by: list[str] | None = Field(None, min_length=1, max_length=10)
    window_minutes: int | None = Field(None, ge=1, le=7 * 24 * 60)
    enabled: bool | None = None
    position: int | None = None

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
        return None if value is None else [m.to_dict() for m in parse_matchers(value)]


class GroupingRuleOut(BaseModel):
    id: int
    name: str
    matchers: list[dict[str, str]]
    group_by: list[str]
    window_minutes: int
    enabled: bool
    position: int
    created_at: datetime
    updated_at: datetime

    model_config = {"from_attributes": True}


async def get_incident(session: AsyncSession, incident_id: int) -> Incident:
    incident = await session.get(Incident, incident_id)
    if incident is None:
        raise Problem(404, f"incident {incident_id} does not exist")
    return incident


# --- list, detail ---------------------------------------------------------------------------------


@router.get("", response_model=IncidentPage, summary="Incidents, most recently started first")
async def list_incidents(
    request: Request,
    _: Reader,
    status: list[IncidentStatus] | None = Query(None, description="Any of these; 'open' = not resolved"),
    severity: list[Severity] | None = Query(None),
    host: str | None = Query(None, description="Has an alert on this host"),
    service: str | None = Query(None, description="Has an alert of this service"),
    assignee: str | None = None,
    since: datetime | None = Query(None, description="Started at or after"),
    until: datetime | None = Query(None, description="Started at or before"),
    q: str | None = Query(None, max_length=200, description="Text in the title"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
) -> IncidentPage:
    query = select(Incident)
    if status:
        wanted = set(status)
        if "open" in wanted:
            wanted.discard("open")
            wanted |= {"new", "acknowledged", "in_progress"}
        query = query.where(Incident.status.in_(wanted))
    if severity:
        query = query.where(Incident.severity.in_(severity))
    if host is not None:
        query = query.where(Incident.id.in_(select(Alert.incident_id).where(Alert.host == host)))
    if service is not None:
        query = query.where(Incident.id.in_(select(Alert.incident_id).where(Alert.service == service)))
    if assignee is not None:
        query = query.where(Incident.assignee == assignee)
    for value, name in ((since, "since"), (until, "until")):
        if value is not None and value.tzinfo is None:
            raise Problem(422, f"{name}: must include a timezone, e.g. 2026-12-01T00:00:00Z")
    if since is not None:
        query = query.where(Incident.started_at >= since)
    if until is not None:
        query = query.where(Incident.started_at <= until)
    if q:
        query = query.where(Incident.title.ilike(like_pattern(q), escape="\\"))
    after = decode_cursor(cursor)
    if after:
        try:
            started, last_id = datetime.fromisoformat(after[0]), int(after[1])
        except (ValueError, TypeError, IndexError) as exc:
            raise Problem(400, "cursor: not a cursor returned by this API") from exc
        query = query.where(
            tuple_(Incident.started_at, Incident.id)
            < tuple_(
                bindparam("cursor_started", started, type_=UTCDateTime()), bindparam("cursor_id", last_id)
            )
        )
    query = query.order_by(Incident.started_at.desc(), Incident.id.desc()).limit(limit + 1)
    async with backends_of(request).db.session() as session:
        rows = list((await session.execute(query)).scalars())
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor([rows[limit - 1].started_at.isoformat(), rows[limit - 1].id])
    return IncidentPage(items=[IncidentOut.model_validate(r) for r in rows[:limit]], next_cursor=next_cursor)


# --- grouping rules -----------------------------------------------------------------------------


@router.get(
    "/grouping-rules", response_model=list[GroupingRuleOut], summary="Rules that force grouping by labels"
)
async def list_grouping_rules(request: Request, _: Reader) -> list[GroupingRule]:
    async with backends_of(request).db.session() as session:
        rows = await session.execute(select(GroupingRule).order_by(GroupingRule.position, GroupingRule.id))
        return list(rows.scalars())


@router.post(
    "/grouping-rules", response_model=GroupingRuleOut, status_code=201, summary="Add a grouping rule"
)
async def create_grouping_rule(body: GroupingRuleIn, request: Request, principal: Admin) -> GroupingRule:
    try:
        async with backends_of(request).db.session() as session:
            row = GroupingRule(**body.model_dump())
            session.add(row)
            await session.flush()
            await record(
                session,
                principal,
                "grouping_rule.create",
                "grouping_rule",
                row.id,
                after=snapshot(row),
                request=request,
            )
    except IntegrityError:
        raise Problem(409, f"name: a grouping rule named {body.name!r} exists") from None
    alert_service(request).rules.invalidate()
    return row


@router.patch("/grouping-rules/{rule_id}", response_model=GroupingRuleOut, summary="Change a grouping rule")
async def update_grouping_rule(
    rule_id: int, body: GroupingRulePatch, request: Request, principal: Admin
) -> GroupingRule:
    try:
        async with backends_of(request).db.session() as session:
            row = await session.get(GroupingRule, rule_id)
            if row is None:
                raise Problem(404, f"grouping rule {rule_id} does not exist")
            before = snapshot(row)
            for name, value in body.model_dump(exclude_unset=True).items():
                if value is None:
                    raise Problem(422, f"{name}: cannot be null")
                setattr(row, name, value)
            row.updated_at = utcnow()
            await session.flush()
            await record(
                session,
                principal,
                "grouping_rule.update",
                "grouping_rule",
                row.id,
                before=before,
                after=snapshot(row),
                request=request,
            )
    except IntegrityError:
        raise Problem(409, "name: another grouping rule has this name") from None
    alert_service(request).rules.invalidate()
    return row


@router.delete("/grouping-rules/{rule_id}", status_code=204, summary="Delete a grouping rule")
async def delete_grouping_rule(rule_id: int, request: Request, principal: Admin) -> None:
    async with backends_of(request).db.session() as session:
        row = await session.get(GroupingRule, rule_id)
        if row is None:
            raise Problem(404, f"grouping rule {rule_id} does not exist")
        await record(
            session,
            principal,
            "grouping_rule.delete",
            "grouping_rule",
            row.id,
            before=snapshot(row),
            request=request,
        )
        await session.delete(row)
    alert_service(request).rules.invalidate()


# --- one incident ---------------------------------------------------------------------------------


@router.get(
    "/{incident_id}", response_model=IncidentDetail, summary="An incident with its alerts and timeline"
)
async def get_incident_detail(incident_id: int, request: Request, _: Reader) -> IncidentDetail:
    async with backends_of(request).db.session() as session:
        incident = await get_incident(session, incident_id)
        alerts = (
            await session.execute(
                select(Alert)
                .where(Alert.incident_id == incident_id)
                .order_by(Alert.first_seen, Alert.id)
                .limit(200)
            )
        ).scalars()
        timeline = await timeline_of(session, incident_id=incident_id, limit=500)
        return IncidentDetail.model_validate(
            {
                **IncidentOut.model_validate(incident).model_dump(),
                "summary_rules": incident.summary_rules,
                "alerts": [AlertOut.model_validate(a) for a in alerts],
                "timeline": [TimelineOut.model_validate(t) for t in timeline],
            }
        )


@router.get("/{incident_id}/alerts", response_model=AlertPage, summary="The incident's alerts, oldest first")
async def incident_alerts(
    incident_id: int,
    request: Request,
    _: Reader,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
) -> AlertPage:
    after = decode_cursor(cursor)
    query = select(Alert).where(Alert.incident_id == incident_id)
    if after:
        query = query.where(Alert.id > int(after[0]))
    async with backends_of(request).db.session() as session:
        await get_incident(session, incident_id)
        rows = list((await session.execute(query.order_by(Alert.id).limit(limit + 1))).scalars())
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return AlertPage(items=[AlertOut.model_validate(r) for r in rows[:limit]], next_cursor=next_cursor)


@router.get("/{incident_id}/timeline", response_model=TimelinePage, summary="The incident's timeline")
async def incident_timeline(
    incident_id: int,
    request: Request,
    _: Reader,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
) -> TimelinePage:
    after = decode_cursor(cursor)
    async with backends_of(request).db.session() as session:
        await get_incident(session, incident_id)
        rows = await timeline_of(
            session, incident_id=incident_id, limit=limit + 1, after=int(after[0]) if after else None
        )
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return TimelinePage(items=[TimelineOut.model_validate(r) for r in rows[:limit]], next_cursor=next_cursor)


async def _act(
    request: Request, principal: Principal, incident_id: int, action: str, change: Any
) -> Incident:
    async with alert_service(request).transaction() as ops:
        incident = await get_incident(ops.session, incident_id)
        before = snapshot(incident)
        try:
            await change(ops, incident)
        except AlertingError as exc:
            raise Problem(409, str(exc)) from None
        await record(
            ops.session,
            principal,
            f"incident.{action}",
            "incident",
            incident.id,
            before=before,
            after=snapshot(incident),
            request=request,
        )
    return incident


@router.post(
    "/{incident_id}/acknowledge", response_model=IncidentOut, summary="Acknowledge (and its new alerts)"
)
async def acknowledge(
    incident_id: int, request: Request, principal: Writer, body: Note | None = None
) -> Incident:
    async def change(ops: Any, incident: Incident) -> None:
        await ops.set_incident_status(incident, "acknowledged", principal.actor, body.note if body else None)

    return await _act(request, principal, incident_id, "acknowledge", change)


@router.post(
    "/{incident_id}/resolve", response_model=IncidentOut, summary="Resolve (and every open alert in it)"
)
async def resolve(
    incident_id: int, request: Request, principal: Writer, body: Note | None = None
) -> Incident:
    async def change(ops: Any, incident: Incident) -> None:
        await ops.set_incident_status(incident, "resolved", principal.actor, body.note if body else None)

    return await _act(request, principal, incident_id, "resolve", change)


@router.post("/{incident_id}/assign", response_model=IncidentOut, summary="Assign (null: unassign)")
async def assign(incident_id: int, body: Assign, request: Request, principal: Writer) -> Incident:
    async def change(ops: Any, incident: Incident) -> None:
        ops.assign_incident(incident, body.assignee, principal.actor)

    return await _act(request, principal, incident_id, "assign", change)


@router.post("/{incident_id}/notes", response_model=IncidentOut, summary="Add a note to the timeline")
async def add_note(incident_id: int, body: NoteText, request: Request, principal: Writer) -> Incident:
    async def change(ops: Any, incident: Incident) -> None:
        ops.add_note(body.text, principal.actor, incident=incident)

    return await _act(request, principal, incident_id, "note", change)


@router.patch(
    "/{incident_id}", response_model=IncidentOut, summary="Change title, severity, status, assignee"
)
async def patch_incident(
    incident_id: int, body: IncidentPatch, request: Request, principal: Writer
) -> Incident:
    fields = body.model_fields_set

    async def change(ops: Any, incident: Incident) -> None:
        if body.title is not None and body.title != incident.title:
            ops.note(
                "title",
                f"title changed to {body.title!r}",
                incident=incident,
                actor=principal.actor,
                data={"from": incident.title, "to": body.title},
            )
            incident.title = body.title
            ops.changes.incident("incident.updated", incident)
        if body.severity is not None and body.severity != incident.severity:
            ops.note(
                "severity",
                f"severity {incident.severity} → {body.severity} (by hand)",
                incident=incident,
                actor=principal.actor,
                data={"from": incident.severity, "to": body.severity},
            )
            incident.severity = body.severity
            ops.changes.incident("incident.updated", incident)
        if "assignee" in fields:
            ops.assign_incident(incident, body.assignee, principal.actor)
        if body.status is not None:
            await ops.set_incident_status(incident, body.status, principal.actor, body.note)
        elif body.note:
            ops.add_note(body.note, principal.actor, incident=incident)

    return await _act(request, principal, incident_id, "update", change)


@router.post("/{incident_id}/alerts", response_model=IncidentOut, summary="Move an alert into this incident")
async def move_alert(incident_id: int, body: MoveAlert, request: Request, principal: Writer) -> Incident:
    async def change(ops: Any, incident: Incident) -> None:
        await ops.move_alert(body.alert_id, incident, principal.actor)

    return await _act(request, principal, incident_id, "move_alert", change)
