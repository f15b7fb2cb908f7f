"""Live metric points for ``/ws/metrics``: a stage reading ``ingest.metrics`` as group
``live`` that broadcasts, on ``live.metrics``, only the points of series some WebSocket client
watches.

API replicas announce what their clients watch on ``live.metrics.interest`` (again every few
seconds, with a time-to-live), so with nobody watching the stage acks batches without even
decoding them, and with a few charts open it sends a few points rather than the firehose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vigil.bus.base import Bus, Message
from vigil.bus.follow import follow_broadcast
from vigil.domain import codec
from vigil.pipeline import topology
from vigil.pipeline.runner import BatchOutcome

log = logging.getLogger(__name__)

GROUP = "live"


@dataclass(frozen=True)
class SeriesFilter:
    """A watched series: a measurement, optionally one field, and tags it must carry."""

    measurement: str
    field: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, raw: Any) -> SeriesFilter:
        """From ``{"measurement", "field"?, "tags"?}`` or a key like
        ``cpu.usage_user{host=web-03,cpu=cpu-total}``; ValueError naming the problem."""
        if isinstance(raw, str):
            return cls._parse_key(raw)
        if not isinstance(raw, Mapping):
            raise ValueError("a series is an object {measurement, field?, tags?} or a key string")
        measurement = raw.get("measurement")
        if not isinstance(measurement, str) or not measurement:
            raise ValueError("measurement: required")
        field = raw.get("field")
        if field is not None and (not isinstance(field, str) or not field):
            raise ValueError("field: must be a non-empty string")
        tags = raw.get("tags") or {}
        if not isinstance(tags, Mapping) or not all(isinstance(v, str) for v in tags.values()):
            raise ValueError("tags: must be an object of tag names to string values")
        return cls(measurement, field, tuple(sorted((str(k), v) for k, v in tags.items())))

    @classmethod
    def _parse_key(cls, key: str) -> SeriesFilter:
        name, _, rest = key.partition("{")
        tags: list[tuple[str, str]] = []
        if rest:
            if not rest.endswith("}"):
                raise ValueError(f"{key!r}: missing closing brace")
            for pair in filter(None, rest[:-1].split(",")):
                tag, eq, value = pair.partition("=")
                if not eq or not tag:
                    raise ValueError(f"{key!r}: tags are name=value pairs")
                tags.append((tag.strip(), value.strip()))
        measurement, _, field = name.strip().partition(".")
        if not measurement:
            raise ValueError(f"{key!r}: measurement missing")
        return cls(measurement, field or None, tuple(sorted(tags)))

    def to_dict(self) -> dict[str, Any]:
        return {"measurement": self.measurement, "field": self.field, "tags": dict(self.tags)}

    def matches(self, measurement: str, tags: Mapping[str, str], field: str | None = None) -> bool:
        if measurement != self.measurement:
            return False
        if field is not None and self.field is not None and field != self.field:
            return False
        return all(tags.get(k) == v for k, v in self.tags)


def watched_points(payload: bytes, filters: Sequence[SeriesFilter]) -> list[list[Any]]:
    """``[measurement, field, tags, value, time_ns]`` for every numeric field value in the
    metric batch that some filter watches."""
    by_measurement: dict[str, list[SeriesFilter]] = {}
    for f in filters:
        by_measurement.setdefault(f.measurement, []).append(f)
    out: list[list[Any]] = []
    for point in codec.decode_points(payload)[1]:
        candidates = by_measurement.get(point.measurement)
        if not candidates:
            continue
        wanted = [f for f in candidates if f.matches(point.measurement, point.tags)]
        if not wanted:
            continue
        every_field = any(f.field is None for f in wanted)
        fields = {f.field for f in wanted}
        for name, value in point.fields.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if every_field or name in fields:
                out.append([point.measurement, name, point.tags, value, point.time_ns])
    return out


class Interest:
    """What the API replicas' clients watch, each replica's announcement valid for its TTL."""

    def __init__(self) -> None:
        self._replicas: dict[str, tuple[float, list[SeriesFilter]]] = {}

    def update(self, announcement: Mapping[str, Any]) -> None:
        replica = str(announcement.get("replica", ""))
        filters = []
        for raw in announcement.get("series") or []:
            with contextlib.suppress(ValueError):
                filters.append(SeriesFilter.parse(raw))
        ttl = float(announcement.get("ttl_s") or 15.0)
        if filters:
            self._replicas[replica] = (time.monotonic() + ttl, filters)
        else:
            self._replicas.pop(replica, None)

    def filters(self) -> list[SeriesFilter]:
        now = time.monotonic()
        for replica in [r for r, (expiry, _) in self._replicas.items() if expiry < now]:
            del self._replicas[replica]
        return [f for _, filters in self._replicas.values() for f in filters]


class LiveMetricsStage:
    name = "live-metrics"
    topic = topology.METRICS
    group = GROUP
    batch_size = 100

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.interest = Interest()
        self._listener: asyncio.Task[None] | None = None

    def _hear(self, payload: bytes) -> None:
        with contextlib.suppress(ValueError, TypeError):
            self.interest.update(codec.decode(payload))

    async def _listen(self) -> None:
        await follow_broadcast(self.bus, topology.LIVE_METRICS_INTEREST, self._hear)

    def _ensure_listening(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="live-metrics-interest")

    async def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        self._ensure_listening()
        outcome = BatchOutcome()
        filters = self.interest.filters()
        if not filters:
            return outcome
        points: list[list[Any]] = []
        for message in messages:
            try:
                points += watched_points(message.payload, filters)
            except Exception as exc:  # not ours to judge: the ingest stage dead-letters bad batches
                log.debug("live-metrics skipped message %s: %s", message.id, exc)
        if points:
            try:
                await self.bus.broadcast(
                    topology.LIVE_METRICS, codec.encode({"type": "points", "points": points})
                )
            except Exception as exc:  # live charts miss a beat; the data itself is stored elsewhere
                log.warning("live-metrics broadcast failed: %s", exc)
        return outcome


def interest_announcement(replica: str, filters: Iterable[SeriesFilter], ttl_s: float) -> bytes:
    return codec.encode({"replica": replica, "series": [f.to_dict() for f in filters], "ttl_s": ttl_s})
