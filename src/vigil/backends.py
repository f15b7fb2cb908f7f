"""The one place where settings choose each adapter: relational store, bus, metrics, vectors."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from vigil.bus.base import Bus, BusOptions
from vigil.config import Settings, SettingsError, redact
from vigil.security import SecretBox, load_or_create_secret
from vigil.store.db import Database
from vigil.store.metrics.base import MetricStore
from vigil.store.vectors.base import VectorStore
from vigil.store.vectors.chroma import ChromaVectorStore

READY_TIMEOUT_S = 5.0


def build_bus(settings: Settings) -> Bus:
    options = BusOptions(
        visibility_timeout_ms=settings.bus_visibility_timeout_ms,
        max_deliveries=settings.bus_max_deliveries,
        max_backlog=settings.bus_max_backlog,
    )
    if settings.redis_url:
        from vigil.bus.redis import RedisBus

        return RedisBus(settings.redis_url, options, prefix=settings.redis_prefix)
    from vigil.bus.memory import MemoryBus

    return MemoryBus(options, journal_path=settings.data_dir / "bus.sqlite")


def build_metric_store(settings: Settings) -> MetricStore:
    if settings.influx_url:
        from vigil.store.metrics.influx import InfluxMetricStore

        return InfluxMetricStore(
            settings.influx_url,
            settings.influx_database,
            username=settings.influx_username,
            password=settings.influx_password.get_secret_value() if settings.influx_password else None,
            token=settings.influx_token.get_secret_value() if settings.influx_token else None,
        )
    from vigil.store.metrics.embedded import EmbeddedMetricStore

    return EmbeddedMetricStore(settings.data_dir / "metrics")


def build_vector_store(settings: Settings) -> VectorStore:
    if settings.chroma_url:
        return ChromaVectorStore(
            url=settings.chroma_url, tenant=settings.chroma_tenant, database=settings.chroma_database
        )
    return ChromaVectorStore(path=settings.data_dir / "chroma")


@dataclass
class Backends:
    settings: Settings
    db: Database
    bus: Bus
    metrics: MetricStore
    vectors: VectorStore
    secrets: SecretBox
    started: bool = field(default=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Backends:
        secret = (
            settings.secret_key.get_secret_value()
            if settings.secret_key
            else load_or_create_secret(settings.data_dir / "secret.key")
        )
        return cls(
            settings=settings,
            db=Database(settings.effective_database_url, pool_size=settings.database_pool_size),
            bus=build_bus(settings),
            metrics=build_metric_store(settings),
            vectors=build_vector_store(settings),
            secrets=SecretBox(secret),
        )

    def _setting_for(self, name: str) -> tuple[str, str]:
        s = self.settings
        return {
            "database": ("VIGIL_DATABASE_URL", redact(s.effective_database_url)),
            "bus": ("VIGIL_REDIS_URL", redact(s.redis_url) or "in-process"),
            "metrics": ("VIGIL_INFLUX_URL", redact(s.influx_url) or "embedded"),
            "vectors": ("VIGIL_CHROMA_URL", redact(s.chroma_url) or "embedded"),
        }[name]

    async def start(self, migrate: bool = True) -> None:
        """Connect every backend; an unreachable one is a SettingsError naming its setting."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        steps: list[tuple[str, Any]] = [
            ("database", self.db.ping),
            ("bus", self.bus.start),
            ("metrics", self.metrics.start),
            ("vectors", self.vectors.start),
        ]
        for name, step in steps:
            try:
                await asyncio.wait_for(step(), timeout=READY_TIMEOUT_S * 3)
            except Exception as exc:
                setting, value = self._setting_for(name)
                reason = "timed out" if isinstance(exc, TimeoutError) else _one_line(exc)
                raise SettingsError(f"{setting}: cannot use {value}: {reason}") from exc
        if migrate:
            await self.db.migrate()
        self.started = True

    async def close(self) -> None:
        for closer in (self.bus.close, self.metrics.close, self.vectors.close, self.db.close):
            # Closing is best effort: the process is going away.
            with contextlib.suppress(Exception):
                await closer()
        self.started = False

    async def readiness(self) -> dict[str, dict[str, Any]]:
        """Per-backend reachability for /readyz, checked concurrently with a timeout each."""
        summary = self.settings.backend_summary()

        async def check(name: str, ping: Any) -> tuple[str, dict[str, Any]]:
            begin = time.perf_counter()
            try:
                await asyncio.wait_for(ping(), timeout=READY_TIMEOUT_S)
                ok, detail = True, "ok"
            except Exception as exc:
                ok, detail = False, "timed out" if isinstance(exc, TimeoutError) else _one_line(exc)
            return name, {
                "ok": ok,
                "backend": summary[name],
                "detail": detail,
                "latency_ms": round((time.perf_counter() - begin) * 1000, 2),
            }

        results = await asyncio.gather(
            check("database", self.db.ping),
            check("bus", self.bus.ping),
            check("metrics", self.metrics.ping),
            check("vectors", self.vectors.ping),
        )
        return dict(results)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
