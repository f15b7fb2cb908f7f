"""Recording writes in the audit log, in the same transaction as the write itself."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from fastapi import Request
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.api.auth import Principal
from vigil.store.models import AuditEntry

# Never copied into the audit log, whatever the table.
_SECRET_COLUMNS = frozenset({"password_hash", "token_hash", "credentials_encrypted"})


def snapshot(obj: Any) -> dict[str, Any]:
    """A JSON-safe copy of a model row's columns, secrets masked, for before/after."""
    out: dict[str, Any] = {}
    for attr in inspect(obj).mapper.column_attrs:
        value = getattr(obj, attr.key)
        if attr.key in _SECRET_COLUMNS:
            value = "***" if value else None
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Enum):
            value = value.value
        out[attr.key] = value
    return out


async def record(
    session: AsyncSession,
    principal: Principal,
    action: str,
    target_type: str,
    target_id: Any = None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    request: Request | None = None,
) -> None:
    session.add(
        AuditEntry(
            actor=principal.actor,
            actor_type=principal.kind,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            before=before,
            after=after,
            request_id=getattr(request.state, "request_id", None) if request else None,
            client_ip=request.client.host if request and request.client else None,
        )
    )
