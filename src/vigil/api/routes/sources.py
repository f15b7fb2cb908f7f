"""The source registry: what Vigil pulls from and what pushes to it.

A source has a type (a pull collector, or a push receiver), a name, a target for pull types,
a config validated by the type's model, credentials (encrypted at rest, never returned — the
API only says which keys are set), an interval and an enabled flag. Pull sources are polled by
the workers' collector scheduler, which writes each source's health back to its row.

Config is replaced as a whole on update; credentials are merged key by key (send a key with
``null`` to remove it), because a client cannot read them back to resend them.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vigil.api.audit import record, snapshot
from vigil.api.auth import Reader, Writer, backends_of, forget_cached_tokens
from vigil.api.pagination import decode_cursor, encode_cursor
from vigil.api.problems import Problem
from vigil.api.routes.tokens import TokenCreated, TokenOut, issue_token
from vigil.backends import Backends
from vigil.collectors import polling
from vigil.collectors.base import CollectError, SourceType, source_types
from vigil.collectors.polling import SourceSpec
from vigil.store.models import ApiToken, Source

router = APIRouter(prefix="/api/v1/sources", tags=["sources"])

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]*$"
TEST_TIMEOUT_S = 30.0
SAMPLE_SIZE = 20
CredentialValue = str | int | bool | None


# --- schemas ------------------------------------------------------------------------------------


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=NAME_PATTERN)
    type: str = Field(description="A type from GET /api/v1/sources/types.")
    target: str | None = Field(None, max_length=512, description="What to poll (pull types).")
    config: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, CredentialValue] = Field(default_factory=dict)
    interval_s: int = Field(60, ge=1, le=86400, description="Poll interval (pull types).")
    enabled: bool = True


class SourceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=128, pattern=NAME_PATTERN)
    target: str | None = Field(None, max_length=512)
    config: dict[str, Any] | None = Field(None, description="Replaces the whole config.")
    credentials: dict[str, CredentialValue] | None = Field(
        None, description="Merged into the stored credentials; a null value removes that key."
    )
    interval_s: int | None = Field(None, ge=1, le=86400)
    enabled: bool | None = None


class SourceHealth(BaseModel):
    status: str
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    last_latency_ms: float | None


class SourceOut(BaseModel):
    id: int
    name: str
    type: str
    kind: Literal["pull", "push"] | None
    target: str | None
    config: dict[str, Any] = Field(description="Effective config, defaults included.")
    credential_keys: list[str] = Field(description="Which credentials are set (never their values).")
    interval_s: int
    enabled: bool
    created_at: datetime
    updated_at: datetime
    health: SourceHealth


class SourcePage(BaseModel):
    items: list[SourceOut]
    next_cursor: str | None


class SourceTypeOut(BaseModel):
    name: str
    kind: Literal["pull", "push"]
    description: str
    config_schema: dict[str, Any]
    credential_keys: list[str]


class PointSample(BaseModel):
    measurement: str
    tags: dict[str, str]
    fields: dict[str, Any]
    time_ns: int | None


class TestOutcome(BaseModel):
    ok: bool
    latency_ms: float
    error: str | None = None
    points: int = 0
    alert_signals: int = 0
    logs: int = 0
    unsupported: list[str] = Field(default_factory=list)
    sample: list[PointSample] = Field(default_factory=list)
    sample_alerts: list[dict[str, Any]] = Field(default_factory=list)
    sample_logs: list[dict[str, Any]] = Field(default_factory=list)


class SourceTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=128)
    expires_at: datetime | None = None


class SourceTokenCreated(BaseModel):
    token: TokenCreated
    snippets: dict[str, str] = Field(description="Ready-to-paste agent configuration (push types).")


# --- validation -----------------------------------------------------------------------------------


def _kind(type_name: str) -> SourceType:
    kinds = source_types()
    kind = kinds.get(type_name)
    if kind is None:
        raise Problem(422, f"type: unknown source type {type_name!r}; one of {', '.join(sorted(kinds))}")
    return kind


def _model_problem(prefix: str, exc: ValidationError) -> Problem:
    errors = [
        {"field": ".".join([prefix, *(str(p) for p in e["loc"])]), "message": e["msg"]} for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return Problem(422, detail, errors=errors)


def validate_source(
    type_name: str, target: str | None, config: dict[str, Any], credentials: dict[str, Any]
) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """(normalised target, config as stored, credentials as stored) or a 422 naming the field."""
    kind = _kind(type_name)
    try:
        config_model = kind.config_model.model_validate(config)
    except ValidationError as exc:
        raise _model_problem("config", exc) from None
    clean_credentials = {k: v for k, v in credentials.items() if v is not None}
    try:
        credentials_model = kind.credentials_model.model_validate(clean_credentials)
    except ValidationError as exc:
        raise _model_problem("credentials", exc) from None
    if kind.collector is not None:
        try:
            target = kind.collector.check(target, config_model, credentials_model)
        except ValueError as exc:
            raise Problem(422, str(exc)) from None
    # Only what the user set is stored, so improved defaults reach existing sources.
    stored_config = config_model.model_dump(mode="json", exclude_unset=True)
    stored_credentials = credentials_model.model_dump(mode="json", exclude_none=True)
    return target, stored_config, stored_credentials


def _effective_config(row: Source) -> dict[str, Any]:
    kind = source_types().get(row.type)
    if kind is None:
        return dict(row.config or {})
    try:
        return kind.config_model.model_validate(row.config or {}).model_dump(mode="json")
    except ValidationError:
        return dict(row.config or {})  # stored before a schema change: show it as it is


def _credential_keys(backends: Backends, row: Source) -> list[str]:
    try:
        return sorted(polling.decrypt_credentials(backends.secrets, row.credentials_encrypted))
    except ValueError:
        return []


def _out(backends: Backends, row: Source) -> SourceOut:
    kind = source_types().get(row.type)
    return SourceOut(
        id=row.id,
        name=row.name,
        type=row.type,
        kind=kind.kind if kind else None,
        target=row.target,
        config=_effective_config(row),
        credential_keys=_credential_keys(backends, row),
        interval_s=row.interval_s,
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
        health=_health(row),
    )


def _health(row: Source) -> SourceHealth:
    return SourceHealth(
        status=row.status,
        last_success_at=row.last_success_at,
        last_error_at=row.last_error_at,
        last_error=row.last_error,
        last_latency_ms=row.last_latency_ms,
    )


async def _get(session: Any, source_id: int) -> Source:
    row = await session.get(Source, source_id)
    if row is None:
        raise Problem(404, f"source {source_id} does not exist")
    assert isinstance(row, Source)
    return row


# --- routes ---------------------------------------------------------------------------------------


@router.get("/types", response_model=list[SourceTypeOut], summary="Source types and their config schemas")
async def list_types(_: Reader) -> list[SourceTypeOut]:
    return [
        SourceTypeOut(
            name=kind.name,
            kind=kind.kind,
            description=kind.description,
            config_schema=kind.config_model.model_json_schema(),
            credential_keys=sorted(kind.credentials_model.model_fields),
        )
        for kind in sorted(source_types().values(), key=lambda k: (k.kind, k.name))
    ]


@router.get("", response_model=SourcePage, summary="Sources, oldest first")
async def list_sources(
    request: Request,
    _: Reader,
    type: str | None = Query(None, description="Only this type"),
    kind: Literal["pull", "push"] | None = Query(None),
    enabled: bool | None = None,
    status: str | None = Query(None, description="Health status: ok, error, unknown"),
    limit: int = Query(100, ge=1, le=500),
    cursor: str | None = None,
) -> SourcePage:
    backends = backends_of(request)
    query = select(Source).order_by(Source.id).limit(limit + 1)
    if type is not None:
        query = query.where(Source.type == type)
    if kind is not None:
        names = [name for name, t in source_types().items() if t.kind == kind]
        query = query.where(Source.type.in_(names))
    if enabled is not None:
        query = query.where(Source.enabled.is_(enabled))
    if status is not None:
        query = query.where(Source.status == status)
    after = decode_cursor(cursor)
    if after:
        query = query.where(Source.id > int(after[0]))
    async with backends.db.session() as session:
        rows = list((await session.execute(query)).scalars())
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return SourcePage(items=[_out(backends, r) for r in rows[:limit]], next_cursor=next_cursor)


@router.post("", response_model=SourceOut, status_code=201, summary="Register a source")
async def create_source(body: SourceCreate, request: Request, principal: Writer) -> SourceOut:
    backends = backends_of(request)
    target, config, credentials = validate_source(body.type, body.target, body.config, body.credentials)
    try:
        async with backends.db.session() as session:
            row = Source(
                name=body.name,
                type=body.type,
                target=target,
                config=config,
                credentials_encrypted=polling.encrypt_credentials(backends.secrets, credentials),
                interval_s=body.interval_s,
                enabled=body.enabled,
                status="unknown",
            )
            session.add(row)
            await session.flush()
            await record(session, principal, "source.create", "source", row.id, after=snapshot(row),
                         request=request)  # fmt: skip
    except IntegrityError:
        raise Problem(409, f"name: a source named {body.name!r} already exists") from None
    return _out(backends, row)


@router.post("/test", response_model=TestOutcome, summary="Test a source's settings before saving them")
async def test_new_source(body: SourceCreate, request: Request, principal: Writer) -> TestOutcome:
    backends = backends_of(request)
    target, config, credentials = validate_source(body.type, body.target, body.config, body.credentials)
    spec = SourceSpec(
        id=0,
        name=body.name,
        type=body.type,
        target=target,
        config=config,
        credentials_encrypted=polling.encrypt_credentials(backends.secrets, credentials),
        interval_s=body.interval_s,
    )
    outcome = await _run_test(backends, spec)
    async with backends.db.session() as session:
        await record(session, principal, "source.test", "source", None,
                     after={"name": body.name, "type": body.type, "target": target, "ok": outcome.ok},
                     request=request)  # fmt: skip
    return outcome


@router.get("/{source_id}", response_model=SourceOut, summary="One source")
async def get_source(source_id: int, request: Request, _: Reader) -> SourceOut:
    backends = backends_of(request)
    async with backends.db.session() as session:
        return _out(backends, await _get(session, source_id))


@router.get("/{source_id}/health", response_model=SourceHealth, summary="A source's health")
async def get_health(source_id: int, request: Request, _: Reader) -> SourceHealth:
    async with backends_of(request).db.session() as session:
        return _health(await _get(session, source_id))


@router.patch("/{source_id}", response_model=SourceOut, summary="Change a source")
async def update_source(source_id: int, body: SourceUpdate, request: Request, principal: Writer) -> SourceOut:
    backends = backends_of(request)
    changes = body.model_dump(exclude_unset=True)
    try:
        async with backends.db.session() as session:
            row = await _get(session, source_id)
            before = snapshot(row)
            try:
                credentials = polling.decrypt_credentials(backends.secrets, row.credentials_encrypted)
            except ValueError as exc:  # the secret key changed since they were stored
                if "credentials" not in changes:
                    raise Problem(409, f"credentials: {exc}; send every credential again") from None
                credentials = {}
            if "credentials" in changes:
                for key, value in (body.credentials or {}).items():
                    if value is None:
                        credentials.pop(key, None)
                    else:
                        credentials[key] = value
            config = dict(row.config or {}) if body.config is None else body.config
            target = changes.get("target", row.target)
            target, config, credentials = validate_source(row.type, target, config, credentials)
            row.target, row.config = target, config
            row.credentials_encrypted = polling.encrypt_credentials(backends.secrets, credentials)
            for key in ("name", "interval_s", "enabled"):
                if changes.get(key) is not None:
                    setattr(row, key, changes[key])
            await session.flush()
            await record(session, principal, "source.update", "source", row.id, before=before,
                         after=snapshot(row), request=request)  # fmt: skip
    except IntegrityError:
        raise Problem(409, f"name: a source named {body.name!r} already exists") from None
    return _out(backends, row)


@router.delete("/{source_id}", status_code=204, summary="Delete a source (and its ingest tokens)")
async def delete_source(source_id: int, request: Request, principal: Writer) -> None:
    async with backends_of(request).db.session() as session:
        row = await _get(session, source_id)
        before = snapshot(row)
        await session.delete(row)
        await record(session, principal, "source.delete", "source", source_id, before=before, request=request)
    forget_cached_tokens()


@router.post("/{source_id}/test", response_model=TestOutcome, summary="Poll once, publish nothing")
async def test_source(source_id: int, request: Request, principal: Writer) -> TestOutcome:
    backends = backends_of(request)
    async with backends.db.session() as session:
        spec = SourceSpec.from_row(await _get(session, source_id))
    outcome = await _run_test(backends, spec)
    async with backends.db.session() as session:
        await record(session, principal, "source.test", "source", source_id,
                     after={"ok": outcome.ok, "error": outcome.error}, request=request)  # fmt: skip
    return outcome


async def _run_test(backends: Backends, spec: SourceSpec) -> TestOutcome:
    kind = _kind(spec.type)
    if kind.kind == "push":
        raise Problem(
            422,
            f"type: {spec.type} sources push data to Vigil; there is nothing to poll. "
            "Mint a token (POST /api/v1/sources/{id}/tokens) and point the agent at Vigil.",
        )
    begin = time.perf_counter()
    try:
        prepared = polling.prepare(spec, backends.secrets)
        timeout_s = min(TEST_TIMEOUT_S, polling.poll_timeout_s(spec.interval_s))
        result = await polling.poll(spec, prepared, {}, timeout_s)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        message = str(exc) if isinstance(exc, CollectError) else f"{type(exc).__name__}: {exc}"
        return TestOutcome(ok=False, latency_ms=(time.perf_counter() - begin) * 1000, error=message)
    return TestOutcome(
        ok=True,
        latency_ms=(time.perf_counter() - begin) * 1000,
        points=len(result.points),
        alert_signals=len(result.alert_signals),
        logs=len(result.logs),
        unsupported=result.unsupported,
        sample=[
            PointSample(measurement=p.measurement, tags=p.tags, fields=p.fields, time_ns=p.time_ns)
            for p in result.points[:SAMPLE_SIZE]
        ],
        sample_alerts=[s.to_dict() for s in result.alert_signals[:SAMPLE_SIZE]],
        sample_logs=[r.to_dict() for r in result.logs[:SAMPLE_SIZE]],
    )


@router.get("/{source_id}/tokens", response_model=list[TokenOut], summary="Ingest tokens of a source")
async def list_source_tokens(source_id: int, request: Request, _: Reader) -> list[ApiToken]:
    async with backends_of(request).db.session() as session:
        await _get(session, source_id)
        query = select(ApiToken).where(ApiToken.source_id == source_id).order_by(ApiToken.id)
        return list((await session.execute(query)).scalars())


@router.post(
    "/{source_id}/tokens",
    response_model=SourceTokenCreated,
    status_code=201,
    summary="Mint an ingest token for a source, with agent config snippets",
)
async def create_source_token(
    source_id: int, body: SourceTokenCreate, request: Request, principal: Writer
) -> SourceTokenCreated:
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise Problem(422, "expires_at: must include a timezone, e.g. 2027-01-01T00:00:00Z")
    async with backends_of(request).db.session() as session:
        source = await _get(session, source_id)
        row, secret = await issue_token(
            session,
            principal.user_id,
            body.name or f"ingest:{source.name}",
            ["ingest"],
            source_id=source.id,
            expires_at=body.expires_at,
        )
        await record(session, principal, "source.token.create", "api_token", row.id, after=snapshot(row),
                     request=request)  # fmt: skip
        source_type, source_name = source.type, source.name
    token = TokenCreated(**TokenOut.model_validate(row).model_dump(), token=secret)
    base = str(request.base_url).rstrip("/")
    return SourceTokenCreated(
        token=token, snippets=snippets(source_type, source_id, source_name, base, secret)
    )


def snippets(source_type: str, source_id: int, source_name: str, base_url: str, token: str) -> dict[str, str]:
    """Agent configuration for a push source, pointing at this Vigil with this token."""
    scheme, _, host = base_url.partition("://")
    if source_type == "telegraf":
        return {
            "url": f"{base_url}/webhooks/telegraf",
            "telegraf.conf": (
                "[[outputs.http]]\n"
                f'  url = "{base_url}/webhooks/telegraf"\n'
                '  method = "POST"\n'
                '  data_format = "influx"\n'
                '  content_encoding = "gzip"\n'
                "  [outputs.http.headers]\n"
                f'    Authorization = "Bearer {token}"\n'
            ),
        }
    if source_type == "sentry":
        dsn = f"{scheme}://{token}@{host}/{source_id}"
        return {
            "dsn": dsn,
            "python": f'import sentry_sdk\nsentry_sdk.init(dsn="{dsn}")\n',
            "webhook_url": f"{base_url}/webhooks/sentry?token={token}",
        }
    if source_type == "alertmanager":
        return {
            "url": f"{base_url}/webhooks/alertmanager",
            "alertmanager.yml": (
                "receivers:\n"
                f"  - name: vigil-{source_name}\n"
                "    webhook_configs:\n"
                f"      - url: {base_url}/webhooks/alertmanager\n"
                "        send_resolved: true\n"
                "        http_config:\n"
                "          authorization:\n"
                "            type: Bearer\n"
                f"            credentials: {token}\n"
            ),
        }
    if source_type == "logs":
        return {
            "url": f"{base_url}/webhooks/logs",
            "curl": (
                f"curl -X POST {base_url}/webhooks/logs -H 'Authorization: Bearer {token}' "
                "-H 'Content-Type: application/x-ndjson' "
                '--data-binary \'{"host":"web1","service":"api","level":"error","message":"hello"}\''
            ),
        }
    if source_type == "syslog":
        return {
            "note": "Syslog carries no token: the listener attributes messages by sender. "
            "Use this token with POST /webhooks/logs for the same source.",
            "url": f"{base_url}/webhooks/logs",
        }
    return {}
