"""Silences and maintenance windows: matching alerts are stored but suppressed (no incident, no
notification) while the window is active. Windows are one-off (``starts_at``/``ends_at``) or
recurring (weekly days and hours, or a cron expression with a duration), in a time zone.

Creating, changing or ending a window applies at once to the alerts already firing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import or_, select

from vigil.alerting.ops import stored_labels
from vigil.alerting.rules import silence_window
from vigil.analytics.correlation import Recurrence, parse_matchers
from vigil.api.audit import record, snapshot
from vigil.api.auth import Principal, Reader, Writer, backends_of
from vigil.api.problems import Problem
from vigil.api.routes.alerts import AlertOut, alert_service
from vigil.store.models import Alert, Silence
from vigil.store.types import utcnow

router = APIRouter(prefix="/api/v1/silences", tags=["silences"])

MATCHERS_HELP = (
    'Label matchers, all of which must hold: [{"name": "host", "op": "=~", "value": "web-.*"}]. '
    "Ops: = != =~ !~ (regexes anchored). Names: any alert label, or host, service, origin, "
    "severity, source, title."
)


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name}: must include a timezone, e.g. 2026-12-01T22:00:00Z")
    return value


def _check_recurrence(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None:
        try:
            Recurrence.parse(value)
        except ValueError as exc:
            raise ValueError(f"recurrence.{exc}") from None
    return value


class SilenceIn(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    kind: Literal["silence", "maintenance"] = "silence"
    comment: str | None = Field(None, max_length=10_000)
    matchers: list[dict[str, str]] = Field(min_length=1, description=MATCHERS_HELP)
    starts_at: datetime | None = Field(None, description="Default: now")
    ends_at: datetime | None = Field(None, description="Required unless recurring")
    recurrence: dict[str, Any] | None = Field(
        None,
        description='{"type": "weekly", "days": ["sat", "sun"], "start": "22:00", "end": "02:00", '
        '"timezone": "Europe/Paris"} or {"type": "cron", "cron": "0 2 * * 6", "duration_minutes": 120, '
        '"timezone": "UTC"}',
    )

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        return [m.to_dict() for m in parse_matchers(value)]

    @field_validator("recurrence")
    @classmethod
    def _recurrence(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_recurrence(value)

    @model_validator(mode="after")
    def _window(self) -> SilenceIn:
        _aware(self.starts_at, "starts_at")
        _aware(self.ends_at, "ends_at")
        if self.ends_at is None and self.recurrence is None:
            raise ValueError("ends_at: required for a one-off silence (or give a recurrence)")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at: must be after starts_at")
        return self


class SilencePatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=128)
    comment: str | None = Field(None, max_length=10_000)
    matchers: list[dict[str, str]] | None = Field(None, min_length=1)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    recurrence: dict[str, Any] | None = None

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
        return None if value is None else [m.to_dict() for m in parse_matchers(value)]

    @field_validator("recurrence")
    @classmethod
    def _recurrence(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_recurrence(value)

    @model_validator(mode="after")
    def _aware_times(self) -> SilencePatch:
        _aware(self.starts_at, "starts_at")
        _aware(self.ends_at, "ends_at")
        return self


class SilenceOut(BaseModel):
    id: int
    name: str
    kind: str
    comment: str | None
    matchers: list[dict[str, str]]
    starts_at: datetime | None
    ends_at: datetime | None
    recurrence: dict[str, Any] | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    active_now: bool
    next_start: datetime | None
    expired: bool


class Preview(BaseModel):
    matching_open_alerts: int
    alerts: list[AlertOut]


def silence_out(row: Silence, now: datetime | None = None) -> SilenceOut:
    now = now or utcnow()
    window = silence_window(row)
    expired = row.ends_at is not None and row.ends_at <= now
    next_start = None
    if not expired:
        if window.recurrence is not None:
            next_start = window.recurrence.next_start(max(now, row.starts_at or now))
        elif row.starts_at is not None and row.starts_at > now:
            next_start = row.starts_at
    return SilenceOut(
        id=row.id,
        name=row.name,
        kind=row.kind,
        comment=row.comment,
        matchers=row.matchers,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        recurrence=row.recurrence,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        active_now=window.is_active(now),
        next_start=next_start,
        expired=expired,
    )


async def _apply_now(request: Request) -> None:
    """Suppress / release the alerts already firing, so the change shows at once."""
    async with alert_service(request).transaction(fresh_rules=True) as ops:
        await ops.reapply_silences()


@router.get("", response_model=list[SilenceOut], summary="Silences and maintenance windows")
async def list_silences(
    request: Request,
    _: Reader,
    state: Literal["current", "expired", "all"] = Query("current", description="current: not yet ended"),
    kind: Literal["silence", "maintenance"] | None = None,
    limit: int = Query(200, ge=1, le=1000),
) -> list[SilenceOut]:
    now = utcnow()
    query = select(Silence)
    if state == "current":
        query = query.where(or_(Silence.ends_at.is_(None), Silence.ends_at > now))
    elif state == "expired":
        query = query.where(Silence.ends_at <= now)
    if kind is not None:
        query = query.where(Silence.kind == kind)
    async with backends_of(request).db.session() as session:
        rows = (await session.execute(query.order_by(Silence.id.desc()).limit(limit))).scalars()
        return [silence_out(r, now) for r in rows]


@router.post(
    "/preview", response_model=Preview, summary="Open alerts a silence with these matchers would cover"
)
async def preview(body: SilenceIn, request: Request, _: Reader) -> Preview:
    window = silence_window(
        Silence(id=0, matchers=body.matchers, starts_at=None, ends_at=None, recurrence=None)
    )
    matched: list[Alert] = []
    count = 0
    async with backends_of(request).db.session() as session:
        rows = await session.execute(
            select(Alert).where(Alert.resolved_at.is_(None)).order_by(Alert.last_seen.desc()).limit(10_000)
        )
        for alert in rows.scalars():
            if window.matches(stored_labels(alert), utcnow()):
                count += 1
                if len(matched) < 100:
                    matched.append(alert)
    return Preview(matching_open_alerts=count, alerts=[AlertOut.model_validate(a) for a in matched])


@router.post("", response_model=SilenceOut, status_code=201, summary="Create a silence or maintenance window")
async def create_silence(body: SilenceIn, request: Request, principal: Writer) -> SilenceOut:
    async with backends_of(request).db.session() as session:
        row = Silence(**body.model_dump(), created_by=principal.actor)
        row.starts_at = row.starts_at or utcnow()
        session.add(row)
        await session.flush()
        await record(
            session, principal, "silence.create", "silence", row.id, after=snapshot(row), request=request
        )
    await _apply_now(request)
    return silence_out(row)


async def _get(request: Request, silence_id: int) -> Silence:
    async with backends_of(request).db.session() as session:
        row = await session.get(Silence, silence_id)
    if row is None:
        raise Problem(404, f"silence {silence_id} does not exist")
    return row


@router.get("/{silence_id}", response_model=SilenceOut, summary="One silence")
async def get_silence(silence_id: int, request: Request, _: Reader) -> SilenceOut:
    return silence_out(await _get(request, silence_id))


async def _update(
    request: Request, principal: Principal, silence_id: int, action: str, changes: dict[str, Any]
) -> SilenceOut:
    async with backends_of(request).db.session() as session:
        row = await session.get(Silence, silence_id)
        if row is None:
            raise Problem(404, f"silence {silence_id} does not exist")
        before = snapshot(row)
        for name, value in changes.items():
            setattr(row, name, value)
        if row.ends_at is None and row.recurrence is None:
            raise Problem(422, "ends_at: required for a one-off silence (or give a recurrence)")
        if row.starts_at and row.ends_at and row.ends_at <= row.starts_at and action != "silence.expire":
            raise Problem(422, "ends_at: must be after starts_at")
        row.updated_at = utcnow()
        await session.flush()
        await record(
            session, principal, action, "silence", row.id, before=before, after=snapshot(row), request=request
        )
    await _apply_now(request)
    return silence_out(row)


@router.patch("/{silence_id}", response_model=SilenceOut, summary="Change a silence")
async def update_silence(
    silence_id: int, body: SilencePatch, request: Request, principal: Writer
) -> SilenceOut:
    changes = body.model_dump(exclude_unset=True)
    for name in ("name", "matchers"):
        if name in changes and changes[name] is None:
            raise Problem(422, f"{name}: cannot be null")
    return await _update(request, principal, silence_id, "silence.update", changes)


@router.delete("/{silence_id}", response_model=SilenceOut, summary="End a silence now (kept as history)")
async def expire_silence(silence_id: int, request: Request, principal: Writer) -> SilenceOut:
    now = utcnow()
    row = await _get(request, silence_id)
    changes: dict[str, Any] = {"ends_at": now}
    if row.starts_at is not None and row.starts_at > now:
        changes["starts_at"] = now
    return await _update(request, principal, silence_id, "silence.expire", changes)
