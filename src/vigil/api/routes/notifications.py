"""Notification channels (Slack, e-mail, PagerDuty, webhook), routing rules, escalation
policies, and the delivery log.

Channel secrets (webhook URLs, routing keys, passwords, HMAC secrets) are encrypted at rest
and never returned: the API shows which secret fields are set.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.alerting.notifications import NOTIFIERS
from vigil.alerting.notifications.dispatcher import NotificationDispatcher, channel_secrets
from vigil.analytics.correlation import parse_matchers
from vigil.api.audit import record, snapshot
from vigil.api.auth import Admin, Reader, Writer, backends_of
from vigil.api.pagination import decode_cursor, encode_cursor
from vigil.api.problems import Problem
from vigil.api.routes.alerts import DeliveryOut, alert_service
from vigil.store.models import EscalationPolicy, NotificationChannel, NotificationDelivery, NotificationRoute
from vigil.store.types import utcnow

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])

ChannelType = Literal["slack", "email", "pagerduty", "webhook"]
Event = Literal["trigger", "acknowledge", "resolve", "escalate"]
Severity = Literal["critical", "high", "medium", "low"]
DEFAULT_EVENTS: tuple[Event, ...] = ("trigger", "resolve", "escalate")


def _matchers(value: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
    return None if value is None else [m.to_dict() for m in parse_matchers(value)]


# --- channels -----------------------------------------------------------------------------------


class ChannelIn(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    type: ChannelType
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="slack: {}; email: {host, port, from, to: [...], starttls?, ssl?, username?}; "
        "pagerduty: {url?}; webhook: {url, headers?}",
    )
    secrets: dict[str, Any] = Field(
        default_factory=dict,
        description="slack: {webhook_url}; email: {password?}; pagerduty: {routing_key}; "
        "webhook: {hmac_secret?, headers?}",
    )
    enabled: bool = True


class ChannelPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=128)
    config: dict[str, Any] | None = None
    secrets: dict[str, Any] | None = Field(None, description="Replaces every secret when given")
    enabled: bool | None = None


class ChannelOut(BaseModel):
    id: int
    name: str
    type: str
    config: dict[str, Any]
    secret_fields_set: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime


def _validate_channel(kind: str, config: dict[str, Any], secrets: dict[str, Any]) -> None:
    notifier = NOTIFIERS[kind]
    unknown = sorted(set(secrets) - set(notifier.secret_fields))
    if unknown:
        raise Problem(
            422,
            f"secrets.{unknown[0]}: not a secret of a {kind} channel "
            f"(expected {', '.join(notifier.secret_fields)})",
        )
    try:
        notifier.validate(config, secrets)
    except ValueError as exc:
        raise Problem(422, str(exc)) from None


def channel_out(row: NotificationChannel, secrets: dict[str, Any]) -> ChannelOut:
    return ChannelOut(
        id=row.id,
        name=row.name,
        type=row.type,
        config=row.config or {},
        secret_fields_set=sorted(k for k, v in secrets.items() if v not in (None, "", {})),
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _decrypted(request: Request, row: NotificationChannel) -> dict[str, Any]:
    try:
        return channel_secrets(backends_of(request).secrets, row)
    except ValueError:
        return {}


async def _channel(session: AsyncSession, channel_id: int) -> NotificationChannel:
    row = await session.get(NotificationChannel, channel_id)
    if row is None:
        raise Problem(404, f"channel {channel_id} does not exist")
    return row


@router.get("/channels", response_model=list[ChannelOut], summary="Notification channels")
async def list_channels(request: Request, _: Reader) -> list[ChannelOut]:
    async with backends_of(request).db.session() as session:
        rows = (await session.execute(select(NotificationChannel).order_by(NotificationChannel.id))).scalars()
        return [channel_out(r, _decrypted(request, r)) for r in rows]


@router.post("/channels", response_model=ChannelOut, status_code=201, summary="Add a channel")
async def create_channel(body: ChannelIn, request: Request, principal: Admin) -> ChannelOut:
    _validate_channel(body.type, body.config, body.secrets)
    box = backends_of(request).secrets
    try:
        async with backends_of(request).db.session() as session:
            row = NotificationChannel(
                name=body.name,
                type=body.type,
                config=body.config,
                enabled=body.enabled,
                secret_encrypted=box.encrypt(json.dumps(body.secrets)) if body.secrets else None,
            )
            session.add(row)
            await session.flush()
            await record(
                session,
                principal,
                "channel.create",
                "notification_channel",
                row.id,
                after=snapshot(row),
                request=request,
            )
    except IntegrityError:
        raise Problem(409, f"name: a channel named {body.name!r} exists") from None
    alert_service(request).rules.invalidate()
    return channel_out(row, body.secrets)


@router.get("/channels/{channel_id}", response_model=ChannelOut, summary="One channel")
async def get_channel(channel_id: int, request: Request, _: Reader) -> ChannelOut:
    async with backends_of(request).db.session() as session:
        row = await _channel(session, channel_id)
        return channel_out(row, _decrypted(request, row))


@router.patch("/channels/{channel_id}", response_model=ChannelOut, summary="Change a channel")
async def update_channel(
    channel_id: int, body: ChannelPatch, request: Request, principal: Admin
) -> ChannelOut:
    box = backends_of(request).secrets
    try:
        async with backends_of(request).db.session() as session:
            row = await _channel(session, channel_id)
            before = snapshot(row)
            secrets = body.secrets if body.secrets is not None else _decrypted(request, row)
            config = body.config if body.config is not None else dict(row.config or {})
            _validate_channel(row.type, config, secrets)
            if body.name is not None:
                row.name = body.name
            if body.enabled is not None:
                row.enabled = body.enabled
            row.config = config
            if body.secrets is not None:
                row.secret_encrypted = box.encrypt(json.dumps(body.secrets)) if body.secrets else None
            row.updated_at = utcnow()
            await session.flush()
            await record(
                session,
                principal,
                "channel.update",
                "notification_channel",
                row.id,
                before=before,
                after=snapshot(row),
                request=request,
            )
    except IntegrityError:
        raise Problem(409, "name: another channel has this name") from None
    alert_service(request).rules.invalidate()
    return channel_out(row, secrets)


@router.delete("/channels/{channel_id}", status_code=204, summary="Delete a channel (and its deliveries)")
async def delete_channel(channel_id: int, request: Request, principal: Admin) -> None:
    async with backends_of(request).db.session() as session:
        row = await _channel(session, channel_id)
        await record(
            session,
            principal,
            "channel.delete",
            "notification_channel",
            row.id,
            before=snapshot(row),
            request=request,
        )
        await session.delete(row)
    alert_service(request).rules.invalidate()


@router.post(
    "/channels/{channel_id}/test", response_model=DeliveryOut, summary="Send a test notification now"
)
async def test_channel(channel_id: int, request: Request, principal: Admin) -> NotificationDelivery:
    backends = backends_of(request)
    now = utcnow()
    async with backends.db.session() as session:
        row = await _channel(session, channel_id)
        delivery = NotificationDelivery(
            channel_id=row.id,
            event="test",
            status="pending",
            attempts=0,
            next_attempt_at=now,
            dedup_key=f"vigil-test-{row.id}-{int(now.timestamp())}",
            created_at=now,
            message={
                "event": "test",
                "alert": {
                    "title": f"Test notification from Vigil to {row.name}",
                    "severity": "low",
                    "status": "new",
                    "origin": "manual",
                    "source": principal.actor,
                },
                "incident": None,
            },
        )
        session.add(delivery)
        await session.flush()
        await record(session, principal, "channel.test", "notification_channel", row.id, request=request)
    dispatcher = NotificationDispatcher(backends.db, backends.secrets)
    await dispatcher.dispatch_once(ids=[delivery.id])
    async with backends.db.session() as session:
        sent = await session.get(NotificationDelivery, delivery.id)
        assert sent is not None
        if sent.status == "pending":  # a retryable failure: report it instead of retrying a test
            sent.status = "failed"
        return sent


# --- routes -----------------------------------------------------------------------------------


class RouteIn(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    severities: list[Severity] = Field(default_factory=list, description="Empty: every severity")
    matchers: list[dict[str, str]] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    channel_ids: list[int] = Field(min_length=1)
    enabled: bool = True
    position: int = 0

    @field_validator("matchers")
    @classmethod
    def _check_matchers(cls, value: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
        return _matchers(value)


class RoutePatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=128)
    severities: list[Severity] | None = None
    matchers: list[dict[str, str]] | None = None
    events: list[Event] | None = None
    channel_ids: list[int] | None = Field(None, min_length=1)
    enabled: bool | None = None
    position: int | None = None

    @field_validator("matchers")
    @classmethod
    def _check_matchers(cls, value: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
        return _matchers(value)


class RouteOut(BaseModel):
    id: int
    name: str
    severities: list[str]
    matchers: list[dict[str, str]]
    events: list[str]
    channel_ids: list[int]
    enabled: bool
    position: int
    created_at: datetime
    updated_at: datetime

    model_config = {"from_attributes": True}


async def _check_channels(session: AsyncSession, ids: list[int], field: str) -> None:
    known = set(
        (
            await session.execute(select(NotificationChannel.id).where(NotificationChannel.id.in_(ids)))
        ).scalars()
    )
    missing = [i for i in ids if i not in known]
    if missing:
        raise Problem(422, f"{field}: channel {missing[0]} does not exist")


async def _crud_create(request: Request, principal: Any, model: type[Any], body: BaseModel, kind: str) -> Any:
    try:
        async with backends_of(request).db.session() as session:
            values = body.model_dump()
            if "channel_ids" in values:
                await _check_channels(session, values["channel_ids"], "channel_ids")
            if "steps" in values:
                for i, step in enumerate(values["steps"]):
                    await _check_channels(session, step["channel_ids"], f"steps[{i}].channel_ids")
            row = model(**values)
            session.add(row)
            await session.flush()
            await record(
                session, principal, f"{kind}.create", kind, row.id, after=snapshot(row), request=request
            )
    except IntegrityError:
        raise Problem(409, f"name: a {kind.replace('_', ' ')} named {values['name']!r} exists") from None
    alert_service(request).rules.invalidate()
    return row


async def _crud_update(
    request: Request, principal: Any, model: type[Any], row_id: int, body: BaseModel, kind: str
) -> Any:
    try:
        async with backends_of(request).db.session() as session:
            row = await session.get(model, row_id)
            if row is None:
                raise Problem(404, f"{kind.replace('_', ' ')} {row_id} does not exist")
            before = snapshot(row)
            for name, value in body.model_dump(exclude_unset=True).items():
                if value is None:
                    raise Problem(422, f"{name}: cannot be null")
                if name == "channel_ids":
                    await _check_channels(session, value, "channel_ids")
                if name == "steps":
                    for i, step in enumerate(value):
                        await _check_channels(session, step["channel_ids"], f"steps[{i}].channel_ids")
                setattr(row, name, value)
            row.updated_at = utcnow()
            await session.flush()
            await record(
                session,
                principal,
                f"{kind}.update",
                kind,
                row.id,
                before=before,
                after=snapshot(row),
                request=request,
            )
    except IntegrityError:
        raise Problem(409, f"name: another {kind.replace('_', ' ')} has this name") from None
    alert_service(request).rules.invalidate()
    return row


async def _crud_delete(request: Request, principal: Any, model: type[Any], row_id: int, kind: str) -> None:
    async with backends_of(request).db.session() as session:
        row = await session.get(model, row_id)
        if row is None:
            raise Problem(404, f"{kind.replace('_', ' ')} {row_id} does not exist")
        await record(
            session, principal, f"{kind}.delete", kind, row.id, before=snapshot(row), request=request
        )
        await session.delete(row)
    alert_service(request).rules.invalidate()


@router.get(
    "/routes", response_model=list[RouteOut], summary="Routing rules: which alerts go to which channels"
)
async def list_routes(request: Request, _: Reader) -> list[NotificationRoute]:
    async with backends_of(request).db.session() as session:
        rows = await session.execute(
            select(NotificationRoute).order_by(NotificationRoute.position, NotificationRoute.id)
        )
        return list(rows.scalars())


@router.post("/routes", response_model=RouteOut, status_code=201, summary="Add a routing rule")
async def create_route(body: RouteIn, request: Request, principal: Admin) -> NotificationRoute:
    row: NotificationRoute = await _crud_create(
        request, principal, NotificationRoute, body, "notification_route"
    )
    return row


@router.patch("/routes/{route_id}", response_model=RouteOut, summary="Change a routing rule")
async def update_route(
    route_id: int, body: RoutePatch, request: Request, principal: Admin
) -> NotificationRoute:
    row: NotificationRoute = await _crud_update(
        request, principal, NotificationRoute, route_id, body, "notification_route"
    )
    return row


@router.delete("/routes/{route_id}", status_code=204, summary="Delete a routing rule")
async def delete_route(route_id: int, request: Request, principal: Admin) -> None:
    await _crud_delete(request, principal, NotificationRoute, route_id, "notification_route")


# --- escalation policies --------------------------------------------------------------------------


class Step(BaseModel):
    after_minutes: float = Field(gt=0, le=7 * 24 * 60, description="Not acknowledged this long after firing")
    channel_ids: list[int] = Field(min_length=1)


def _check_steps(steps: list[Step]) -> list[Step]:
    for i in range(1, len(steps)):
        if steps[i].after_minutes <= steps[i - 1].after_minutes:
            raise ValueError(f"steps[{i}].after_minutes: must be later than the step before")
    return steps


class PolicyIn(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    severities: list[Severity] = Field(default_factory=list, description="Empty: every severity")
    matchers: list[dict[str, str]] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1, max_length=10)
    enabled: bool = True
    position: int = 0

    @field_validator("matchers")
    @classmethod
    def _check_matchers(cls, value: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
        return _matchers(value)

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[Step]) -> list[Step]:
        return _check_steps(steps)


class PolicyPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=128)
    severities: list[Severity] | None = None
    matchers: list[dict[str, str]] | None = None
    steps: list[Step] | None = Field(None, min_length=1, max_length=10)
    enabled: bool | None = None
    position: int | None = None

    @field_validator("matchers")
    @classmethod
    def _check_matchers(cls, value: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
        return _matchers(value)

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[Step] | None) -> list[Step] | None:
        return None if steps is None else _check_steps(steps)


class PolicyOut(BaseModel):
    id: int
    name: str
    severities: list[str]
    matchers: list[dict[str, str]]
    steps: list[dict[str, Any]]
    enabled: bool
    position: int
    created_at: datetime
    updated_at: datetime

    model_config = {"from_attributes": True}


@router.get("/escalation-policies", response_model=list[PolicyOut], summary="Escalation policies")
async def list_policies(request: Request, _: Reader) -> list[EscalationPolicy]:
    async with backends_of(request).db.session() as session:
        rows = await session.execute(
            select(EscalationPolicy).order_by(EscalationPolicy.position, EscalationPolicy.id)
        )
        return list(rows.scalars())


@router.post(
    "/escalation-policies", response_model=PolicyOut, status_code=201, summary="Add an escalation policy"
)
async def create_policy(body: PolicyIn, request: Request, principal: Admin) -> EscalationPolicy:
    row: EscalationPolicy = await _crud_create(
        request, principal, EscalationPolicy, body, "escalation_policy"
    )
    return row


@router.patch(
    "/escalation-policies/{policy_id}", response_model=PolicyOut, summary="Change an escalation policy"
)
async def update_policy(
    policy_id: int, body: PolicyPatch, request: Request, principal: Admin
) -> EscalationPolicy:
    row: EscalationPolicy = await _crud_update(
        request, principal, EscalationPolicy, policy_id, body, "escalation_policy"
    )
    return row


@router.delete("/escalation-policies/{policy_id}", status_code=204, summary="Delete an escalation policy")
async def delete_policy(policy_id: int, request: Request, principal: Admin) -> None:
    await _crud_delete(request, principal, EscalationPolicy, policy_id, "escalation_policy")


# --- the delivery log ---------------------------------------------------------------------------


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


@router.get("/deliveries", response_model=DeliveryPage, summary="The delivery log, newest first")
async def list_deliveries(
    request: Request,
    _: Reader,
    status: Literal["pending", "sending", "sent", "failed"] | None = None,
    channel_id: int | None = None,
    alert_id: int | None = None,
    event: Literal["trigger", "acknowledge", "resolve", "escalate", "test"] | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
) -> DeliveryPage:
    query = select(NotificationDelivery)
    for column, value in (
        (NotificationDelivery.status, status),
        (NotificationDelivery.channel_id, channel_id),
        (NotificationDelivery.alert_id, alert_id),
        (NotificationDelivery.event, event),
    ):
        if value is not None:
            query = query.where(column == value)
    after = decode_cursor(cursor)
    if after:
        query = query.where(NotificationDelivery.id < int(after[0]))
    async with backends_of(request).db.session() as session:
        rows = list(
            (await session.execute(query.order_by(NotificationDelivery.id.desc()).limit(limit + 1))).scalars()
        )
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return DeliveryPage(items=[DeliveryOut.model_validate(r) for r in rows[:limit]], next_cursor=next_cursor)


@router.post(
    "/deliveries/{delivery_id}/retry", response_model=DeliveryOut, summary="Send a failed delivery again"
)
async def retry_delivery(delivery_id: int, request: Request, principal: Writer) -> NotificationDelivery:
    async with backends_of(request).db.session() as session:
        row = await session.get(NotificationDelivery, delivery_id)
        if row is None:
            raise Problem(404, f"delivery {delivery_id} does not exist")
        if row.status != "failed":
            raise Problem(
                409, f"status: only failed deliveries are retried by hand (this one is {row.status})"
            )
        before = snapshot(row)
        row.status = "pending"
        row.next_attempt_at = utcnow()
        row.attempts = 0
        await record(
            session,
            principal,
            "delivery.retry",
            "notification_delivery",
            row.id,
            before=before,
            after=snapshot(row),
            request=request,
        )
    return row
