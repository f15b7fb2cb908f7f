"""Semantic search over templates through the vector store.

Templates (not lines) are embedded: they are few, and every line is reachable through its
template. "Find logs like this" embeds any line on demand, finds the nearest templates and
returns their recent lines. An indexer service keeps the vector collection in step with the
template table (new templates, changed text, merges).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import or_, select, update

from vigil.backends import Backends
from vigil.llm.embedder_factory import build_embedder, collection_suffix
from vigil.llm.embeddings import Embedder
from vigil.logs.search import LogFilters, search
from vigil.store.models.logs import LogTemplate
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)

INDEX_BATCH = 128


def collection_name(embedder: Embedder) -> str:
    return f"log_templates_{collection_suffix(embedder)}"


class TemplateIndexer:
    """Service: embeds new and changed templates, drops merged ones from the collection."""

    name = "log-template-indexer"

    def __init__(self, backends: Backends, embedder: Embedder | None = None, interval_s: float = 5.0) -> None:
        self.backends = backends
        self.embedder = embedder or build_embedder(backends.settings)
        self.interval_s = interval_s

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                while await self.run_once() and not stopping.is_set():
                    pass
            except Exception as exc:
                log.warning("template indexing failed, retrying: %s", exc)
            await sleep_unless(stopping, self.interval_s)

    async def run_once(self) -> int:
        """Index one batch; returns how many templates it handled (0: up to date)."""
        db, vectors = self.backends.db, self.backends.vectors
        collection = collection_name(self.embedder)
        async with db.session() as session:
            rows = list(
                (
                    await session.execute(
                        select(LogTemplate)
                        .where(
                            or_(
                                LogTemplate.embedded_template.is_(None),
                                LogTemplate.embedded_template != LogTemplate.template,
                            )
                        )
                        .order_by(LogTemplate.id)
                        .limit(INDEX_BATCH)
                    )
                ).scalars()
            )
        if not rows:
            return 0
        live = [r for r in rows if r.canonical_id in (None, r.id)]
        merged = [r for r in rows if r not in live]
        if live:
            embeddings = await self.embedder.embed([r.template for r in live])
            await vectors.upsert(
                collection,
                ids=[str(r.id) for r in live],
                embeddings=embeddings,
                documents=[r.template for r in live],
                metadatas=[
                    {"template_id": r.id, "source": r.source, "failure_type": r.failure_type} for r in live
                ],
            )
        if merged:
            await vectors.delete(collection, [str(r.id) for r in merged])
        async with db.session() as session:
            for row in rows:
                await session.execute(
                    update(LogTemplate)
                    .where(LogTemplate.id == row.id, LogTemplate.template == row.template)
                    .values(embedded_template=row.template)
                )
        return len(rows)


async def similar_templates(
    backends: Backends, embedder: Embedder, text: str, *, limit: int = 10, source: str | None = None
) -> list[dict[str, Any]]:
    """The templates nearest to ``text``, best first, with a similarity in [0, 1]."""
    [vector] = await embedder.embed([text])
    where = {"source": source} if source else None
    hits = await backends.vectors.query(collection_name(embedder), vector, limit=limit, where=where)
    ids = [int(h.id) for h in hits]
    if not ids:
        return []
    async with backends.db.session() as session:
        rows = {
            r.id: r
            for r in (await session.execute(select(LogTemplate).where(LogTemplate.id.in_(ids)))).scalars()
        }
    results = []
    for hit in hits:
        row = rows.get(int(hit.id))
        if row is None or row.canonical_id not in (None, row.id):
            continue
        results.append(
            {
                "template_id": row.id,
                "source": row.source,
                "template": row.template,
                "count": row.count,
                "failure_type": row.failure_type,
                "severity": row.severity,
                "similarity": round(max(0.0, 1.0 - hit.distance), 4),  # cosine distance
            }
        )
    return results


async def similar_lines(
    backends: Backends,
    embedder: Embedder,
    text: str,
    *,
    templates: int = 5,
    lines_per_template: int = 5,
    exclude_template: int | None = None,
) -> dict[str, Any]:
    """Nearest templates to ``text`` and recent lines of each."""
    nearest = await similar_templates(backends, embedder, text, limit=templates + 1)
    if exclude_template is not None:
        nearest = [t for t in nearest if t["template_id"] != exclude_template]
    nearest = nearest[:templates]
    for template in nearest:
        lines, _ = await search(
            backends.db,
            LogFilters(template_id=template["template_id"]),
            limit=lines_per_template,
            highlight=False,
        )
        template["lines"] = lines
    return {"templates": nearest}
