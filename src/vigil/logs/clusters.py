"""Clusters: templates with their merged predecessors folded in, counts over time, examples,
parameter statistics and classification (including operators' corrections)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.store.db import Database
from vigil.store.models.logs import LogLine, LogTemplate
from vigil.store.types import utcnow

PARAM_SAMPLE_LINES = 5_000
TOP_VALUES = 5
SORTS = ("count", "last_seen", "first_seen")


@dataclass(frozen=True, slots=True)
class ClusterFilters:
    sources: tuple[str, ...] = ()
    failure_types: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    q: str | None = None  # substring of the template text
    errors_only: bool = False


def _aggregates() -> Any:
    return (
        select(
            LogTemplate.canonical_id.label("cid"),
            func.sum(LogTemplate.count).label("total"),
            func.min(LogTemplate.first_seen_ns).label("first_ns"),
            func.max(LogTemplate.last_seen_ns).label("last_ns"),
        )
        .group_by(LogTemplate.canonical_id)
        .subquery()
    )


def cluster_dict(row: LogTemplate, total: int, first_ns: int, last_ns: int) -> dict[str, Any]:
    return {
        "id": row.id,
        "key": f"{row.source}:{row.local_id}",
        "source": row.source,
        "template": row.template,
        "count": int(total),
        "first_seen_ns": int(first_ns),
        "last_seen_ns": int(last_ns),
        "examples": list(row.examples or []),
        "classification": {
            "failure_type": row.failure_type,
            "severity": row.severity,
            "component": row.component,
            "method": row.label_method,
            "confidence": row.label_confidence,
            "reason": row.label_reason,
            "labelled_by": row.labelled_by,
            "labelled_at": row.labelled_at.isoformat() if row.labelled_at else None,
        },
    }


async def list_clusters(
    db: Database,
    filters: ClusterFilters,
    *,
    sort: str = "count",
    limit: int = 50,
    after: tuple[int, int] | None = None,
) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
    """Canonical templates, largest (or most recent) first, with keyset pages on (value, id)."""
    agg = _aggregates()
    value = {"count": agg.c.total, "last_seen": agg.c.last_ns, "first_seen": agg.c.first_ns}[sort]
    query = select(LogTemplate, agg.c.total, agg.c.first_ns, agg.c.last_ns).join(
        agg, agg.c.cid == LogTemplate.id
    )
    if filters.sources:
        query = query.where(LogTemplate.source.in_(filters.sources))
    if filters.failure_types:
        query = query.where(LogTemplate.failure_type.in_(filters.failure_types))
    if filters.severities:
        query = query.where(LogTemplate.severity.in_(filters.severities))
    if filters.errors_only:
        query = query.where(
            (LogTemplate.failure_type != "none") | LogTemplate.severity.in_(("critical", "high"))
        )
    if filters.q:
        escaped = filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(LogTemplate.template.ilike(f"%{escaped}%", escape="\\"))
    if after is not None:
        query = query.where((value < after[0]) | ((value == after[0]) & (LogTemplate.id < after[1])))
    query = query.order_by(value.desc(), LogTemplate.id.desc()).limit(limit + 1)
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    items = [cluster_dict(row[0], row[1], row[2], row[3]) for row in rows[:limit]]
    key = {"count": "count", "last_seen": "last_seen_ns", "first_seen": "first_seen_ns"}[sort]
    next_key = (items[-1][key], items[-1]["id"]) if len(rows) > limit else None
    return items, next_key


async def get_cluster(db: Database, cluster_id: int) -> dict[str, Any] | None:
    """A cluster with its merged members and the top values of each parameter position."""
    async with db.session() as session:
        row = await session.get(LogTemplate, cluster_id)
        if row is None:
            return None
        if row.canonical_id not in (None, row.id):
            # Asked for a template that was merged away: answer with its survivor.
            survivor = await session.get(LogTemplate, row.canonical_id)
            if survivor is not None:
                row = survivor
        members = list(
            (await session.execute(select(LogTemplate).where(LogTemplate.canonical_id == row.id))).scalars()
        )
        total = sum(m.count for m in members)
        first_ns = min((m.first_seen_ns for m in members), default=row.first_seen_ns)
        last_ns = max((m.last_seen_ns for m in members), default=row.last_seen_ns)
        result = cluster_dict(row, total, first_ns, last_ns)
        result["merged"] = [
            {"id": m.id, "key": f"{m.source}:{m.local_id}", "template": m.template, "count": m.count}
            for m in members
            if m.id != row.id
        ]
        result["parameters"] = await _parameter_stats(session, row, [m.id for m in members])
    return result


async def _parameter_stats(
    session: AsyncSession, row: LogTemplate, member_ids: list[int]
) -> list[dict[str, Any]]:
    """Top values per ``<*>`` position over the cluster's most recent lines (those whose
    parameters fit the current template; older lines may predate a variable)."""
    positions = row.template.count("<*>")
    if positions == 0:
        return []
    recent = (
        await session.execute(
            select(LogLine.params)
            .where(LogLine.template_id.in_(member_ids))
            .order_by(LogLine.time_ns.desc())
            .limit(PARAM_SAMPLE_LINES)
        )
    ).scalars()
    counters = [Counter[str]() for _ in range(positions)]
    sampled = 0
    for params in recent:
        if not params or len(params) != positions:
            continue
        sampled += 1
        for i, value in enumerate(params):
            counters[i][str(value)] += 1
    return [
        {
            "position": i,
            "distinct": len(counter),
            "sampled": sampled,
            "top": [{"value": v, "count": n} for v, n in counter.most_common(TOP_VALUES)],
        }
        for i, counter in enumerate(counters)
    ]


async def cluster_series(
    db: Database, cluster_id: int, start_ns: int, end_ns: int, interval_s: int
) -> list[dict[str, int]]:
    """Lines per time bucket (aligned to the epoch), zeros included."""
    bucket = interval_s * 1_000_000_000
    start_ns -= start_ns % bucket
    members = select(LogTemplate.id).where(LogTemplate.canonical_id == cluster_id)
    async with db.session() as session:
        rows = (
            await session.execute(
                select((LogLine.time_ns // bucket).label("slot"), func.count())
                .where(
                    LogLine.template_id.in_(members), LogLine.time_ns >= start_ns, LogLine.time_ns < end_ns
                )
                .group_by("slot")
            )
        ).all()
    counts = {int(r[0]) * bucket: int(r[1]) for r in rows}
    return [{"time_ns": t, "count": counts.get(t, 0)} for t in range(start_ns, end_ns, bucket)]


async def set_classification(
    session: AsyncSession,
    cluster_id: int,
    *,
    failure_type: str | None,
    severity: str | None,
    component: str | None,
    actor: str,
) -> LogTemplate | None:
    """An operator's label: it sticks (rules and models never overwrite method 'operator')."""
    row = await session.get(LogTemplate, cluster_id)
    if row is None:
        return None
    values: dict[str, Any] = {
        "label_method": "operator",
        "label_confidence": 1.0,
        "labelled_by": actor,
        "labelled_at": utcnow(),
        "label_reason": "corrected by an operator",
    }
    if failure_type is not None:
        values["failure_type"] = failure_type
    if severity is not None:
        values["severity"] = severity
    if component is not None:
        values["component"] = component or None
    await session.execute(update(LogTemplate).where(LogTemplate.id == row.id).values(**values))
    await session.refresh(row)
    return row
