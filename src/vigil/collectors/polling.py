"""One poll of one source, from its stored row to data durable on the bus.

Shared by the scheduler (every interval) and the API's "test connection" (once, nothing
published). ``prepare`` re-validates the stored config and decrypts the credentials; ``poll``
runs the collector with a timeout and labels what it returns with the source's name;
``publish`` puts the result on the bus and returns only once the bus holds it durably, which is
what makes a poll count as done.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from vigil.bus.base import Bus
from vigil.collectors.base import CollectError, Collector, CollectResult, source_type
from vigil.domain import codec
from vigil.pipeline import topology
from vigil.security import SecretBox

POINTS_PER_MESSAGE = 5000
ITEMS_PER_MESSAGE = 1000


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """What a poll needs from a ``sources`` row (a plain, immutable snapshot of it)."""

    id: int
    name: str
    type: str
    target: str | None
    config: dict[str, Any]
    credentials_encrypted: str | None
    interval_s: int

    @classmethod
    def from_row(cls, row: Any) -> SourceSpec:
        return cls(
            id=int(row.id),
            name=str(row.name),
            type=str(row.type),
            target=row.target,
            config=dict(row.config or {}),
            credentials_encrypted=row.credentials_encrypted,
            interval_s=int(row.interval_s),
        )

    @property
    def lease(self) -> str:
        return f"source:{self.id}"

    @property
    def identity(self) -> str:
        """Changes when what is polled changes (not the interval): state from before is void."""
        data = orjson.dumps(
            [self.type, self.target, self.config, self.credentials_encrypted], option=orjson.OPT_SORT_KEYS
        )
        return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Prepared:
    collector: Collector
    target: str
    config: BaseModel
    credentials: BaseModel


def decrypt_credentials(secrets: SecretBox, encrypted: str | None) -> dict[str, Any]:
    if not encrypted:
        return {}
    data = orjson.loads(secrets.decrypt(encrypted))
    return data if isinstance(data, dict) else {}


def encrypt_credentials(secrets: SecretBox, credentials: dict[str, Any]) -> str | None:
    return secrets.encrypt(orjson.dumps(credentials).decode()) if credentials else None


def prepare(spec: SourceSpec, secrets: SecretBox) -> Prepared:
    kind = source_type(spec.type)
    if kind is None or kind.collector is None:
        raise CollectError(f"type {spec.type!r} is not a pull source type")
    try:
        credentials_data = decrypt_credentials(secrets, spec.credentials_encrypted)
    except ValueError as exc:
        raise CollectError(str(exc)) from exc
    try:
        config = kind.config_model.model_validate(spec.config)
        credentials = kind.credentials_model.model_validate(credentials_data)
        target = kind.collector.check(spec.target, config, credentials)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CollectError(f"stored configuration is no longer valid: {where}: {first['msg']}") from exc
    except ValueError as exc:
        raise CollectError(f"stored configuration is no longer valid: {exc}") from exc
    return Prepared(kind.collector, target, config, credentials)


def poll_timeout_s(interval_s: int) -> float:
    """A poll never runs past its interval (so polls of one source never overlap), but gets
    at least a few seconds on very short intervals."""
    return float(max(5, min(interval_s, 300)))


async def poll(
    spec: SourceSpec,
    prepared: Prepared,
    state: dict[str, Any],
    timeout_s: float,
) -> CollectResult:
    try:
        result = await asyncio.wait_for(
            prepared.collector.collect(prepared.target, prepared.config, prepared.credentials, dict(state)),
            timeout=timeout_s,
        )
    except TimeoutError:
        raise CollectError(f"poll did not finish within {timeout_s:.0f}s") from None
    for signal in result.alert_signals:
        signal.source = spec.name
    for record in result.logs:
        record.source = spec.name
    return result


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def publish(bus: Bus, spec: SourceSpec, result: CollectResult) -> None:
    """Returns once every part of the result is durable on the bus (raises otherwise)."""
    if result.points:
        await bus.publish_many(
            topology.METRICS,
            [codec.encode_points(chunk, spec.name) for chunk in _chunks(result.points, POINTS_PER_MESSAGE)],
        )
    if result.alert_signals:
        await bus.publish_many(
            topology.EXTERNAL_ALERTS,
            [
                codec.encode_dicts("alerts", [s.to_dict() for s in chunk], spec.name)
                for chunk in _chunks(result.alert_signals, ITEMS_PER_MESSAGE)
            ],
        )
    if result.logs:
        await bus.publish_many(
            topology.LOGS,
            [
                codec.encode_dicts("logs", [r.to_dict() for r in chunk], spec.name)
                for chunk in _chunks(result.logs, ITEMS_PER_MESSAGE)
            ],
        )
