"""Reading the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from vigil.api.auth import Admin, backends_of
from vigil.api.pagination import decode_cursor, encode_cursor
from vigil.store.models import AuditEntry

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    actor_type: str
    action: str
    target_type: str
    target_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    client_ip: str | None

    model_config = {"from_attributes": True}


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None


@router.get("", response_model=AuditPage, summary="Audit log, newest first")
async def list_audit(
    request: Request,
    _: Admin,
    action: str | None = Query(None, description="Exact action, e.g. source.create"),
    actor: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
) -> AuditPage:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    for column, value in (
        (AuditEntry.action, action),
        (AuditEntry.actor, actor),
        (AuditEntry.target_type, target_type),
        (AuditEntry.target_id, target_id),
    ):
        if value is not None:
            query = query.where(column == value)
    after = decode_cursor(cursor)
    if after:
        query = query.where(AuditEntry.id < int(after[0]))
    async with backends_of(request).db.session() as session:
        rows = list((await session.execute(query)).scalars())
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return AuditPage(items=[AuditOut.model_validate(r) for r in rows[:limit]], next_cursor=next_cursor)
