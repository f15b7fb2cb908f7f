"""Remembering resolved incidents, and finding similar past ones with what fixed them.

A resolved incident is embedded (title, summary, the RCA's cause and evidence titles) with the
project's ``Embedder`` into a vector collection named after the embedder, so switching embedding
models starts a fresh index instead of mixing vector spaces. "What fixed it" is taken from what
people wrote when resolving (a resolve note, else the latest note on the incident or its alerts),
else from how its alerts resolved (e.g. the automation or the source that cleared them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import false, or_, select

from vigil.llm.embedder_factory import collection_suffix
from vigil.llm.embeddings import Embedder
from vigil.store.db import Database
from vigil.store.models import Alert, Incident, IncidentMemory, RCAResult, TimelineEntry
from vigil.store.types import utcnow
from vigil.store.vectors.base import VectorStore

log = logging.getLogger(__name__)

MIN_SIMILARITY = 0.25  # below this, "similar" is noise: show nothing rather than a random incident
MAX_DOCUMENT_CHARS = 4000

_RESOLVE_REASONS = {
    "source": "the source reported the condition cleared",
    "timeout": "the condition cleared (no re-fire)",
    "manual": "resolved by hand",
    "incident": "resolved with the incident",
}


@dataclass(frozen=True, slots=True)
class SimilarIncident:
    incident_id: int
    title: str
    similarity: float
    resolved_at: str | None
    resolution: str | None
    cause: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "title": self.title,
            "similarity": round(self.similarity, 4),
            "resolved_at": self.resolved_at,
            "resolution": self.resolution,
            "cause": self.cause,
        }


class IncidentMemoryStore:
    def __init__(self, db: Database, vectors: VectorStore, embedder: Embedder) -> None:
        self.db = db
        self.vectors = vectors
        self.embedder = embedder
        self.collection = f"incidents_{collection_suffix(embedder)}"

    async def _document(self, incident: Incident) -> str:
        parts = [incident.title]
        if incident.summary:
            parts.append(incident.summary)
        async with self.db.session() as session:
            rca = (
                await session.execute(
                    select(RCAResult)
                    .where(RCAResult.incident_id == incident.id)
                    .order_by(RCAResult.created_at.desc(), RCAResult.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            titles = (
                await session.execute(
                    select(Alert.title)
                    .where(Alert.incident_id == incident.id)
                    .order_by(Alert.first_seen)
                    .limit(15)
                )
            ).scalars()
            alert_titles = list(dict.fromkeys(titles))
        if rca is not None:
            parts.append(rca.summary)
            for item in (rca.evidence or [])[:12]:
                if isinstance(item, dict) and item.get("title"):
                    parts.append(str(item["title"]))
        parts.extend(alert_titles)
        if incident.hosts:
            parts.append("hosts: " + ", ".join(incident.hosts[:10]))
        if incident.services:
            parts.append("services: " + ", ".join(incident.services[:10]))
        return "\n".join(dict.fromkeys(p for p in parts if p))[:MAX_DOCUMENT_CHARS]

    async def resolution(self, incident_id: int) -> str | None:
        async with self.db.session() as session:
            alert_ids = list(
                (await session.execute(select(Alert.id).where(Alert.incident_id == incident_id))).scalars()
            )
            entries = list(
                (
                    await session.execute(
                        select(TimelineEntry)
                        .where(
                            or_(
                                TimelineEntry.incident_id == incident_id,
                                TimelineEntry.alert_id.in_(alert_ids) if alert_ids else false(),
                            )
                        )
                        .order_by(TimelineEntry.at.desc(), TimelineEntry.id.desc())
                        .limit(200)
                    )
                ).scalars()
            )
            reasons = list(
                (
                    await session.execute(
                        select(Alert.resolve_reason).where(
                            Alert.incident_id == incident_id, Alert.resolve_reason.is_not(None)
                        )
                    )
                ).scalars()
            )
        for entry in entries:
            note = (entry.data or {}).get("note")
            if entry.kind == "status" and (entry.data or {}).get("to") == "resolved" and note:
                return f"{note} ({entry.actor})"
        for entry in entries:
            if entry.kind == "note" and entry.message:
                return f"{entry.message} ({entry.actor})"
        for entry in entries:
            if entry.kind.startswith("automation") and entry.message:
                return entry.message
        if reasons:
            common = str(max(set(reasons), key=reasons.count))
            return _RESOLVE_REASONS.get(common, f"resolved ({common})")
        return None

    async def remember(self, incident_id: int) -> bool:
        """Embed a resolved incident (again, if it changed); False when it is not resolved."""
        async with self.db.session() as session:
            incident = await session.get(Incident, incident_id)
            if incident is None:
                raise KeyError(f"incident {incident_id} does not exist")
            if incident.resolved_at is None:
                return False
        document = await self._document(incident)
        resolution = await self.resolution(incident_id)
        [vector] = await self.embedder.embed([document])
        await self.vectors.upsert(
            self.collection,
            [str(incident_id)],
            [vector],
            [document],
            [
                {
                    "incident_id": incident_id,
                    "title": incident.title[:300],
                    "resolved_at": incident.resolved_at.isoformat(),
                    "resolution": (resolution or "")[:1000],
                }
            ],
        )
        async with self.db.session() as session:
            row = await session.get(IncidentMemory, incident_id)
            if row is None:
                row = IncidentMemory(incident_id=incident_id)
                session.add(row)
            row.embedder = self.embedder.name
            row.document = document
            row.resolution = resolution
            row.embedded_at = utcnow()
        return True

    async def similar(self, incident_id: int, limit: int = 5) -> list[SimilarIncident]:
        """Resolved incidents like this one, most similar first, each with what fixed it."""
        async with self.db.session() as session:
            incident = await session.get(Incident, incident_id)
            if incident is None:
                raise KeyError(f"incident {incident_id} does not exist")
        if await self.vectors.count(self.collection) == 0:
            return []
        [vector] = await self.embedder.embed([await self._document(incident)])
        hits = await self.vectors.query(self.collection, vector, limit=limit + 1)
        found: list[tuple[int, float]] = []
        for hit in hits:
            other = int(hit.metadata.get("incident_id", hit.id))
            similarity = 1.0 - hit.distance
            if other != incident_id and similarity >= MIN_SIMILARITY:
                found.append((other, similarity))
        if not found:
            return []
        async with self.db.session() as session:
            ids = [i for i, _ in found]
            memories = {
                m.incident_id: m
                for m in (
                    await session.execute(select(IncidentMemory).where(IncidentMemory.incident_id.in_(ids)))
                ).scalars()
            }
            incidents = {
                i.id: i
                for i in (await session.execute(select(Incident).where(Incident.id.in_(ids)))).scalars()
            }
            causes: dict[int, str] = {}
            for row in (
                await session.execute(
                    select(RCAResult.incident_id, RCAResult.summary)
                    .where(RCAResult.incident_id.in_(ids))
                    .order_by(RCAResult.created_at, RCAResult.id)
                )
            ).all():
                causes[int(row[0])] = str(row[1])  # the newest wins
        out = []
        for other, similarity in found[:limit]:
            past = incidents.get(other)
            if past is None:  # deleted since it was embedded
                continue
            memory = memories.get(other)
            out.append(
                SimilarIncident(
                    incident_id=other,
                    title=past.title,
                    similarity=similarity,
                    resolved_at=past.resolved_at.isoformat() if past.resolved_at else None,
                    resolution=memory.resolution if memory else None,
                    cause=causes.get(other),
                )
            )
        return out

    async def forget(self, incident_id: int) -> None:
        await self.vectors.delete(self.collection, [str(incident_id)])
