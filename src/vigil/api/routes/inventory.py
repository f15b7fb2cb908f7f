"""The inventory: hosts and services seen in any telemetry, with labels and first/last seen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import String, and_, cast, or_, select

from vigil.api.auth import Reader, backends_of
from vigil.api.pagination import decode_cursor, encode_cursor
from vigil.api.problems import Problem
from vigil.store.models import InventoryEntity

router = APIRouter(prefix="/api/v1/inventory", tags=["inventory"])

Kind = Literal["host", "service"]
Telemetry = Literal["metrics", "logs", "errors"]


class InventoryOut(BaseModel):
    id: int
    kind: str
    name: str
    labels: dict[str, str]
    telemetry: list[str]
    first_seen: datetime
    last_seen: datetime

    model_config = {"from_attributes": True}


class InventoryPage(BaseModel):
    items: list[InventoryOut]
    next_cursor: str | None


@router.get("", response_model=InventoryPage, summary="Hosts and services seen, by kind and name")
async def list_inventory(
    request: Request,
    principal: Reader,
    kind: Kind | None = None,
    q: str | None = Query(None, max_length=200, description="Text in the name"),
    telemetry: Telemetry | None = Query(None, description="Seen in this kind of telemetry"),
    label: list[str] | None = Query(None, description="key=value, repeatable; all must match"),
    seen_within_s: int | None = Query(None, ge=1, description="Seen in the last N seconds"),
    limit: int = Query(100, ge=1, le=500),
    cursor: str | None = None,
) -> InventoryPage:
    query = select(InventoryEntity).order_by(InventoryEntity.kind, InventoryEntity.name).limit(limit + 1)
    if kind:
        query = query.where(InventoryEntity.kind == kind)
    if q:
        query = query.where(InventoryEntity.name.icontains(q, autoescape=True))
    if telemetry:
        query = query.where(cast(InventoryEntity.telemetry, String).contains(f'"{telemetry}"'))
    labels: dict[str, str] = {}
    for pair in label or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise Problem(400, f"label: {pair!r} is not key=value")
        labels[key] = value
    if seen_within_s:
        query = query.where(InventoryEntity.last_seen >= datetime.now(UTC) - timedelta(seconds=seen_within_s))
    after = decode_cursor(cursor)
    if after is not None:
        if len(after) != 2 or not all(isinstance(v, str) for v in after):
            raise Problem(400, "cursor: not a cursor returned by this API")
        query = query.where(
            or_(
                InventoryEntity.kind > after[0],
                and_(InventoryEntity.kind == after[0], InventoryEntity.name > after[1]),
            )
        )
    items: list[InventoryEntity] = []
    more = False
    async with backends_of(request).db.session() as session:
        # Labels live in JSON, filtered here rather than with dialect-specific SQL; keep paging
        # until the page is full.
        while True:
            rows = list((await session.execute(query)).scalars())
            batch_more = len(rows) > limit
            rows = rows[:limit]
            for row in rows:
                if all((row.labels or {}).get(k) == v for k, v in labels.items()):
                    items.append(row)
                    if len(items) > limit:
                        break
            if len(items) > limit or not batch_more or not labels:
                more = len(items) > limit or batch_more
                break
            last = rows[-1]
            query = query.where(
                or_(
                    InventoryEntity.kind > last.kind,
                    and_(InventoryEntity.kind == last.kind, InventoryEntity.name > last.name),
                )
            )
    items = items[:limit]
    next_cursor = encode_cursor([items[-1].kind, items[-1].name]) if more and items else None
    return InventoryPage(items=[InventoryOut.model_validate(i) for i in items], next_cursor=next_cursor)


@router.get("/{entity_id}", response_model=InventoryOut, summary="One host or service")
async def get_entity(entity_id: int, request: Request, principal: Reader) -> InventoryOut:
    async with backends_of(request).db.session() as session:
        row = await session.get(InventoryEntity, entity_id)
    if row is None:
        raise Problem(404, f"inventory entity {entity_id} does not exist")
    return InventoryOut.model_validate(row)
