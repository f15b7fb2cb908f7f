"""Multivariate detection per host: an Isolation Forest over the host's key metrics.

A univariate detector sees each series alone; some trouble only shows as an unusual
*combination* (CPU busy while load and traffic are low, memory up while nothing else moved).
The ``metrics-multivariate`` service keeps one ``HostModel`` per host over whichever of
these the host reports (``KEY_METRICS``): CPU busy %, memory used %, the fullest disk's
used %, load1, and network bytes in/out per second (from the counters).

* **Training**: every ``refit_every_s`` (an hour), from the last ``train_window_s`` (a day) of
  1-minute means in the metric store; rows with a gap in any column are left out, and a host
  needs ``min_rows`` complete rows.
* **Scoring**: every ``score_every_s`` (a minute), the minutes completed since the last run.
  ``enter_rows`` anomalous rows in a row open a finding (kind ``anomaly``, method
  ``isolation_forest``, key ``host_metrics.isolation_forest{host=...}``); ``leave_rows``
  normal rows in a row resolve it.
* **Ownership**: one worker runs it, holding the lease ``metrics-multivariate``; a new holder
  refits from the store and picks up the open findings from the findings table. Models are
  fitted in a thread, so the worker's event loop keeps serving the other stages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from vigil.analytics.anomaly import HostModel
from vigil.backends import Backends
from vigil.collectors.leases import Leases, build_leases
from vigil.domain import codec
from vigil.domain.findings import Finding
from vigil.domain.metrics import Aggregation, MetricQuery
from vigil.metrics.series import series_key
from vigil.pipeline import topology
from vigil.store.models import FindingRecord
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)

LEASE = "metrics-multivariate"
KEY_MEASUREMENT = "host_metrics"
KEY_FIELD = "isolation_forest"


@dataclass(frozen=True, slots=True)
class KeyMetric:
    name: str
    measurement: str
    field: str
    aggregation: Aggregation = "mean"
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    complement: bool = False  # report 100 - value (idle % -> busy %)
    per_second: str | None = None  # a counter: rate per second, summed over this tag's values


KEY_METRICS: tuple[KeyMetric, ...] = (
    KeyMetric("cpu_busy", "cpu", "usage_idle", where=(("cpu", ("cpu-total",)),), complement=True),
    KeyMetric("mem_used", "mem", "used_percent"),
    KeyMetric("disk_used", "disk", "used_percent", aggregation="max"),
    KeyMetric("load1", "system", "load1"),
    KeyMetric("net_in", "net", "bytes_recv", aggregation="last", per_second="interface"),
    KeyMetric("net_out", "net", "bytes_sent", aggregation="last", per_second="interface"),
)


@dataclass
class HostState:
    model: HostModel | None = None
    trained_rows: int = 0
    trained_at: float = 0.0
    anomalous_run: int = 0
    normal_run: int = 0
    opened_ns: int | None = None
    peak: dict[str, Any] | None = None


@dataclass
class MultivariateOptions:
    resolution_s: int = 60
    train_window_s: int = 86400
    refit_every_s: float = 3600.0
    score_every_s: float = 60.0
    min_rows: int = 120
    min_coverage: float = 0.8  # share of the window a metric must cover to be a column
    enter_rows: int = 3
    leave_rows: int = 5
    max_hosts: int = 2000
    lease_ttl_ms: int = 180_000
    hosts: tuple[str, ...] | None = None  # only these (tests); default: every host reporting


def host_key(host: str) -> str:
    return series_key(KEY_MEASUREMENT, KEY_FIELD, {"host": host})


Matrix = dict[str, dict[int, float]]  # metric name -> bucket time (ns) -> value


class HostModelService:
    name = "metrics-multivariate"

    def __init__(
        self,
        backends: Backends,
        *,
        options: MultivariateOptions | None = None,
        leases: Leases | None = None,
        findings_topic: str = topology.FINDINGS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backends = backends
        self.options = options or MultivariateOptions()
        self.leases = leases or build_leases(backends.settings)
        self.findings_topic = findings_topic
        self.clock = clock
        self.hosts: dict[str, HostState] = {}
        self.holding = False
        self._fitted_at = -math.inf
        self._scored_until_ns: int | None = None

    # --- ownership -----------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        try:
            while not stopping.is_set():
                try:
                    if await self._hold():
                        await self.tick(self.clock())
                except Exception as exc:
                    log.warning("multivariate detection failed this round: %s", exc, exc_info=exc)
                await sleep_unless(stopping, self.options.score_every_s)
        finally:
            if self.holding:
                with contextlib.suppress(Exception):
                    await self.leases.release([LEASE])

    async def _hold(self) -> bool:
        got = LEASE in await self.leases.acquire([LEASE], self.options.lease_ttl_ms)
        if got and not self.holding:
            await self._take_over()
        self.holding = got
        return got

    async def _take_over(self) -> None:
        """A new holder: forget models (refit now) and adopt the open findings."""
        self.hosts.clear()
        self._fitted_at = -math.inf
        self._scored_until_ns = None
        async with self.backends.db.session() as session:
            rows = (
                await session.execute(
                    select(FindingRecord).where(
                        FindingRecord.kind == "anomaly",
                        FindingRecord.state == "open",
                        FindingRecord.key.startswith(f"{KEY_MEASUREMENT}.{KEY_FIELD}{{"),
                    )
                )
            ).scalars()
            for row in rows:
                if row.host:
                    self.hosts.setdefault(row.host, HostState()).opened_ns = row.occurrence_ns

    # --- one round -----------------------------------------------------------------------------

    async def tick(self, now_s: float) -> list[Finding]:
        """Refit if due, score the minutes completed since the last round, publish findings."""
        res = self.options.resolution_s
        now_ns = int(now_s // res) * res * 1_000_000_000  # start of the current (incomplete) minute
        if now_s - self._fitted_at >= self.options.refit_every_s:
            await self.fit(now_ns)
            self._fitted_at = now_s
        start_ns = self._scored_until_ns
        earliest = now_ns - 10 * res * 1_000_000_000
        if start_ns is None or start_ns < earliest:
            start_ns = earliest
        findings = await self.score(start_ns, now_ns)
        self._scored_until_ns = now_ns
        if findings:
            await self.backends.bus.publish(
                self.findings_topic, codec.encode_dicts("findings", [f.to_dict() for f in findings])
            )
        return findings

    async def _columns(self, start_ns: int, end_ns: int) -> dict[str, Matrix]:
        """host -> metric -> bucket -> value, for every key metric the store has."""
        per_host: dict[str, Matrix] = {}
        res = self.options.resolution_s
        for metric in KEY_METRICS:
            group_by = ("host",) if metric.per_second is None else ("host", metric.per_second)
            where = metric.where
            if self.options.hosts is not None:
                where = (*where, ("host", tuple(self.options.hosts)))
            query = MetricQuery(
                measurement=metric.measurement,
                field=metric.field,
                start_ns=start_ns,
                end_ns=end_ns,
                aggregation=metric.aggregation,
                interval_s=res,
                group_by=group_by,
                where=tuple(sorted(where)),
            )
            try:
                found = await self.backends.metrics.query(query)
            except Exception as exc:
                log.debug("multivariate: %s.%s not available: %s", metric.measurement, metric.field, exc)
                continue
            for series in found:
                host = series.tags.get("host")
                if not host:
                    continue
                column = per_host.setdefault(host, {}).setdefault(metric.name, {})
                if metric.per_second is None:
                    for t, v in zip(series.times_ns, series.values, strict=True):
                        if v is not None:
                            column[t] = 100.0 - v if metric.complement else float(v)
                    continue
                previous: tuple[int, float] | None = None
                for t, v in zip(series.times_ns, series.values, strict=True):
                    if v is None:
                        continue
                    if previous is not None and t - previous[0] == res * 1_000_000_000 and v >= previous[1]:
                        column[t] = column.get(t, 0.0) + (v - previous[1]) / res
                    previous = (t, float(v))
        if len(per_host) > self.options.max_hosts:
            per_host = dict(sorted(per_host.items())[: self.options.max_hosts])
        return per_host

    async def fit(self, now_ns: int) -> None:
        start_ns = now_ns - self.options.train_window_s * 1_000_000_000
        columns = await self._columns(start_ns, now_ns)
        buckets = self.options.train_window_s // self.options.resolution_s
        for host, metrics in sorted(columns.items()):
            names = [
                m.name
                for m in KEY_METRICS
                if len(metrics.get(m.name, {})) >= self.options.min_coverage * buckets
            ]
            state = self.hosts.setdefault(host, HostState())
            if not names:
                state.model = None
                continue
            times = sorted(set.intersection(*(set(metrics[n]) for n in names)))
            if len(times) < self.options.min_rows:
                state.model = None
                continue
            matrix = np.array([[metrics[n][t] for n in names] for t in times])
            model = HostModel(names)
            try:
                await asyncio.to_thread(model.fit, matrix)
            except ValueError as exc:
                log.debug("multivariate: no model for %s: %s", host, exc)
                state.model = None
                continue
            state.model = model
            state.trained_rows = len(times)
            state.trained_at = now_ns / 1e9

    async def score(self, start_ns: int, end_ns: int) -> list[Finding]:
        if end_ns <= start_ns or not any(s.model for s in self.hosts.values()):
            return []
        columns = await self._columns(start_ns, end_ns)
        findings: list[Finding] = []
        for host, state in sorted(self.hosts.items()):
            model = state.model
            metrics = columns.get(host)
            if model is None or not metrics:
                continue
            names = model.metric_names
            if not all(n in metrics for n in names):
                continue
            times = sorted(set.intersection(*(set(metrics[n]) for n in names)))
            for t in times:
                row = [metrics[n][t] for n in names]
                result = model.score(row)
                finding = self._step(
                    host, state, t, row, result.score, result.is_anomalous, result.contributions
                )
                if finding is not None:
                    findings.append(finding)
        return findings

    def _step(
        self,
        host: str,
        state: HostState,
        time_ns: int,
        row: list[float],
        score: float,
        anomalous: bool,
        contributions: dict[str, float],
    ) -> Finding | None:
        opts = self.options
        if anomalous:
            state.anomalous_run += 1
            state.normal_run = 0
        else:
            state.normal_run += 1
            state.anomalous_run = 0
        observed = dict(zip(state.model.metric_names if state.model else (), row, strict=False))
        point = {
            "time_ns": time_ns,
            "score": round(score, 4),
            "observed": observed,
            "contributions": {k: round(v, 3) for k, v in contributions.items()},
        }
        if state.opened_ns is None:
            if state.anomalous_run < opts.enter_rows:
                return None
            state.opened_ns = time_ns - (opts.enter_rows - 1) * opts.resolution_s * 1_000_000_000
            state.peak = point
            return self._finding(host, state, "open", time_ns, point)
        if state.peak is None or score > state.peak["score"]:
            state.peak = point
        if state.normal_run >= opts.leave_rows:
            finding = self._finding(host, state, "resolved", time_ns, point)
            state.opened_ns = None
            state.peak = None
            return finding
        return None

    def _finding(
        self, host: str, state: HostState, kind: str, time_ns: int, point: dict[str, Any]
    ) -> Finding:
        assert state.opened_ns is not None
        peak = state.peak or point
        ranked = sorted(peak["contributions"].items(), key=lambda item: -item[1])
        top = [name for name, z in ranked if z >= 2.0][:3] or [name for name, _ in ranked[:2]]
        score = float(peak["score"])
        return Finding(
            kind="anomaly",
            key=host_key(host),
            state=kind,
            time_ns=time_ns,
            title=f"Unusual combination of metrics on {host} ({', '.join(top)})"[:512],
            score=round(score, 4),
            severity="high" if score >= 0.75 else "medium",
            host=host,
            evidence={
                "series": host_key(host),
                "detector": "multivariate",
                "method": "isolation_forest",
                "methods": ["isolation_forest"],
                "metrics": list(point["observed"]),
                "observed": point["observed"],
                "score": point["score"],
                "contributions": point["contributions"],
                "top_metrics": top,
                "peak": peak,
                "trained_rows": state.trained_rows,
                "trained_at_ns": int(state.trained_at * 1e9),
                "opened_ns": state.opened_ns,
            },
        )
