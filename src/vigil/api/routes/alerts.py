"""Alerts: list, group, inspect, act on (acknowledge, assign, resolve, escalate, notes), create
manual ones, preview what a signal would become, and configure fingerprints per origin.

Lists are newest first (``last_seen``) with keyset cursors, so any page of a million alerts
costs the same. Every action is audited and recorded on the alert's timeline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Select, bindparam, case, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.alerting.ops import AlertingError
from vigil.alerting.service import AlertService
from vigil.alerting.signals import parse_signal
from vigil.analytics.correlation import check_fingerprint_fields
from vigil.api.audit import record, snapshot
from vigil.api.auth import Admin, Principal, Reader, Writer, backends_of
from vigil.api.pagination import decode_cursor, encode_cursor
from vigil.api.problems import Problem
from vigil.domain.alerts import SEVERITIES
from vigil.store.models import Alert, FingerprintRule, Incident, NotificationDelivery, TimelineEntry
from vigil.store.types import UTCDateTime, utcnow

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

Severity = Literal["critical", "high", "medium", "low"]
StatusFilter = Literal["new", "acknowledged", "in_progress", "resolved", "suppressed", "open"]
GroupBy = Literal["host", "service", "origin", "severity", "status", "source"]


def alert_service(request: Request) -> AlertService:
    """The API process's alert service (its rule and topology caches live as long as the app)."""
    service: AlertService | None = getattr(request.app.state, "alert_service", None)
    if service is None:
        backends = backends_of(request)
        # Edits made through this API invalidate the cache at once; other replicas' edits
        # apply here within the TTL.
        service = AlertService(backends.db, backends.bus, rules_ttl_s=5.0)
        request.app.state.alert_service = service
    return service


# --- shapes -------------------------------------------------------------------------------------


class AlertOut(BaseModel):
    id: int
    fingerprint: str
    origin: str
    source: str | None
    title: str
    severity: str
    status: str
    host: str | None
    service: str | None
    count: int
    first_seen: datetime
    last_seen: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    resolve_reason: str | None
    assignee: str | None
    suppressed: bool
    flapping: bool
    incident_id: int | None

    model_config = {"from_attributes": True}


LIST_COLUMNS = [getattr(Alert, name) for name in AlertOut.model_fields]


class TimelineOut(BaseModel):
    id: int
    at: datetime
    alert_id: int | None
    incident_id: int | None
    kind: str
    actor: str
    message: str
    data: dict[str, Any]

    model_config = {"from_attributes": True}


class IncidentRef(BaseModel):
    id: int
    title: str
    severity: str
    status: str

    model_config = {"from_attributes": True}


class AlertDetail(AlertOut):
    description: str | None
    labels: dict[str, Any]
    annotations: dict[str, Any]
    evidence: list[dict[str, Any]]
    silence_ids: list[int]
    reopened: int
    escalation_policy_id: int | None
    escalation_level: int
    next_escalation_at: datetime | None
    incident: IncidentRef | None = None
    timeline: list[TimelineOut] = []


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


class TimelinePage(BaseModel):
    items: list[TimelineOut]
    next_cursor: str | None


class GroupOut(BaseModel):
    key: str | None
    count: int
    by_severity: dict[str, int]


class Groups(BaseModel):
    by: str
    groups: list[GroupOut]


class Note(BaseModel):
    note: str | None = Field(None, max_length=10_000)


class NoteText(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


class Assign(BaseModel):
    assignee: str | None = Field(description="User name, or null to unassign", max_length=64)
    note: str | None = Field(None, max_length=10_000)


class AlertPatch(BaseModel):
    status: Literal["new", "acknowledged", "in_progress", "resolved"] | None = None
    assignee: str | None = Field(None, max_length=64)
    note: str | None = Field(None, max_length=10_000)


class ManualAlert(BaseModel):
    title: str = Field(min_length=1, max_length=512)
    severity: Severity = "medium"
    host: str | None = Field(None, max_length=255)
    service: str | None = Field(None, max_length=255)
    description: str | None = Field(None, max_length=16_384)
    labels: dict[str, str] = Field(default_factory=dict)
    fingerprint: str | None = Field(None, max_length=512, description="Same fingerprint → same alert")


class SampleSignal(BaseModel):
    """An alert signal as an origin would send it."""

    origin: str = Field(min_length=1, max_length=32)
    title: str = Field(min_length=1, max_length=512)
    severity: str = "medium"
    time_ns: int | None = Field(None, gt=0, description="Default: now")
    host: str | None = None
    service: str | None = None
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    fingerprint: str | None = None
    resolved: bool = False
    source: str | None = None


class FingerprintRuleIn(BaseModel):
    fields: list[str] = Field(
        default_factory=list,
        description="Fields identifying an alert of this origin: origin, host, service, title, "
        "title_template, source, fingerprint, description, labels.<name>. Empty: the default.",
    )
    auto_resolve_minutes: int | None = Field(
        None, ge=0, le=525_600, description="Resolve after this long without a re-fire; 0 never; null default"
    )

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        if value:
            error = check_fingerprint_fields(value)
            if error:
                raise ValueError(error)
        return value


class FingerprintRuleOut(BaseModel):
    origin: str
    fields: list[str]
    auto_resolve_minutes: int | None
    updated_at: datetime

    model_config = {"from_attributes": True}


# --- queries ------------------------------------------------------------------------------------


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise Problem(422, f"{name}: must include a timezone, e.g. 2026-12-01T00:00:00Z")
    return value


def like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def filtered(
    query: Select[Any],
    *,
    severity: list[str] | None = None,
    status: list[str] | None = None,
    origin: list[str] | None = None,
    source: str | None = None,
    host: str | None = None,
    service: str | None = None,
    incident_id: int | None = None,
    assignee: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: str | None = None,
    flapping: bool | None = None,
    suppressed: bool | None = None,
) -> Select[Any]:
    if severity:
        query = query.where(Alert.severity.in_(severity))
    if status:
        wanted = set(status)
        if "open" in wanted:
            wanted.discard("open")
            opened = Alert.resolved_at.is_(None)
            query = query.where(or_(opened, Alert.status.in_(wanted)) if wanted else opened)
        else:
            query = query.where(Alert.status.in_(wanted))
    if origin:
        query = query.where(Alert.origin.in_(origin))
    for column, value in (
        (Alert.source, source),
        (Alert.host, host),
        (Alert.service, service),
        (Alert.assignee, assignee),
    ):
        if value is not None:
            query = query.where(column == value)
    if incident_id is not None:
        query = query.where(Alert.incident_id == incident_id)
    if since is not None:  # alerts active during [since, until]
        query = query.where(Alert.last_seen >= since)
    if until is not None:
        query = query.where(Alert.first_seen <= until)
    if q:
        query = query.where(Alert.title.ilike(like_pattern(q), escape="\\"))
    if flapping is not None:
        query = query.where(Alert.flapping.is_(flapping))
    if suppressed is not None:
        query = query.where(Alert.suppressed.is_(suppressed))
    return query


async def get_alert(session: AsyncSession, alert_id: int) -> Alert:
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise Problem(404, f"alert {alert_id} does not exist")
    return alert


async def timeline_of(
    session: AsyncSession,
    *,
    alert_id: int | None = None,
    incident_id: int | None = None,
    limit: int = 100,
    after: int | None = None,
) -> list[TimelineEntry]:
    query = select(TimelineEntry)
    if alert_id is not None:
        query = query.where(TimelineEntry.alert_id == alert_id)
    if incident_id is not None:
        query = query.where(TimelineEntry.incident_id == incident_id)
    if after is not None:
        query = query.where(TimelineEntry.id > after)
    return list((await session.execute(query.order_by(TimelineEntry.id).limit(limit))).scalars())


# --- list, groups, detail -----------------------------------------------------------------------


@router.get("", response_model=AlertPage, summary="Alerts, newest first, filtered")
async def list_alerts(
    request: Request,
    _: Reader,
    severity: list[Severity] | None = Query(None, description="Any of these severities"),
    status: list[StatusFilter] | None = Query(None, description="Any of these; 'open' = not resolved"),
    origin: list[str] | None = Query(None),
    source: str | None = None,
    host: str | None = None,
    service: str | None = None,
    incident_id: int | None = None,
    assignee: str | None = None,
    since: datetime | None = Query(None, description="Active at or after (last seen ≥ since)"),
    until: datetime | None = Query(None, description="Active at or before (first seen ≤ until)"),
    q: str | None = Query(None, max_length=200, description="Text in the title"),
    flapping: bool | None = None,
    suppressed: bool | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
) -> AlertPage:
    # Only the list's columns: no JSON to decode, no ORM objects to build (a page is hot).
    query = filtered(
        select(*LIST_COLUMNS),
        severity=list(severity or []),
        status=list(status or []),
        origin=origin,
        source=source,
        host=host,
        service=service,
        incident_id=incident_id,
        assignee=assignee,
        since=_aware(since, "since"),
        until=_aware(until, "until"),
        q=q,
        flapping=flapping,
        suppressed=suppressed,
    )
    after = decode_cursor(cursor)
    if after:
        try:
            last_seen, last_id = datetime.fromisoformat(after[0]), int(after[1])
        except (ValueError, TypeError, IndexError) as exc:
            raise Problem(400, "cursor: not a cursor returned by this API") from exc
        query = query.where(
            tuple_(Alert.last_seen, Alert.id)
            < tuple_(
                bindparam("cursor_seen", last_seen, type_=UTCDateTime()), bindparam("cursor_id", last_id)
            )
        )
    query = query.order_by(Alert.last_seen.desc(), Alert.id.desc()).limit(limit + 1)
    async with backends_of(request).db.session() as session:
        rows = (await session.execute(query)).all()
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last.last_seen.isoformat(), last.id])
    return AlertPage(
        items=[AlertOut.model_validate(r._mapping) for r in rows[:limit]], next_cursor=next_cursor
    )


@router.get("/groups", response_model=Groups, summary="Alert counts grouped by host, service, origin...")
async def group_alerts(
    request: Request,
    _: Reader,
    by: GroupBy = "host",
    severity: list[Severity] | None = Query(None),
    status: list[StatusFilter] | None = Query(None),
    origin: list[str] | None = Query(None),
    source: str | None = None,
    host: str | None = None,
    service: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
) -> Groups:
    column = getattr(Alert, by)
    counts = [func.sum(case((Alert.severity == s, 1), else_=0)).label(s) for s in SEVERITIES]
    query = filtered(
        select(column.label("key"), func.count().label("count"), *counts),
        severity=list(severity or []),
        status=list(status or []),
        origin=origin,
        source=source,
        host=host,
        service=service,
        since=_aware(since, "since"),
        until=_aware(until, "until"),
        q=q,
    )
    query = query.group_by(column).order_by(func.count().desc(), column).limit(limit)
    async with backends_of(request).db.session() as session:
        rows = (await session.execute(query)).all()
    return Groups(
        by=by,
        groups=[
            GroupOut(
                key=row.key, count=row.count, by_severity={s: int(getattr(row, s) or 0) for s in SEVERITIES}
            )
            for row in rows
        ],
    )


# --- configuration: fingerprints per origin ------------------------------------------------------


@router.get("/fingerprint-rules", response_model=list[FingerprintRuleOut], summary="Fingerprint rules")
async def list_fingerprint_rules(request: Request, _: Reader) -> list[FingerprintRule]:
    async with backends_of(request).db.session() as session:
        return list(
            (await session.execute(select(FingerprintRule).order_by(FingerprintRule.origin))).scalars()
        )


@router.put(
    "/fingerprint-rules/{origin}",
    response_model=FingerprintRuleOut,
    summary="Set which fields identify alerts of an origin, and its auto-resolve timeout",
)
async def put_fingerprint_rule(
    origin: str, body: FingerprintRuleIn, request: Request, principal: Admin
) -> FingerprintRule:
    if not origin or len(origin) > 32:
        raise Problem(422, "origin: 1 to 32 characters")
    async with backends_of(request).db.session() as session:
        row = (
            await session.execute(select(FingerprintRule).where(FingerprintRule.origin == origin))
        ).scalar_one_or_none()
        before = snapshot(row) if row is not None else None
        if row is None:
            row = FingerprintRule(origin=origin)
            session.add(row)
        row.fields = list(body.fields)
        row.auto_resolve_minutes = body.auto_resolve_minutes
        row.updated_at = utcnow()
        await session.flush()
        await record(
            session,
            principal,
            "fingerprint_rule.put",
            "fingerprint_rule",
            origin,
            before=before,
            after=snapshot(row),
            request=request,
        )
    alert_service(request).rules.invalidate()
    return row


@router.delete("/fingerprint-rules/{origin}", status_code=204, summary="Back to the default fingerprint")
async def delete_fingerprint_rule(origin: str, request: Request, principal: Admin) -> None:
    async with backends_of(request).db.session() as session:
        row = (
            await session.execute(select(FingerprintRule).where(FingerprintRule.origin == origin))
        ).scalar_one_or_none()
        if row is None:
            raise Problem(404, f"no fingerprint rule for origin {origin!r}")
        await record(
            session,
            principal,
            "fingerprint_rule.delete",
            "fingerprint_rule",
            origin,
            before=snapshot(row),
            request=request,
        )
        await session.delete(row)
    alert_service(request).rules.invalidate()


# --- manual alerts and the dry run --------------------------------------------------------------


@router.post("", response_model=AlertOut, status_code=201, summary="Raise an alert by hand")
async def create_alert(body: ManualAlert, request: Request, principal: Writer) -> Alert:
    signal = parse_signal(
        {
            **body.model_dump(),
            "origin": "manual",
            "time_ns": int(utcnow().timestamp() * 1e9),
            "source": principal.actor[:128],
        }
    )
    async with alert_service(request).transaction() as ops:
        (alert,) = await ops.apply_signals([signal])
        await ops.session.flush()
        await record(
            ops.session, principal, "alert.create", "alert", alert.id, after=snapshot(alert), request=request
        )
    return alert


@router.post(
    "/dry-run", summary="Which fingerprint, alert and incident a sample signal would get (no writes)"
)
async def dry_run(body: SampleSignal, request: Request, _: Reader) -> dict[str, Any]:
    raw = body.model_dump()
    raw["time_ns"] = raw["time_ns"] or int(utcnow().timestamp() * 1e9)
    try:
        signal = parse_signal(raw)
    except ValueError as exc:
        raise Problem(422, str(exc)) from None
    return await alert_service(request).dry_run(signal)


# --- one alert ------------------------------------------------------------------------------------


@router.get("/{alert_id}", response_model=AlertDetail, summary="An alert with its evidence and timeline")
async def get_alert_detail(alert_id: int, request: Request, _: Reader) -> AlertDetail:
    async with backends_of(request).db.session() as session:
        alert = await get_alert(session, alert_id)
        incident = await session.get(Incident, alert.incident_id) if alert.incident_id else None
        timeline = await timeline_of(session, alert_id=alert_id, limit=200)
    return AlertDetail.model_validate(
        {
            **AlertOut.model_validate(alert).model_dump(),
            "description": alert.description,
            "labels": alert.labels or {},
            "annotations": alert.annotations or {},
            "evidence": alert.evidence or [],
            "silence_ids": alert.silence_ids or [],
            "reopened": alert.reopened,
            "escalation_policy_id": alert.escalation_policy_id,
            "escalation_level": alert.escalation_level,
            "next_escalation_at": alert.next_escalation_at,
            "incident": IncidentRef.model_validate(incident) if incident else None,
            "timeline": [TimelineOut.model_validate(t) for t in timeline],
        }
    )


@router.get(
    "/{alert_id}/timeline", response_model=TimelinePage, summary="Every change and note, oldest first"
)
async def alert_timeline(
    alert_id: int,
    request: Request,
    _: Reader,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
) -> TimelinePage:
    after = decode_cursor(cursor)
    async with backends_of(request).db.session() as session:
        await get_alert(session, alert_id)
        rows = await timeline_of(
            session, alert_id=alert_id, limit=limit + 1, after=int(after[0]) if after else None
        )
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return TimelinePage(items=[TimelineOut.model_validate(r) for r in rows[:limit]], next_cursor=next_cursor)


async def _act(request: Request, principal: Principal, alert_id: int, action: str, change: Any) -> Alert:
    """Apply ``change(ops, alert)`` in the alerting transaction, audited."""
    async with alert_service(request).transaction() as ops:
        alert = await get_alert(ops.session, alert_id)
        before = snapshot(alert)
        try:
            await change(ops, alert)
        except AlertingError as exc:
            raise Problem(409, str(exc)) from None
        await record(
            ops.session,
            principal,
            f"alert.{action}",
            "alert",
            alert.id,
            before=before,
            after=snapshot(alert),
            request=request,
        )
    return alert


@router.post("/{alert_id}/acknowledge", response_model=AlertOut, summary="Acknowledge (stops escalation)")
async def acknowledge(alert_id: int, request: Request, principal: Writer, body: Note | None = None) -> Alert:
    note = body.note if body else None

    async def change(ops: Any, alert: Alert) -> None:
        await ops.set_status(alert, "acknowledged", principal.actor, note)

    return await _act(request, principal, alert_id, "acknowledge", change)


@router.post("/{alert_id}/resolve", response_model=AlertOut, summary="Resolve by hand")
async def resolve(alert_id: int, request: Request, principal: Writer, body: Note | None = None) -> Alert:
    note = body.note if body else None

    async def change(ops: Any, alert: Alert) -> None:
        await ops.set_status(alert, "resolved", principal.actor, note)

    return await _act(request, principal, alert_id, "resolve", change)


@router.post("/{alert_id}/assign", response_model=AlertOut, summary="Assign to someone (null: unassign)")
async def assign(alert_id: int, body: Assign, request: Request, principal: Writer) -> Alert:
    async def change(ops: Any, alert: Alert) -> None:
        ops.assign(alert, body.assignee, principal.actor)
        if body.note:
            ops.add_note(body.note, principal.actor, alert=alert)

    return await _act(request, principal, alert_id, "assign", change)


@router.post("/{alert_id}/escalate", response_model=AlertOut, summary="Notify the next escalation step now")
async def escalate(alert_id: int, request: Request, principal: Writer, body: Note | None = None) -> Alert:
    note = body.note if body else None

    async def change(ops: Any, alert: Alert) -> None:
        await ops.escalate(alert, principal.actor, note)

    return await _act(request, principal, alert_id, "escalate", change)


@router.post("/{alert_id}/notes", response_model=AlertOut, summary="Add a note to the timeline")
async def add_note(alert_id: int, body: NoteText, request: Request, principal: Writer) -> Alert:
    async def change(ops: Any, alert: Alert) -> None:
        ops.add_note(body.text, principal.actor, alert=alert)

    return await _act(request, principal, alert_id, "note", change)


@router.patch("/{alert_id}", response_model=AlertOut, summary="Change status and/or assignee")
async def patch_alert(alert_id: int, body: AlertPatch, request: Request, principal: Writer) -> Alert:
    fields = body.model_fields_set

    async def change(ops: Any, alert: Alert) -> None:
        if "assignee" in fields:
            ops.assign(alert, body.assignee, principal.actor)
        if body.status is not None:
            await ops.set_status(alert, body.status, principal.actor, body.note)
        elif body.note:
            ops.add_note(body.note, principal.actor, alert=alert)

    return await _act(request, principal, alert_id, "update", change)


@router.post(
    "/{alert_id}/automation",
    status_code=501,
    summary="Run a remediation for this alert (not configured yet)",
    responses={501: {"description": "Automation is not configured"}},
)
async def trigger_automation(alert_id: int, request: Request, principal: Writer) -> None:
    async with backends_of(request).db.session() as session:
        await get_alert(session, alert_id)
        await record(session, principal, "alert.automation_requested", "alert", alert_id, request=request)
        session.add(
            TimelineEntry(
                alert_id=alert_id,
                kind="automation",
                actor=principal.actor,
                message="automation requested: not configured",
                data={},
            )
        )
    raise Problem(
        501,
        "automation not configured: no automation provider or rule is set up on this Vigil yet, so "
        "nothing was run. The request is recorded on the alert's timeline.",
        title="Not Implemented",
    )


class DeliveryOut(BaseModel):
    id: int
    channel_id: int
    route_id: int | None
    alert_id: int | None
    incident_id: int | None
    event: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    response_status: int | None
    created_at: datetime
    sent_at: datetime | None

    model_config = {"from_attributes": True}


@router.get(
    "/{alert_id}/deliveries", response_model=list[DeliveryOut], summary="Notifications about this alert"
)
async def alert_deliveries(alert_id: int, request: Request, _: Reader) -> list[NotificationDelivery]:
    async with backends_of(request).db.session() as session:
        await get_alert(session, alert_id)
        rows = await session.execute(
            select(NotificationDelivery)
            .where(NotificationDelivery.alert_id == alert_id)
            .order_by(NotificationDelivery.id)
            .limit(500)
        )
        return list(rows.scalars())
