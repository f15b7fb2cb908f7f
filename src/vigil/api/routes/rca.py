"""Root-cause analysis of incidents: read the current one, re-run it, its history, similar
past incidents. Every RCA says how it was made: ``generated_by`` is ``"rules"`` or
``"model:<name>"``, and ``fallback_reason`` says why a configured model was not used."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from vigil.api.audit import record
from vigil.api.auth import Reader, Writer, backends_of
from vigil.api.pagination import decode_cursor, encode_cursor
from vigil.api.problems import Problem
from vigil.rca.service import result_dict
from vigil.rca.wiring import rca_service_for
from vigil.store.models import Incident, RCAResult

router = APIRouter(prefix="/api/v1/incidents", tags=["root cause"])


class NextStep(BaseModel):
    action: str
    evidence_ids: list[str]


class RCAOut(BaseModel):
    id: int
    incident_id: int
    created_at: datetime
    trigger: str
    generated_by: str = Field(description='"rules", or "model:<name>" when a model wrote the explanation')
    model_used: bool
    fallback_reason: str | None = Field(description="Why a configured model's answer was not used")
    summary: str
    explanation: str
    next_steps: list[NextStep]
    citations: list[str] = Field(description="Evidence ids the explanation cites")
    hypotheses: list[dict[str, Any]] = Field(description="Candidate causes, best first, with their evidence")
    evidence: list[dict[str, Any]] = Field(description="Evidence in order of onset (E1 came first)")
    similar_incidents: list[dict[str, Any]]
    notices: list[str] = Field(description="Sources not searched, truncations, rejected model answers")
    window: dict[str, str]
    alert_count: int
    duration_ms: float


class RCABrief(BaseModel):
    id: int
    created_at: datetime
    trigger: str
    generated_by: str
    fallback_reason: str | None
    summary: str


class RCAHistory(BaseModel):
    items: list[RCABrief]
    next_cursor: str | None


class RunRCA(BaseModel):
    use_llm: bool = Field(True, description="false: the deterministic analysis only, even with a model")


class SimilarOut(BaseModel):
    incident_id: int
    title: str
    similarity: float
    resolved_at: str | None
    resolution: str | None = Field(description="What fixed it: the resolve note, or how its alerts cleared")
    cause: str | None


async def _incident(request: Request, incident_id: int) -> Incident:
    async with backends_of(request).db.session() as session:
        incident = await session.get(Incident, incident_id)
    if incident is None:
        raise Problem(404, f"incident_id: incident {incident_id} does not exist")
    return incident


@router.get("/{incident_id}/rca", response_model=RCAOut, summary="The incident's current root-cause analysis")
async def get_rca(incident_id: int, request: Request, _: Reader) -> dict[str, Any]:
    await _incident(request, incident_id)
    row = await rca_service_for(backends_of(request)).latest(incident_id)
    if row is None:
        raise Problem(
            404,
            f"incident_id: incident {incident_id} has no root-cause analysis yet; "
            f"POST /api/v1/incidents/{incident_id}/rca runs one",
        )
    return result_dict(row)


@router.post("/{incident_id}/rca", response_model=RCAOut, summary="Run the root-cause analysis again, now")
async def run_rca(
    incident_id: int, request: Request, principal: Writer, body: RunRCA | None = Body(None)
) -> dict[str, Any]:
    await _incident(request, incident_id)
    backends = backends_of(request)
    try:
        row = await rca_service_for(backends).analyze(
            incident_id, trigger="api", use_llm=body.use_llm if body is not None else True
        )
    except KeyError:
        raise Problem(404, f"incident_id: incident {incident_id} does not exist") from None
    async with backends.db.session() as session:
        await record(
            session,
            principal,
            "incident.rca",
            "incident",
            incident_id,
            after={"rca_id": row.id, "generated_by": row.generated_by, "summary": row.summary},
            request=request,
        )
    return result_dict(row)


@router.get("/{incident_id}/rca/history", response_model=RCAHistory, summary="Earlier analyses, newest first")
async def rca_history(
    incident_id: int,
    request: Request,
    _: Reader,
    limit: int = Query(20, ge=1, le=200),
    cursor: str | None = None,
) -> RCAHistory:
    await _incident(request, incident_id)
    query = (
        select(RCAResult)
        .where(RCAResult.incident_id == incident_id)
        .order_by(RCAResult.id.desc())
        .limit(limit + 1)
    )
    after = decode_cursor(cursor)
    if after:
        try:
            query = query.where(RCAResult.id < int(after[0]))
        except (TypeError, ValueError):
            raise Problem(400, "cursor: not a cursor returned by this API") from None
    async with backends_of(request).db.session() as session:
        rows = list((await session.execute(query)).scalars())
    return RCAHistory(
        items=[
            RCABrief(
                id=r.id,
                created_at=r.created_at,
                trigger=r.trigger,
                generated_by=r.generated_by,
                fallback_reason=r.fallback_reason,
                summary=r.summary,
            )
            for r in rows[:limit]
        ],
        next_cursor=encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None,
    )


@router.get(
    "/{incident_id}/similar",
    response_model=list[SimilarOut],
    summary="Similar resolved incidents and what fixed them",
)
async def similar_incidents(
    incident_id: int, request: Request, _: Reader, limit: int = Query(5, ge=1, le=50)
) -> list[dict[str, Any]]:
    await _incident(request, incident_id)
    service = rca_service_for(backends_of(request))
    if service.memory is None:
        raise Problem(503, "similar incidents need an embedder; check VIGIL_EMBEDDINGS")
    return [s.to_dict() for s in await service.memory.similar(incident_id, limit)]
