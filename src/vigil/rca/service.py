"""``RCAService``: one incident's analysis end to end, stored in ``rca_results``.

gather records → evidence (ids in onset order) → deterministic ranking → explanation (model when
configured and answering with valid citations, rules otherwise, the reason recorded) → similar
past incidents → one stored row. Each run adds a row; the newest is the incident's RCA.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Select, select

from vigil.analytics.rca_ranking import Evidence, Hypothesis, Scope, rank, timeline
from vigil.llm.client import LLM, LLMError
from vigil.llm.embeddings import Embedder
from vigil.llm.structured import InvalidOutput
from vigil.rca.evidence import build_evidence
from vigil.rca.explain import Explanation, model_explanation, rules_explanation
from vigil.rca.gather import ChangeSource, Gathered, GatherOptions, TopologyLoader, gather
from vigil.rca.similar import IncidentMemoryStore
from vigil.store.db import Database
from vigil.store.models import Incident, RCAResult
from vigil.store.vectors.base import VectorStore

log = logging.getLogger(__name__)

STORED_HYPOTHESES = 10
STORED_EVIDENCE = 200


@dataclass(frozen=True)
class RCAOptions:
    gather: GatherOptions = field(default_factory=GatherOptions)
    similar_limit: int = 5


def result_dict(row: RCAResult) -> dict[str, Any]:
    """An RCA as the API shows it."""
    return {
        "id": row.id,
        "incident_id": row.incident_id,
        "created_at": row.created_at.isoformat(),
        "trigger": row.trigger,
        "generated_by": row.generated_by,
        "model_used": row.generated_by != "rules",
        "fallback_reason": row.fallback_reason,
        "summary": row.summary,
        "explanation": row.explanation,
        "next_steps": row.next_steps,
        "citations": row.citations,
        "hypotheses": row.hypotheses,
        "evidence": row.evidence,
        "similar_incidents": row.similar,
        "notices": row.notices,
        "window": {"start": row.window_start.isoformat(), "end": row.window_end.isoformat()},
        "alert_count": row.alert_count,
        "duration_ms": row.duration_ms,
    }


def latest_analysis(incident_id: int, *columns: Any) -> Select[Any]:
    """The query for the incident's latest stored analysis, selecting ``columns`` (the whole row
    when given ``RCAResult``)."""
    return (
        select(*columns)
        .where(RCAResult.incident_id == incident_id)
        .order_by(RCAResult.created_at.desc(), RCAResult.id.desc())
        .limit(1)
    )


def _rank_by_rules(found: Gathered) -> tuple[list[Evidence], list[Hypothesis], Explanation]:
    evidence = build_evidence(
        alerts=found.alerts,
        templates=found.templates,
        error_groups=found.error_groups,
        releases=found.releases,
        changes=found.changes,
        window_start=found.window_start.timestamp(),
    )
    hypotheses = rank(evidence, found.scope)
    return evidence, hypotheses, rules_explanation(hypotheses, evidence, found.scope)


class RCAService:
    def __init__(
        self,
        db: Database,
        *,
        llm: LLM | None = None,
        memory: IncidentMemoryStore | None = None,
        topology: TopologyLoader | None = None,
        change_sources: Sequence[ChangeSource] = (),
        options: RCAOptions | None = None,
    ) -> None:
        self.db = db
        self.llm = llm
        self.memory = memory
        self.topology = topology
        self.change_sources = list(change_sources)
        self.options = options or RCAOptions()

    @classmethod
    def build(
        cls,
        db: Database,
        vectors: VectorStore,
        embedder: Embedder | None,
        llm: LLM | None,
        **kwargs: Any,
    ) -> RCAService:
        memory = IncidentMemoryStore(db, vectors, embedder) if embedder is not None else None
        if "topology" not in kwargs:
            kwargs["topology"] = alerting_topology(db)
        return cls(db, llm=llm, memory=memory, **kwargs)

    async def latest(self, incident_id: int) -> RCAResult | None:
        async with self.db.session() as session:
            return (await session.execute(latest_analysis(incident_id, RCAResult))).scalar_one_or_none()

    async def analyze(self, incident_id: int, trigger: str = "api", use_llm: bool = True) -> RCAResult:
        """Analyse the incident now and store the result; KeyError if it does not exist."""
        begin = time.perf_counter()
        found = await gather(self.db, incident_id, self.options.gather, self.topology, self.change_sources)
        # Pure computation, ~0.1 s for an incident of a thousand alerts: in a thread, so the
        # worker's event loop (the alerting stages, live updates) is not held for all of it.
        evidence, hypotheses, explanation = await asyncio.to_thread(_rank_by_rules, found)
        if self.llm is not None and use_llm and hypotheses:
            async with self.db.session() as session:
                incident = await session.get(Incident, incident_id)
                title = incident.title if incident is not None else f"incident {incident_id}"
            explanation = await self._explain(title, hypotheses, evidence, found.scope, explanation)
        similar: list[dict[str, Any]] = []
        notices = list(found.notices) + explanation.notices
        if self.memory is not None:
            try:
                found_similar = await self.memory.similar(incident_id, self.options.similar_limit)
                similar = [s.to_dict() for s in found_similar]
            except Exception as exc:
                notices.append(f"similar incidents: not searched ({type(exc).__name__}: {str(exc)[:120]})")
        if len(evidence) > STORED_EVIDENCE:
            notices.append(f"evidence: {len(evidence)} items found, the first {STORED_EVIDENCE} stored")
        order = {e["id"]: e for e in timeline(evidence, found.scope)}
        stored_evidence = []
        for e in evidence[:STORED_EVIDENCE]:
            item = e.to_dict()
            item["lead_s"] = order[e.id]["lead_s"]
            stored_evidence.append(item)
        hypothesis_dicts = [h.to_dict() for h in hypotheses[:STORED_HYPOTHESES]]
        if explanation.chosen_rank is not None:
            for h in hypothesis_dicts:
                h["chosen"] = h["rank"] == explanation.chosen_rank
        row = RCAResult(
            incident_id=incident_id,
            trigger=trigger[:32],
            generated_by=explanation.generated_by,
            fallback_reason=explanation.fallback_reason,
            summary=explanation.summary,
            explanation=explanation.explanation,
            next_steps=explanation.next_steps,
            hypotheses=hypothesis_dicts,
            evidence=stored_evidence,
            citations=explanation.citations,
            similar=similar,
            notices=notices,
            window_start=found.window_start,
            window_end=found.window_end,
            alert_count=found.alert_count,
            duration_ms=round((time.perf_counter() - begin) * 1000, 1),
        )
        async with self.db.session() as session:
            session.add(row)
        return row

    async def _explain(
        self,
        title: str,
        hypotheses: Sequence[Hypothesis],
        evidence: Sequence[Evidence],
        scope: Scope,
        rules: Explanation,
    ) -> Explanation:
        assert self.llm is not None
        try:
            return await model_explanation(self.llm, title, hypotheses, evidence, scope)
        except InvalidOutput as exc:
            reason = f"the model's answer was rejected twice ({exc}); the rules explanation is shown"
        except LLMError as exc:
            reason = (
                f"the model could not be used ({type(exc).__name__}: {exc}); the rules explanation is shown"
            )
        log.warning("RCA falls back to rules: %s", reason)
        return replace(rules, fallback_reason=reason[:2000])

    async def remember(self, incident_id: int) -> bool:
        """Embed a resolved incident for "similar past incidents"; False without an embedder."""
        if self.memory is None:
            return False
        return await self.memory.remember(incident_id)


def alerting_topology(db: Database) -> TopologyLoader:
    """The correlation topology (host↔service pairs, service dependencies) when alerting has one."""

    async def load() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        from vigil.alerting.topology import TopologySource

        data = await TopologySource(db, ttl_s=0).load()
        return list(data.pairs), list(data.dependencies)

    return load
