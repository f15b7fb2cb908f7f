"""The write path of log intelligence: a source's miner with its template table, restored from
the database (snapshot + replay of the lines stored after it), and the batch writes of lines,
templates and classifications.

Only the owner of a source's shard writes that source's templates, so absolute values (counts,
examples, text) can be written without read-modify-write races.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.analytics.logclassify import Classification, classify
from vigil.analytics.logtemplates import TemplateMiner
from vigil.store.db import Database
from vigil.store.models.logs import LogLine, LogMinerState, LogTemplate
from vigil.store.types import utcnow

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5
REPLAY_CHUNK = 5_000


@dataclass(slots=True)
class TemplateState:
    """What the owner knows about one stored template (a row of ``log_templates``)."""

    id: int
    local_id: int
    text: str
    canonical_id: int
    count: int
    first_seen_ns: int
    last_seen_ns: int
    examples: list[str]
    label_method: str
    failure_type: str
    severity: str
    dirty: bool = False


@dataclass
class SourceMiner:
    source: str
    shard: int
    miner: TemplateMiner
    templates: dict[int, TemplateState] = field(default_factory=dict)  # local id -> state
    last_line_id: int = 0
    dirty: bool = False  # lines added since the last snapshot

    def snapshot_text(self) -> str:
        return orjson.dumps(self.miner.snapshot()).decode()


async def load_source_miner(db: Database, source: str, shard: int) -> SourceMiner:
    """The miner of ``source`` as the last owner left it: its snapshot, then the lines stored
    after that snapshot replayed in storage order (the miner is deterministic, so this gives
    back exactly the template ids those lines were stored with)."""
    async with db.session() as session:
        state = await session.get(LogMinerState, source)
        rows = (await session.execute(select(LogTemplate).where(LogTemplate.source == source))).scalars()
        templates = {
            row.local_id: TemplateState(
                id=row.id,
                local_id=row.local_id,
                text=row.template,
                canonical_id=row.canonical_id or row.id,
                count=row.count,
                first_seen_ns=row.first_seen_ns,
                last_seen_ns=row.last_seen_ns,
                examples=list(row.examples or []),
                label_method=row.label_method,
                failure_type=row.failure_type,
                severity=row.severity,
            )
            for row in rows
        }
    miner = TemplateMiner.restore(orjson.loads(state.snapshot)) if state else TemplateMiner()
    last_line_id = state.last_line_id if state else 0
    replayed = 0
    while True:
        async with db.session() as session:
            chunk = (
                await session.execute(
                    select(LogLine.id, LogLine.message)
                    .where(LogLine.source == source, LogLine.id > last_line_id)
                    .order_by(LogLine.id)
                    .limit(REPLAY_CHUNK)
                )
            ).all()
        for line_id, message in chunk:
            miner.add(message)
            last_line_id = line_id
        replayed += len(chunk)
        if len(chunk) < REPLAY_CHUNK:
            break
    if replayed:
        log.info("log miner %r: replayed %d lines stored after its snapshot", source, replayed)
    known_max = max(templates, default=0)
    miner_ids = {t.template_id for t in miner.templates()}
    if known_max and known_max not in miner_ids:
        # Lines behind the snapshot were deleted (retention) before they could be replayed: the
        # miner must at least never hand out a stored id again for a different template.
        snapshot = miner.snapshot()
        snapshot["next_id"] = max(int(snapshot["next_id"]), known_max + 1)
        miner = TemplateMiner.restore(snapshot)
        log.warning(
            "log miner %r: state behind the stored templates; ids continue after %d", source, known_max
        )
    return SourceMiner(source, shard, miner, templates, last_line_id)


async def save_snapshot(db: Database, miner: SourceMiner) -> None:
    async with db.session() as session:
        state = await session.get(LogMinerState, miner.source)
        text = miner.snapshot_text()
        count = len(miner.templates)
        if state is None:
            session.add(
                LogMinerState(
                    source=miner.source,
                    shard=miner.shard,
                    snapshot=text,
                    last_line_id=miner.last_line_id,
                    templates=count,
                    updated_at=utcnow(),
                )
            )
        else:
            state.shard = miner.shard
            state.snapshot = text
            state.last_line_id = miner.last_line_id
            state.templates = count
            state.updated_at = utcnow()
    miner.dirty = False


def classification_columns(result: Classification) -> dict[str, Any]:
    return {
        "failure_type": result.failure_type,
        "severity": result.severity,
        "component": result.component,
        "label_method": result.method,
        "label_confidence": result.confidence,
        "label_reason": result.reason,
        "labelled_at": utcnow(),
        "labelled_by": result.method,
    }


async def insert_template(
    session: AsyncSession,
    miner: SourceMiner,
    local_id: int,
    text: str,
    time_ns: int,
    level: str | None,
    service: str | None,
) -> tuple[TemplateState, Classification]:
    """A new template row, classified by the rules once (its canonical id is itself)."""
    result = classify(text, level=level, service=service)
    row = LogTemplate(
        source=miner.source,
        local_id=local_id,
        template=text,
        count=0,
        first_seen_ns=time_ns,
        last_seen_ns=time_ns,
        examples=[],
        first_level=level,
        **classification_columns(result),
    )
    session.add(row)
    await session.flush()
    row.canonical_id = row.id
    state = TemplateState(
        id=row.id,
        local_id=local_id,
        text=text,
        canonical_id=row.id,
        count=0,
        first_seen_ns=time_ns,
        last_seen_ns=time_ns,
        examples=[],
        label_method=result.method,
        failure_type=result.failure_type,
        severity=result.severity,
    )
    miner.templates[local_id] = state
    return state, result


async def write_template_changes(session: AsyncSession, states: list[TemplateState]) -> None:
    if not states:
        return
    now = utcnow()
    # One executemany (ORM bulk UPDATE by primary key) for every template a batch touched.
    await session.execute(
        update(LogTemplate),
        [
            {
                "id": state.id,
                "template": state.text,
                "count": state.count,
                "first_seen_ns": state.first_seen_ns,
                "last_seen_ns": state.last_seen_ns,
                "examples": list(state.examples),
                "canonical_id": state.canonical_id,
                "updated_at": now,
            }
            for state in states
        ],
    )
    for state in states:
        state.dirty = False


async def reclassify_by_rules(session: AsyncSession, state: TemplateState, level: str | None) -> None:
    """A template whose text changed gets the rules' new opinion, unless a model or an
    operator labelled it (those labels stick)."""
    if state.label_method != "rule":
        return
    result = classify(state.text, level=level)
    await session.execute(
        update(LogTemplate)
        .where(LogTemplate.id == state.id, LogTemplate.label_method == "rule")
        .values(**classification_columns(result))
    )
    state.failure_type = result.failure_type
    state.severity = result.severity
