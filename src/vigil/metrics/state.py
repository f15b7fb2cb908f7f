"""Per-series detector state: what one series needs to continue exactly on another worker.

``SeriesState`` bundles the pure pieces (``UnivariateDetector``, ``NoiseGate``, and for
resource series a ``PredictState``) with the bookkeeping of the series' open finding.
``to_bytes`` packs it compactly (about 1.3 KiB, plus 3.5 KiB of history for resource series);
``DetectorStateStore`` keeps it in the ``metric_detector_state`` table, one row per series,
written only while the writer still holds the series' partition lease (checked right before
each commit).
"""

from __future__ import annotations

import math
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from vigil.analytics.anomaly import (
    DetectionResult,
    DetectorConfig,
    NoiseConfig,
    NoiseGate,
    UnivariateDetector,
)
from vigil.domain.findings import Finding
from vigil.metrics.rules import PredictionRule
from vigil.metrics.series import host_of, service_of
from vigil.pipeline.stages.predict import PredictState
from vigil.store.db import Database
from vigil.store.models import MetricDetectorState

_MAGIC = b"VMS1"
_HEADER = struct.Struct("<4sHHII")  # magic, detector, gate, meta, prediction lengths
RECENT_RESULTS = 60  # points kept while a series is active, for a reviewer's context


class LeaseLost(Exception):
    """The partition's lease went to another worker: nothing may be written for it."""


@dataclass(slots=True)
class SeriesState:
    key: str
    ident: str  # measurement + tag set (what the partition is hashed from)
    measurement: str
    field: str
    tags: dict[str, str]
    detector: UnivariateDetector
    gate: NoiseGate
    last_t: float = -math.inf  # time of the newest point fed; older points are late and dropped
    mask: int = 0  # methods fired since the score last rose above the gate's leave level
    opened_ns: int | None = None  # the open anomaly's identity (its open time)
    started: float = 0.0  # when the open anomaly's score first reached the gate's enter level
    reported_peak: float = 0.0  # peak score in the last published transition
    severity: str = "low"  # of the open anomaly
    peak: dict[str, Any] | None = None  # the open anomaly's strongest point
    baseline_minute: int = -1  # minute of the last baseline point written
    verdict: dict[str, Any] | None = None  # second opinion on the open anomaly
    rule_id: str | None = None  # prediction rule the series was last matched to
    predict: PredictState | None = None
    dirty: bool = False
    # not saved: the matched rule, context for a reviewer, findings held back during a review
    rule: PredictionRule | None = None
    rule_version: str = ""
    recent: deque[DetectionResult] | None = None  # created when the series first scores high
    held: list[Finding] | None = None

    def remember(self, result: DetectionResult) -> None:
        if self.recent is None:
            self.recent = deque(maxlen=RECENT_RESULTS)
        self.recent.append(result)

    @property
    def host(self) -> str | None:
        return host_of(self.tags)

    @property
    def service(self) -> str | None:
        return service_of(self.tags)

    @classmethod
    def new(
        cls,
        key: str,
        ident: str,
        measurement: str,
        field_name: str,
        tags: dict[str, str],
        detector_config: DetectorConfig | None = None,
        noise: NoiseConfig | None = None,
    ) -> SeriesState:
        detector = UnivariateDetector(detector_config)
        return cls(
            key=key,
            ident=ident,
            measurement=measurement,
            field=field_name,
            tags=tags,  # shared by the fields of a series (never changed)
            detector=detector,
            gate=NoiseGate(noise or NoiseConfig(warmup_points=detector.config.warmup_points)),
        )

    def to_bytes(self) -> bytes:
        detector = self.detector.to_bytes()
        gate = self.gate.to_bytes()
        meta = orjson.dumps(
            {
                "last_t": None if math.isinf(self.last_t) else self.last_t,
                "mask": self.mask,
                "opened": self.opened_ns,
                "started": self.started,
                "reported": self.reported_peak,
                "severity": self.severity,
                "peak": self.peak,
                "bmin": self.baseline_minute,
                "verdict": self.verdict,
                "rule": self.rule_id,
            }
        )
        prediction = b"" if self.predict is None else self.predict.to_bytes()
        return (
            _HEADER.pack(_MAGIC, len(detector), len(gate), len(meta), len(prediction))
            + detector
            + gate
            + meta
            + prediction
        )

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        key: str,
        ident: str,
        measurement: str,
        field_name: str,
        tags: dict[str, str],
        noise: NoiseConfig | None = None,
    ) -> SeriesState:
        magic, n_det, n_gate, n_meta, n_pred = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not a serialised SeriesState")
        offset = _HEADER.size
        detector = UnivariateDetector.from_bytes(data[offset : offset + n_det])
        offset += n_det
        gate = NoiseGate.from_bytes(
            data[offset : offset + n_gate], noise or NoiseConfig(warmup_points=detector.config.warmup_points)
        )
        offset += n_gate
        meta: dict[str, Any] = orjson.loads(data[offset : offset + n_meta])
        offset += n_meta
        prediction = PredictState.from_bytes(data[offset : offset + n_pred]) if n_pred else None
        return cls(
            key=key,
            ident=ident,
            measurement=measurement,
            field=field_name,
            tags=tags,
            detector=detector,
            gate=gate,
            last_t=-math.inf if meta["last_t"] is None else float(meta["last_t"]),
            mask=int(meta["mask"]),
            opened_ns=None if meta["opened"] is None else int(meta["opened"]),
            started=float(meta["started"]),
            reported_peak=float(meta["reported"]),
            severity=str(meta["severity"]),
            peak=meta["peak"],
            baseline_minute=int(meta["bmin"]),
            verdict=meta["verdict"],
            rule_id=meta["rule"],
            predict=prediction,
        )


class DetectorStateStore:
    """Series states in the database, keyed by series key."""

    def __init__(self, db: Database, write_lock: AbstractAsyncContextManager[Any] | None = None) -> None:
        self.db = db
        # SQLite has one writer: partitions of this process take turns instead of waiting on locks
        self.write_lock: AbstractAsyncContextManager[Any] = write_lock or nullcontext()

    async def load(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(keys)
        found: dict[str, bytes] = {}
        async with self.db.session() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = await session.execute(
                    select(MetricDetectorState.series_key, MetricDetectorState.state).where(
                        MetricDetectorState.series_key.in_(chunk)
                    )
                )
                found.update({key: bytes(state) for key, state in rows})
        return found

    async def save(
        self, partition: int, states: Sequence[tuple[str, bytes]], still_holds: Callable[[], Awaitable[bool]]
    ) -> None:
        """Upsert the states; raises LeaseLost (and writes nothing) if the lease is gone."""
        if not states:
            if not await still_holds():
                raise LeaseLost(f"partition {partition}")
            return
        insert = sqlite_insert if self.db.is_sqlite else pg_insert
        now = datetime.now(UTC)
        async with self.write_lock, self.db.session() as session:
            for start in range(0, len(states), 500):
                rows = [
                    {"series_key": key, "partition": partition, "state": state, "updated_at": now}
                    for key, state in states[start : start + 500]
                ]
                statement = insert(cast(Table, MetricDetectorState.__table__))  # Core: no ORM work per row
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=["series_key"],
                        set_={
                            "partition": statement.excluded.partition,
                            "state": statement.excluded.state,
                            "updated_at": statement.excluded.updated_at,
                        },
                    ),
                    rows,
                )
            # Fencing: commit only while the partition is still ours.
            if not await still_holds():
                raise LeaseLost(f"partition {partition}")
