"""Metrics: the series query the metrics page draws, the catalogue, and prediction rules.

``GET /api/v1/metrics/series?measurement=cpu&field=usage_user&tag.host=web-03&start=&end=&interval=``
returns every series matching the tag filters (``tag.<name>=<value>``, repeatable) with its
data, the detector's baseline band, anomaly markers and, for resource series, the forecast
curve (``vigil.metrics.query``). ``series=cpu.usage_user{host=web-03}`` names one series by
its key instead. Times are ISO 8601; the interval defaults to about 500 buckets over the range.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vigil.api.audit import record, snapshot
from vigil.api.auth import Reader, Writer, backends_of
from vigil.api.problems import Problem
from vigil.domain.metrics import Aggregation
from vigil.metrics.baselines import BASELINE_MEASUREMENT
from vigil.metrics.query import SeriesRequest, query_series
from vigil.metrics.rules import DEFAULT_RULES, load_rules
from vigil.metrics.series import parse_series_key
from vigil.store.metrics.base import MetricStoreError, MetricStoreUnavailable
from vigil.store.models import PredictionRule

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"])

DEFAULT_RANGE = timedelta(hours=6)
TARGET_BUCKETS = 500
MAX_BUCKETS = 10_000
NICE_INTERVALS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
TAG_PREFIX = "tag."


def _ns(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000) * 1000


def _auto_interval(span_s: float) -> int:
    wanted = span_s / TARGET_BUCKETS
    return next((i for i in NICE_INTERVALS if i >= wanted), math.ceil(wanted))


async def _store_call(coro: Any) -> Any:
    try:
        return await coro
    except MetricStoreUnavailable as exc:
        raise Problem(503, f"metric store unavailable: {exc}") from None
    except MetricStoreError as exc:
        raise Problem(422, str(exc)) from None


# --- series ---------------------------------------------------------------------------------------


@router.get("/series", summary="Series data with baseline band, anomaly markers and forecast")
async def get_series(
    request: Request,
    _: Reader,
    measurement: str | None = Query(None, min_length=1, max_length=255),
    field: str | None = Query(None, min_length=1, max_length=255),
    series: str | None = Query(None, max_length=2048, description="A series key instead of the three above"),
    start: datetime | None = Query(None, description="From (inclusive), ISO 8601; default: end - 6 h"),
    end: datetime | None = Query(None, description="To (exclusive), ISO 8601; default: now"),
    interval: int | None = Query(None, ge=1, le=86400 * 7, description="Bucket size in seconds"),
    aggregation: Literal["mean", "min", "max", "last", "sum", "count"] = Query("mean"),
    forecast: bool = Query(True, description="Include the forecast curve of resource series"),
    max_series: int = Query(20, ge=1, le=100),
) -> dict[str, Any]:
    tags: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name.startswith(TAG_PREFIX):
            tag = name[len(TAG_PREFIX) :]
            if not tag or not value:
                raise Problem(422, f"{name}: tag filters are tag.<name>=<value>")
            if tag in tags and tags[tag] != value:
                raise Problem(422, f"{name}: given twice with different values")
            tags[tag] = value
    if series is not None:
        if measurement or field:
            raise Problem(422, "series: give either series or measurement and field, not both")
        try:
            measurement, field, key_tags = parse_series_key(series)
        except ValueError as exc:
            raise Problem(422, f"series: {exc}") from None
        tags = {**key_tags, **tags}
    if not measurement:
        raise Problem(422, "measurement: required (or series)")
    if not field:
        raise Problem(422, "field: required (or series)")
    end_at = end or datetime.now(UTC)
    start_at = start or end_at - DEFAULT_RANGE
    start_ns, end_ns = _ns(start_at), _ns(end_at)
    if end_ns <= start_ns:
        raise Problem(422, "end: must be after start")
    span_s = (end_ns - start_ns) / 1e9
    interval_s = interval or _auto_interval(span_s)
    if span_s / interval_s > MAX_BUCKETS:
        raise Problem(422, f"interval: {interval_s}s gives more than {MAX_BUCKETS} points; widen it")
    backends = backends_of(request)
    rules = await load_rules(backends.db)
    agg: Aggregation = aggregation
    return await _store_call(
        query_series(
            backends.metrics,
            backends.db,
            rules,
            SeriesRequest(
                measurement=measurement,
                field=field,
                start_ns=start_ns,
                end_ns=end_ns,
                interval_s=interval_s,
                tags=tags,
                aggregation=agg,
                max_series=max_series,
                forecast=forecast,
            ),
        )
    )


# --- catalogue ------------------------------------------------------------------------------------


class Names(BaseModel):
    items: list[str]


class TagSets(BaseModel):
    items: list[dict[str, str]]
    truncated: bool


@router.get("/measurements", response_model=Names, summary="Measurement names")
async def measurements(
    request: Request,
    _: Reader,
    internal: bool = Query(False, description=f"Include Vigil's own ({BASELINE_MEASUREMENT})"),
) -> Names:
    names = await _store_call(backends_of(request).metrics.measurements())
    return Names(items=sorted(n for n in names if internal or n != BASELINE_MEASUREMENT))


@router.get("/fields", response_model=Names, summary="Field names of a measurement")
async def fields(
    request: Request, _: Reader, measurement: str = Query(..., min_length=1, max_length=255)
) -> Names:
    return Names(items=sorted(await _store_call(backends_of(request).metrics.field_keys(measurement))))


@router.get("/tag-keys", response_model=Names, summary="Tag names of a measurement")
async def tag_keys(
    request: Request, _: Reader, measurement: str = Query(..., min_length=1, max_length=255)
) -> Names:
    return Names(items=sorted(await _store_call(backends_of(request).metrics.tag_keys(measurement))))


@router.get("/tag-values", response_model=Names, summary="Values of one tag of a measurement")
async def tag_values(
    request: Request,
    _: Reader,
    measurement: str = Query(..., min_length=1, max_length=255),
    key: str = Query(..., min_length=1, max_length=255),
) -> Names:
    return Names(items=sorted(await _store_call(backends_of(request).metrics.tag_values(measurement, key))))


@router.get("/tag-sets", response_model=TagSets, summary="Distinct tag sets (series) of a measurement")
async def tag_sets(
    request: Request,
    _: Reader,
    measurement: str = Query(..., min_length=1, max_length=255),
    limit: int = Query(1000, ge=1, le=10_000),
) -> TagSets:
    found = await _store_call(backends_of(request).metrics.series(measurement))
    ordered = sorted(found, key=lambda tags: sorted(tags.items()))
    return TagSets(items=ordered[:limit], truncated=len(ordered) > limit)


# --- prediction rules -----------------------------------------------------------------------------


class RuleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    measurement: str = Field(min_length=1, max_length=255, description="Glob, e.g. disk or *pool*")
    field: str = Field(min_length=1, max_length=255, description="Glob, e.g. used_percent")
    tags: dict[str, str] = Field(default_factory=dict, description="Tag name -> glob")
    action: Literal["predict", "ignore"] = "predict"
    direction: Literal["rising", "falling"] = "rising"
    threshold: float = 100.0
    horizon_s: float = Field(7 * 86400.0, ge=3600, le=366 * 86400, description="Open within this time")
    title: str | None = Field(None, max_length=255, description="Template: {host}, {eta}, {interval}...")
    priority: int = Field(100, ge=0, le=100_000, description="Lower runs first")
    enabled: bool = True

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 20:
            raise ValueError("at most 20 tag patterns")
        if any(not k or len(k) > 255 or len(v) > 255 for k, v in value.items()):
            raise ValueError("tag names must be 1-255 characters, patterns at most 255")
        return value


class RuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=128)
    measurement: str | None = Field(None, min_length=1, max_length=255)
    field: str | None = Field(None, min_length=1, max_length=255)
    tags: dict[str, str] | None = None
    action: Literal["predict", "ignore"] | None = None
    direction: Literal["rising", "falling"] | None = None
    threshold: float | None = None
    horizon_s: float | None = Field(None, ge=3600, le=366 * 86400)
    title: str | None = Field(None, max_length=255)
    priority: int | None = Field(None, ge=0, le=100_000)
    enabled: bool | None = None

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        return None if value is None else RuleBody._finite(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else RuleBody._tags(value)


class RuleOut(BaseModel):
    id: int
    name: str
    measurement: str
    field: str
    tags: dict[str, str]
    action: str
    direction: str
    threshold: float
    horizon_s: float
    title: str | None
    priority: int
    enabled: bool
    created_at: datetime
    updated_at: datetime

    model_config = {"from_attributes": True}


class RuleList(BaseModel):
    items: list[RuleOut] = Field(description="Stored rules, in the order they are tried")
    defaults: list[dict[str, Any]] = Field(description="Built-in rules, tried after the stored ones")


async def _rule(session: Any, rule_id: int) -> PredictionRule:
    row = await session.get(PredictionRule, rule_id)
    if row is None:
        raise Problem(404, f"prediction rule {rule_id} does not exist")
    return row


@router.get("/prediction-rules", response_model=RuleList, summary="Which series get exhaustion forecasts")
async def list_rules(request: Request, _: Reader) -> RuleList:
    async with backends_of(request).db.session() as session:
        rows = (
            await session.execute(select(PredictionRule).order_by(PredictionRule.priority, PredictionRule.id))
        ).scalars()
        items = [RuleOut.model_validate(r) for r in rows]
    return RuleList(items=items, defaults=[r.to_dict() for r in DEFAULT_RULES])


@router.post("/prediction-rules", response_model=RuleOut, status_code=201, summary="Add a prediction rule")
async def create_rule(body: RuleBody, request: Request, principal: Writer) -> RuleOut:
    try:
        async with backends_of(request).db.session() as session:
            row = PredictionRule(**body.model_dump())
            session.add(row)
            await session.flush()
            await record(
                session, principal, "prediction_rule.create", "prediction_rule", row.id,
                after=snapshot(row), request=request,
            )  # fmt: skip
    except IntegrityError:
        raise Problem(409, f"name: a prediction rule named {body.name!r} already exists") from None
    return RuleOut.model_validate(row)


@router.get("/prediction-rules/{rule_id}", response_model=RuleOut, summary="One prediction rule")
async def get_rule(rule_id: int, request: Request, _: Reader) -> RuleOut:
    async with backends_of(request).db.session() as session:
        return RuleOut.model_validate(await _rule(session, rule_id))


@router.patch("/prediction-rules/{rule_id}", response_model=RuleOut, summary="Change a prediction rule")
async def update_rule(rule_id: int, body: RuleUpdate, request: Request, principal: Writer) -> RuleOut:
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None and name != "title":
            raise Problem(422, f"{name}: may not be null")
    try:
        async with backends_of(request).db.session() as session:
            row = await _rule(session, rule_id)
            before = snapshot(row)
            for name, value in changes.items():
                setattr(row, name, value)
            await session.flush()
            await record(
                session, principal, "prediction_rule.update", "prediction_rule", row.id,
                before=before, after=snapshot(row), request=request,
            )  # fmt: skip
    except IntegrityError:
        raise Problem(409, f"name: a prediction rule named {body.name!r} already exists") from None
    return RuleOut.model_validate(row)


@router.delete("/prediction-rules/{rule_id}", status_code=204, summary="Delete a prediction rule")
async def delete_rule(rule_id: int, request: Request, principal: Writer) -> None:
    async with backends_of(request).db.session() as session:
        row = await _rule(session, rule_id)
        before = snapshot(row)
        await session.delete(row)
        await record(
            session,
            principal,
            "prediction_rule.delete",
            "prediction_rule",
            rule_id,
            before=before,
            request=request,
        )
