"""Log clusters (templates): counts, series, examples, parameter statistics, classification."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from vigil.api.audit import record, snapshot
from vigil.api.auth import Reader, Writer, backends_of
from vigil.api.pagination import decode_cursor, encode_cursor
from vigil.api.problems import Problem
from vigil.api.routes.logs import FailureType, Severity
from vigil.logs import clusters
from vigil.logs.clusters import ClusterFilters
from vigil.store.models.logs import LogTemplate

router = APIRouter(prefix="/api/v1/log-clusters", tags=["logs"])

MAX_BUCKETS = 10_000


@router.get("", summary="Log clusters (templates), largest or most recent first")
async def list_clusters(
    request: Request,
    _: Reader,
    source: list[str] | None = Query(None),
    failure_type: list[FailureType] | None = Query(None),
    severity: list[Severity] | None = Query(None),
    q: str | None = Query(None, max_length=500, description="Substring of the template text"),
    errors_only: bool = Query(False, description="Only error-class clusters"),
    sort: Literal["count", "last_seen", "first_seen"] = Query("count"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
) -> dict[str, Any]:
    after = decode_cursor(cursor)
    key: tuple[int, int] | None = None
    if after is not None:
        try:
            key = (int(after[0]), int(after[1]))
        except (IndexError, TypeError, ValueError):
            raise Problem(400, "cursor: not a cursor returned by this API") from None
    filters = ClusterFilters(
        sources=tuple(source or ()),
        failure_types=tuple(failure_type or ()),
        severities=tuple(severity or ()),
        q=q,
        errors_only=errors_only,
    )
    items, next_key = await clusters.list_clusters(
        backends_of(request).db, filters, sort=sort, limit=limit, after=key
    )
    return {"items": items, "next_cursor": encode_cursor(list(next_key)) if next_key else None}


@router.get("/{cluster_id}", summary="One cluster: examples, parameter statistics, merged templates")
async def get_cluster(request: Request, _: Reader, cluster_id: int) -> dict[str, Any]:
    result = await clusters.get_cluster(backends_of(request).db, cluster_id)
    if result is None:
        raise Problem(404, f"cluster_id: no log cluster {cluster_id}")
    return result


def _ns(value: datetime | None, default: int) -> int:
    if value is None:
        return default
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000) * 1000


@router.get("/{cluster_id}/series", summary="Lines per time bucket")
async def cluster_series(
    request: Request,
    _: Reader,
    cluster_id: int,
    start: datetime | None = Query(None, description="Default: 24 hours ago"),
    end: datetime | None = Query(None, description="Default: now"),
    interval: int = Query(300, ge=1, le=86_400 * 7, description="Bucket width in seconds"),
) -> dict[str, Any]:
    now = time.time_ns()
    end_ns = _ns(end, now)
    start_ns = _ns(start, end_ns - 86_400 * 1_000_000_000)
    if end_ns <= start_ns:
        raise Problem(422, "end: must be after start")
    if (end_ns - start_ns) // (interval * 1_000_000_000) > MAX_BUCKETS:
        raise Problem(422, f"interval: too small for this range (more than {MAX_BUCKETS} buckets)")
    db = backends_of(request).db
    async with db.session() as session:
        if await session.get(LogTemplate, cluster_id) is None:
            raise Problem(404, f"cluster_id: no log cluster {cluster_id}")
    points = await clusters.cluster_series(db, cluster_id, start_ns, end_ns, interval)
    return {"cluster_id": cluster_id, "interval_s": interval, "points": points}


class ClassificationIn(BaseModel):
    failure_type: FailureType | None = None
    severity: Severity | None = None
    component: str | None = Field(None, max_length=64)


@router.put("/{cluster_id}/classification", summary="Correct a cluster's label (it sticks)")
async def correct_classification(
    request: Request, principal: Writer, cluster_id: int, body: ClassificationIn
) -> dict[str, Any]:
    if body.failure_type is None and body.severity is None and body.component is None:
        raise Problem(422, "failure_type: give at least one of failure_type, severity, component")
    db = backends_of(request).db
    async with db.session() as session:
        row = await session.get(LogTemplate, cluster_id)
        if row is None:
            raise Problem(404, f"cluster_id: no log cluster {cluster_id}")
        before = snapshot(row)
        row = await clusters.set_classification(
            session,
            cluster_id,
            failure_type=body.failure_type,
            severity=body.severity,
            component=body.component,
            actor=principal.actor,
        )
        assert row is not None
        await record(
            session, principal, "log_cluster.classify", "log_cluster", cluster_id,
            before=before, after=snapshot(row), request=request,
        )  # fmt: skip
    result = await clusters.get_cluster(db, cluster_id)
    assert result is not None
    return result
