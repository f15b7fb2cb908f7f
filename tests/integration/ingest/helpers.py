"""Helpers for ingestion tests: sources and ingest tokens, draining the ingestion stages,
and watching what the API published (the app on a real port is tests/live_server.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from vigil.api.routes.ingest_common import forget_cached_sources
from vigil.api.routes.tokens import issue_token
from vigil.backends import Backends
from vigil.domain import codec
from vigil.pipeline import topology
from vigil.pipeline.runner import Runner, Stage
from vigil.pipeline.stages.ingestion import ingestion_stages
from vigil.security import hash_password
from vigil.store.models import Source, User

SPY = "test-spy"
SPIED_TOPICS = (topology.METRICS, topology.LOGS, topology.ERRORS, topology.EXTERNAL_ALERTS)


async def drain(backends: Backends, stages: Sequence[Stage], idle_rounds: int = 2) -> int:
    """Run the stages as the worker would until their topics are empty; messages handled."""
    runner = Runner(backends.bus, stages, consumer="test-consumer")
    for stage in stages:
        await backends.bus.ensure_group(stage.topic, stage.group)
    handled = 0
    idle = 0
    while idle < idle_rounds:
        busy = False
        for stage in stages:
            messages = await backends.bus.consume(
                stage.topic, stage.group, "test-consumer", count=stage.batch_size, block_ms=20
            )
            if messages:
                busy = True
                handled += len(messages)
                await runner.process(stage, messages)
        idle = 0 if busy else idle + 1
    return handled


@dataclass
class Ingest:
    """Ingest tokens, a client that sends no credentials of its own, the bus spy, the stages."""

    backends: Backends
    client: httpx.AsyncClient  # anonymous: each request brings its token
    stages: list[Stage] = field(default_factory=list)

    async def source(
        self,
        type_: str = "telegraf",
        *,
        name: str | None = None,
        credentials: dict[str, Any] | None = None,
        enabled: bool = True,
    ) -> Source:
        async with self.backends.db.session() as session:
            row = Source(
                name=name or f"{type_}-{uuid.uuid4().hex[:6]}",
                type=type_,
                enabled=enabled,
                config={},
                credentials_encrypted=(
                    self.backends.secrets.encrypt(orjson.dumps(credentials).decode()) if credentials else None
                ),
            )
            session.add(row)
        return row

    async def token(
        self, source: Source | None = None, scopes: Sequence[str] = ("ingest",), role: str = "operator"
    ) -> str:
        async with self.backends.db.session() as session:
            user = User(
                username=f"ingest-{uuid.uuid4().hex[:8]}",
                role=role,
                password_hash=hash_password("x" * 12),
                is_active=True,
            )
            session.add(user)
            await session.flush()
            _, secret = await issue_token(
                session, user.id, "agent", list(scopes), source_id=source.id if source else None
            )
        return secret

    async def published(self, topic: str) -> list[dict[str, Any]]:
        """Everything published to ``topic`` since the last call (decoded payloads)."""
        out: list[dict[str, Any]] = []
        while True:
            messages = await self.backends.bus.consume(topic, SPY, "spy", count=500, block_ms=10)
            if not messages:
                return out
            await self.backends.bus.ack(topic, SPY, [m.id for m in messages])
            out.extend(codec.decode(m.payload) for m in messages)

    async def drain(self) -> int:
        return await drain(self.backends, self.stages)

    def forget(self) -> None:
        """Drop cached token and source lookups (after changing them in the database)."""
        from vigil.api.auth import forget_cached_tokens

        forget_cached_tokens()
        forget_cached_sources()


async def make_ingest(backends: Backends, client: httpx.AsyncClient) -> Ingest:
    ingest = Ingest(backends, client, ingestion_stages(backends))
    for stage in ingest.stages:
        await backends.bus.ensure_group(stage.topic, stage.group)
    for topic in SPIED_TOPICS:
        await backends.bus.ensure_group(topic, SPY)
    ingest.forget()
    return ingest
