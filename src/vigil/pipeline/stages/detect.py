"""The detect stage: streaming anomaly detection (and exhaustion forecasts) on every series.

Why it is shaped like this
--------------------------
A series' detector is a state machine over its points in time order, so a series must go
through one detector, in one order, whichever worker runs it. A consumer group hands any
message to any worker, so the stage cannot simply be N replicas of one group.

Series are hashed (CRC-32 of measurement + tag set, ``vigil.metrics.series``) into
``VIGIL_METRIC_PARTITIONS`` partitions. Partition *k* is the consumer group ``detect.<k>`` on
``topology.METRICS``, and a lease ``metrics-partition:<k>`` decides which worker consumes it:
exactly one worker holds a partition at a time (Redis ``SET NX PX`` leases renewed by their
owner token on the distributed profile, in-process leases otherwise;
``vigil.collectors.leases``). Workers spread partitions by rendezvous hashing over the live
members. Every partition's group reads every message and keeps the points of its own series,
so each partition sees the topic in publication order and N workers compute exactly what one
worker computes. (Re-publishing points to per-partition topics from a router group was the
alternative; but two routers interleave batches differently from run to run, so a series'
points would reach its detector in a different order, and its findings would differ.) The
extra reads are cheap: a worker decodes each message once for all the partitions it holds,
and for line protocol hashes each line's key text and parses only its own lines
(``vigil.metrics.partitions``).

State and acknowledgement: a partition keeps its series' state in memory
(``vigil.metrics.state.SeriesState``: detector, noise gate, open finding, prediction history)
and saves the states that changed every ``flush_interval_s`` and when it lets the partition
go, in ``metric_detector_state``, committing only while it still holds the lease. Messages
are acknowledged only after the state that includes them is saved. A worker that dies loses
nothing: its unacknowledged messages are redelivered, and the next owner replays them from the
saved state (waiting first until they can be claimed, so the order survives); findings of
the replayed stretch are published again, and the findings store folds them into the same
rows. A worker restarted with a clean stop continues exactly where it was.

Per batch and series, the points go through ``UnivariateDetector.update_many`` and each score
through the series' ``NoiseGate``; open/update/resolve transitions become ``anomaly``
findings (updates only when the peak score rose by ``min_update_gain`` or the severity
changed). Resource series also feed their ``PredictState`` (``predict.py``), which publishes
``prediction`` findings. One baseline point per series and minute goes to the metric store
(``vigil.metrics.baselines``). With a ``SecondOpinion`` reviewer configured, an anomaly whose
peak reaches the policy's score is held back until the reviewer answers; a "benign" verdict
lowers it to severity ``low`` and every event of the finding records the verdict.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from vigil.analytics.anomaly import (
    BatchResult,
    DetectorConfig,
    NoiseConfig,
    ReviewRequest,
    SecondOpinion,
    SecondOpinionPolicy,
    Transition,
    methods_from_mask,
)
from vigil.backends import Backends
from vigil.bus.base import Message
from vigil.collectors.leases import Leases, build_leases
from vigil.domain import codec
from vigil.domain.findings import Finding
from vigil.domain.metrics import MetricQuery, Point
from vigil.metrics.baselines import baseline_point, write_baselines
from vigil.metrics.partitions import PartitionSplitter, SeriesPoints, UnreadableBatch
from vigil.metrics.rules import DEFAULT_RULESET, PredictionRule, RuleSet, load_rules
from vigil.metrics.series import series_key
from vigil.metrics.state import DetectorStateStore, LeaseLost, SeriesState
from vigil.observability import REGISTRY
from vigil.pipeline import topology
from vigil.pipeline.leased_partitions import LeasedPartitions
from vigil.pipeline.runner import consumer_name, register_group
from vigil.pipeline.stages.predict import (
    BUCKET_S,
    WINDOW_S,
    PredictionEvent,
    PredictState,
    prediction_finding,
)
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)

LEASE_PREFIX = "metrics-partition:"
MEMBERS_GROUP = "metrics-partitions"
YIELD_EVERY = 2000  # points scored between yields to the event loop (lease renewals must run)

POINTS_DETECTED = Counter(
    "vigil_detect_points_total", "Metric values scored by the detect stage.", registry=REGISTRY
)
LATE_POINTS = Counter(
    "vigil_detect_late_points_total",
    "Metric values older than their series' newest value, skipped by the detect stage.",
    registry=REGISTRY,
)
FINDINGS_PUBLISHED = Counter(
    "vigil_detect_findings_total",
    "Finding events published by the detect stage, by kind and state.",
    ["kind", "state"],
    registry=REGISTRY,
)
SERIES_HELD = Gauge(
    "vigil_detect_series", "Series whose detector state this worker holds in memory.", registry=REGISTRY
)


def partition_group(partition: int) -> str:
    return f"detect.{partition}"


def _message_order(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class DetectOptions:
    partitions: int | None = None  # default: settings.metric_partitions
    batch_size: int = 10  # messages per consume (a message holds up to a few thousand lines)
    block_ms: int = 500
    lease_ttl_ms: int = 15_000
    flush_interval_s: float = 5.0  # at most a third of the bus visibility timeout
    baseline_interval_s: float = 60.0
    forecast_every_s: float = 300.0
    rules_refresh_s: float = 30.0
    min_update_gain: float = 0.05
    detector: DetectorConfig | None = None
    noise: NoiseConfig | None = None
    review_policy: SecondOpinionPolicy = dataclasses.field(default_factory=SecondOpinionPolicy)
    review_timeout_s: float = 60.0
    review_concurrency: int = 4
    exclude_measurements: tuple[str, ...] = ("vigil_*",)
    # "measurement.field" globs not worth scoring: inventory facts (sizes, CPU counts) and
    # values that only ever step (logged-in users, uptime), whose every change is "unusual"
    exclude_fields: tuple[str, ...] = (
        "*.total",
        "*.inodes_total",
        "*.n_cpus",
        "*.n_users",
        "*.n_unique_users",
        "*.uptime",
        "*.uptime_format",
        "*.boot_time",
    )
    idle_eviction_s: float = 3600.0  # clean states untouched this long leave memory
    decode_cache: int = 4096  # decoded messages shared by this worker's partitions


@dataclass
class _SeriesBatch:
    ident: str
    point: Point  # the first point (its measurement and tags describe the series)
    field: str
    times_ns: list[int] = dataclasses.field(default_factory=list)
    values: list[float] = dataclasses.field(default_factory=list)


@dataclass
class _Decoded:
    parts: dict[int, SeriesPoints] | None
    error: UnreadableBatch | None
    covered: set[int]  # partitions the split was made for
    pending: set[int]  # held partitions that have not taken their share yet


class _FieldFilter:
    """``name in filter``: whether ``measurement.name`` matches an exclusion glob (cached)."""

    __slots__ = ("_decided", "measurement", "patterns")

    def __init__(self, measurement: str, patterns: tuple[str, ...]) -> None:
        self.measurement = measurement
        self.patterns = patterns
        self._decided: dict[str, bool] = {}

    def __contains__(self, name: object) -> bool:
        key = str(name)
        decision = self._decided.get(key)
        if decision is None:
            full = f"{self.measurement}.{key}"
            decision = self._decided[key] = any(fnmatch.fnmatchcase(full, p) for p in self.patterns)
        return decision


def anomaly_severity(peak_score: float, deviation: float) -> str:
    """From the peak score and how far the peak point lay outside the band, in band widths
    (``|observed - expected| / (upper - expected)``): a value ten noise-widths away is serious
    even when the calibrated score is modest."""
    if peak_score >= 0.9 or deviation >= 3.0:
        return "high"
    if peak_score >= 0.75 or deviation >= 1.5:
        return "medium"
    return "low"


def band_deviation(point: Mapping[str, Any]) -> float:
    width = abs(point["upper"] - point["expected"])
    distance = abs(point["observed"] - point["expected"])
    return distance / width if width > 0 else (math.inf if distance > 0 else 0.0)


def describe_series(measurement: str, field_name: str, tags: Mapping[str, str], host: str | None) -> str:
    """``disk used_percent on web-03 (path=/var)``: what a person reads in a title."""
    text = f"{measurement} {field_name}"
    if host:
        text += f" on {host}"
    extra = [f"{k}={v}" for k, v in sorted(tags.items()) if v != host][:3]
    return f"{text} ({', '.join(extra)})" if extra else text


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


class PartitionConsumer:
    """Consumes one partition's group while its lease is held."""

    def __init__(self, worker: MetricDetector, partition: int) -> None:
        self.worker = worker
        self.backends = worker.backends
        self.options = worker.options
        self.partition = partition
        self.group = partition_group(partition)
        self.states: dict[str, SeriesState] = {}
        self.dirty: set[str] = set()
        self.touched: dict[str, float] = {}
        self.unacked: list[str] = []
        self.last_id: tuple[int, int] | None = None
        self.stop = asyncio.Event()
        self.lost = False
        self.reviews: set[asyncio.Task[None]] = set()
        self._last_flush = time.monotonic()
        self._last_sweep = time.monotonic()

    # --- lifecycle ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything not saved: after a failure, the unacknowledged messages are
        redelivered and replayed from the saved states."""
        self.states.clear()
        self.dirty.clear()
        self.touched.clear()
        self.unacked.clear()
        self.last_id = None

    async def run(self) -> None:
        bus = self.backends.bus
        await bus.ensure_group(self.worker.topic, self.group)
        try:
            stats = await bus.group_stats(self.worker.topic, self.group)
            if stats.pending:
                # Messages delivered but not acknowledged (by a previous owner, or by us before a
                # failure): wait until they can be claimed, so they come before anything newer.
                wait_s = bus.options.visibility_timeout_ms / 1000
                await sleep_unless(self.stop, wait_s)
            while not self.stop.is_set():
                messages = await self._next_batch()
                if messages:
                    await self.process(messages)
                await self.maintain()
        finally:
            await self._finish_reviews()
            if not self.lost:
                try:
                    await self.flush()
                except Exception as exc:
                    log.warning("detect partition %d: final save failed: %s", self.partition, exc)

    async def _next_batch(self) -> list[Message]:
        consume = asyncio.create_task(
            self.backends.bus.consume(
                self.worker.topic,
                self.group,
                self.worker.consumer,
                count=self.options.batch_size,
                block_ms=self.options.block_ms,
            )
        )
        stop = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait({consume, stop}, return_when=asyncio.FIRST_COMPLETED)
        if consume in done:
            stop.cancel()
            return consume.result()
        consume.cancel()
        await asyncio.gather(consume, return_exceptions=True)
        return []

    async def maintain(self) -> None:
        now = time.monotonic()
        if now - self._last_flush >= self.worker.flush_interval_s:
            await self.flush()
        if now - self._last_sweep >= 600:
            self._last_sweep = now
            self._evict_idle(now)

    def _evict_idle(self, now: float) -> None:
        for key in [k for k, at in self.touched.items() if now - at > self.options.idle_eviction_s]:
            state = self.states.get(key)
            if key not in self.dirty and state is not None and state.held is None:
                del self.states[key]
                del self.touched[key]
        SERIES_HELD.set(sum(len(c.states) for c, _ in self.worker.consumers.values()))

    async def flush(self) -> None:
        """Save changed states (fenced by the lease), then acknowledge what they include."""
        self._last_flush = time.monotonic()
        items = [(key, self.states[key].to_bytes()) for key in sorted(self.dirty) if key in self.states]
        if not items and not self.unacked:
            return
        try:
            await self.worker.store.save(self.partition, items, self._still_holds)
        except LeaseLost:
            log.warning("detect partition %d: lease lost; not saving", self.partition)
            self.lost = True
            self.stop.set()
            raise
        self.dirty.clear()
        if self.unacked:
            ids, self.unacked = self.unacked, []
            await self.backends.bus.ack(self.worker.topic, self.group, ids)

    async def _still_holds(self) -> bool:
        return await self.worker.still_holds(self.partition)

    # --- a batch -----------------------------------------------------------------------------

    async def process(self, messages: Sequence[Message]) -> None:
        bus = self.backends.bus
        chunks: list[SeriesPoints] = []
        for message in messages:
            order = _message_order(message.id)
            self.unacked.append(message.id)
            if self.last_id is not None and order <= self.last_id:
                continue  # a redelivery of a message we hold (acknowledged at the next flush)
            self.last_id = order
            try:
                chunks.append(self.worker.points_for(message, self.partition))
                await asyncio.sleep(0)  # let lease renewals and other stages run between messages
            except UnreadableBatch as exc:
                # Every partition reads every message: only partition 0 files it as a dead letter.
                if self.partition == 0:
                    self.unacked.pop()
                    await bus.dead_letter(message, self.group, f"detect: {exc}")
        batches = self._series_batches(chunks)
        if not batches:
            return
        await self._load_states(batches)
        rules = await self.worker.current_rules()
        findings: list[Finding] = []
        baselines: list[Point] = []
        now = time.monotonic()
        scored = 0
        for key, batch in batches.items():
            state = self.states[key]
            self.touched[key] = now
            times_ns, values = self._in_order(state, batch)
            if not times_ns:
                continue
            self._match_rule(state, rules, findings, times_ns[0] / 1e9)
            if state.predict is not None and state.predict.cur_bucket < 0:
                await self._seed_history(state, times_ns[0])
            self._detect(state, times_ns, values, findings, baselines)
            self.dirty.add(key)
            scored += len(times_ns)
            if scored >= YIELD_EVERY:
                scored = 0
                await asyncio.sleep(0)
        if findings:
            await self._publish(findings)
        await write_baselines(self.backends.metrics, baselines)

    def _series_batches(self, chunks: list[SeriesPoints]) -> dict[str, _SeriesBatch]:
        worker = self.worker
        batches: dict[str, _SeriesBatch] = {}
        for chunk in chunks:
            in_message: dict[str, _SeriesBatch] = {}
            for ident, point in chunk:
                time_ns = point.time_ns
                if time_ns is None or worker.excluded(point.measurement):
                    continue
                skip = worker.excluded_fields(point.measurement)
                for name, value in point.fields.items():
                    if type(value) is bool or not isinstance(value, int | float) or name in skip:
                        continue
                    x = float(value)
                    if not math.isfinite(x):
                        continue
                    key = worker.key_of(ident, point, name)
                    batch = in_message.get(key)
                    if batch is None:
                        batch = in_message[key] = _SeriesBatch(ident, point, name)
                    batch.times_ns.append(time_ns)
                    batch.values.append(x)
            for key, part in in_message.items():
                if any(a > b for a, b in zip(part.times_ns, part.times_ns[1:], strict=False)):
                    pairs = sorted(zip(part.times_ns, part.values, strict=True), key=lambda p: p[0])
                    part.times_ns = [t for t, _ in pairs]
                    part.values = [x for _, x in pairs]
                whole = batches.get(key)
                if whole is None:
                    batches[key] = part
                else:
                    whole.times_ns.extend(part.times_ns)
                    whole.values.extend(part.values)
        return batches

    @staticmethod
    def _in_order(state: SeriesState, batch: _SeriesBatch) -> tuple[list[int], list[float]]:
        """Drop points older than the series' newest (late data cannot be scored in order)."""
        last = state.last_t
        first = batch.times_ns[0] / 1e9
        if first >= last and all(a <= b for a, b in zip(batch.times_ns, batch.times_ns[1:], strict=False)):
            return batch.times_ns, batch.values
        times_ns: list[int] = []
        values: list[float] = []
        for t_ns, x in zip(batch.times_ns, batch.values, strict=True):
            t = t_ns / 1e9
            if t >= last:
                times_ns.append(t_ns)
                values.append(x)
                last = t
        late = len(batch.times_ns) - len(times_ns)
        if late:
            LATE_POINTS.inc(late)
        return times_ns, values

    async def _load_states(self, batches: dict[str, _SeriesBatch]) -> None:
        missing = [key for key in batches if key not in self.states]
        if not missing:
            return
        saved = await self.worker.store.load(missing)
        options = self.options
        for key in missing:
            batch = batches[key]
            point = batch.point
            tags = self.worker.shared_tags(batch.ident, point.tags)
            data = saved.get(key)
            state: SeriesState | None = None
            if data is not None:
                try:
                    state = SeriesState.from_bytes(
                        data, key, batch.ident, point.measurement, batch.field, tags, options.noise
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("detect: saved state of %s unreadable (%s); starting afresh", key, exc)
            if state is None:
                state = SeriesState.new(
                    key, batch.ident, point.measurement, batch.field, tags, options.detector, options.noise
                )
            self.states[key] = state

    # --- prediction ----------------------------------------------------------------------------

    def _match_rule(self, state: SeriesState, rules: RuleSet, findings: list[Finding], now: float) -> None:
        if state.rule_version == rules.version:
            return
        state.rule_version = rules.version
        rule = rules.match(state.measurement, state.field, state.tags)
        state.rule = rule
        new_id = None if rule is None else rule.id
        if rule is None and state.predict is not None:
            event = state.predict.close(now, "no prediction rule matches the series any more")
            previous = self.worker.rule_by_id(state.rule_id)
            if event is not None and previous is not None:
                findings.append(self._prediction_finding(state, previous, event))
            state.predict = None
        elif rule is not None and state.predict is None:
            state.predict = PredictState()
        if new_id != state.rule_id:
            state.rule_id = new_id
            self.dirty.add(state.key)

    async def _seed_history(self, state: SeriesState, first_ns: int) -> None:
        """A new resource series: its recent history from the metric store, if it has any."""
        assert state.predict is not None
        query = MetricQuery(
            measurement=state.measurement,
            field=state.field,
            start_ns=first_ns - int(WINDOW_S * 1e9),
            end_ns=first_ns - 1,
            aggregation="mean",
            interval_s=int(BUCKET_S),
            group_by=tuple(sorted(state.tags)),
            where=MetricQuery.where_from(dict(state.tags)),
        )
        try:
            found = await asyncio.wait_for(self.backends.metrics.query(query), timeout=10)
        except Exception as exc:
            log.debug("detect: no history for %s (%s)", state.key, exc)
            return
        for series in found:
            if series.tags == state.tags:
                pairs = [
                    (t / 1e9 + BUCKET_S / 2, float(v))
                    for t, v in zip(series.times_ns, series.values, strict=True)
                    if v is not None
                ]
                state.predict.seed([t for t, _ in pairs], [v for _, v in pairs])

    def _prediction_finding(
        self, state: SeriesState, rule: PredictionRule, event: PredictionEvent
    ) -> Finding:
        return prediction_finding(
            event,
            rule,
            key=state.key,
            measurement=state.measurement,
            field=state.field,
            tags=state.tags,
            host=state.host,
            service=state.service,
            previous=state.predict,
        )

    # --- detection -----------------------------------------------------------------------------

    def _detect(
        self,
        state: SeriesState,
        times_ns: list[int],
        values: list[float],
        findings: list[Finding],
        baselines: list[Point],
    ) -> None:
        times = [t / 1e9 for t in times_ns]
        detector = state.detector
        seen_before = detector.points_seen
        result = detector.update_many(times, values)
        POINTS_DETECTED.inc(len(times))
        scores = result.score.tolist()
        fired = result.fired.tolist()
        gate = state.gate
        leave = gate.config.leave
        warmup = detector.config.warmup_points
        baseline_step = self.options.baseline_interval_s
        minute = state.baseline_minute
        for i, score in enumerate(scores):
            t = times[i]
            if score >= leave:
                state.mask |= fired[i]
                state.remember(result.result(i))
                if state.peak is None or score > state.peak["score"]:
                    state.peak = self._point_evidence(result, i, times_ns[i])
            transition = gate.update(t, score)
            if transition is not None:
                finding = self._anomaly(state, transition, result, i, times_ns[i])
                if finding is not None:
                    self._emit(state, finding, findings)
            elif score < leave and not gate.is_open:
                state.mask = 0
                state.peak = None
            if seen_before + i + 1 > warmup:
                bucket = int(t // baseline_step)
                if bucket != minute:
                    minute = bucket
                    baselines.append(
                        baseline_point(
                            state.measurement,
                            state.field,
                            state.tags,
                            times_ns[i],
                            float(result.expected[i]),
                            float(result.lower[i]),
                            float(result.upper[i]),
                            round(score, 4),
                        )
                    )
        state.baseline_minute = minute
        state.last_t = times[-1]
        if state.predict is not None and state.rule is not None:
            for event in state.predict.feed(state.rule, times, values, self.options.forecast_every_s):
                findings.append(self._prediction_finding(state, state.rule, event))

    @staticmethod
    def _point_evidence(result: BatchResult, i: int, time_ns: int) -> dict[str, Any]:
        return {
            "time_ns": time_ns,
            "observed": float(result.values[i]),
            "expected": float(result.expected[i]),
            "lower": float(result.lower[i]),
            "upper": float(result.upper[i]),
            "score": round(float(result.score[i]), 4),
        }

    def _anomaly(
        self, state: SeriesState, transition: Transition, result: BatchResult, i: int, time_ns: int
    ) -> Finding | None:
        kind = transition.kind
        if kind == "open":
            state.opened_ns = round(transition.started_at * 1e9)
            state.started = transition.started_at
            state.verdict = None
        elif state.opened_ns is None:
            return None  # an update/resolve of a finding this state never opened (not expected)
        point = self._point_evidence(result, i, time_ns)
        peak = state.peak or point
        severity = anomaly_severity(transition.peak, band_deviation(peak))
        gain = transition.peak - state.reported_peak
        if kind == "update" and gain < self.options.min_update_gain and severity == state.severity:
            return None
        state.reported_peak = transition.peak
        state.severity = severity
        methods = list(methods_from_mask(state.mask))
        observed, expected = peak["observed"], peak["expected"]
        direction = "high" if observed >= expected else "low"
        title = (
            f"{describe_series(state.measurement, state.field, state.tags, state.host)} is unusually "
            f"{direction}: {_number(observed)} (expected about {_number(expected)})"
        )
        evidence: dict[str, Any] = {
            "series": state.key,
            "measurement": state.measurement,
            "field": state.field,
            "tags": dict(state.tags),
            "observed": point["observed"],
            "expected": point["expected"],
            "lower": point["lower"],
            "upper": point["upper"],
            "score": point["score"],
            "peak_score": round(transition.peak, 4),
            "peak": peak,
            "methods": methods,
            "method": methods[0] if methods else "calibrated_score",
            "seasonality": state.detector.seasonality,
            "detector": "univariate",
            "started_ns": state.opened_ns,
            "opened_ns": state.opened_ns,
        }
        finding = Finding(
            kind="anomaly",
            key=state.key,
            state={"open": "open", "update": "update", "resolve": "resolved"}[kind],
            time_ns=time_ns,
            title=title[:512],
            score=round(transition.peak, 4),
            severity=severity,
            host=state.host,
            service=state.service,
            evidence=evidence,
        )
        if kind == "resolve":
            state.opened_ns = None
            state.mask = 0
            state.peak = None
            state.reported_peak = 0.0
        return finding

    # --- second opinion and publishing ---------------------------------------------------------

    def _emit(self, state: SeriesState, finding: Finding, findings: list[Finding]) -> None:
        reviewer = self.worker.reviewer
        if state.held is not None:
            state.held.append(finding)  # behind a pending review: keep the order
            return
        if (
            reviewer is not None
            and finding.state == "open"
            and self.options.review_policy.wants_review(finding.score)
        ):
            state.held = [finding]
            request = ReviewRequest(
                series_key=state.key,
                results=tuple(state.recent or ()),
                seasonality=state.detector.seasonality,
                context={
                    "measurement": state.measurement,
                    "field": state.field,
                    **{f"tag.{k}": v for k, v in state.tags.items()},
                },
            )
            task = asyncio.create_task(self._review(state, reviewer, request))
            self.reviews.add(task)
            task.add_done_callback(self.reviews.discard)
            return
        _apply_verdict(finding, state.verdict)
        if finding.state == "resolved":
            state.verdict = None
        findings.append(finding)

    async def _review(self, state: SeriesState, reviewer: SecondOpinion, request: ReviewRequest) -> None:
        verdict: dict[str, Any]
        try:
            async with self.worker.review_slots:
                answer = await asyncio.wait_for(
                    reviewer.review(request), timeout=self.options.review_timeout_s
                )
            verdict = {
                "verdict": "real" if answer.is_real else "benign",
                "confidence": answer.confidence,
                "rationale": answer.rationale,
            }
        except Exception as exc:  # a reviewer failure never hides a finding
            verdict = {"verdict": "unavailable", "error": f"{type(exc).__name__}: {exc}"[:300]}
        held, state.held = state.held or [], None
        state.verdict = verdict
        self.dirty.add(state.key)
        for finding in held:
            _apply_verdict(finding, verdict)
        if any(f.state == "resolved" for f in held):
            state.verdict = None
        try:
            await self._publish(held)
        except Exception as exc:
            log.warning("detect: reviewed findings of %s not published: %s", state.key, exc)

    async def _finish_reviews(self) -> None:
        if self.reviews:
            await asyncio.wait(list(self.reviews), timeout=self.options.review_timeout_s + 5)

    async def _publish(self, findings: list[Finding]) -> None:
        if not findings:
            return
        await self.backends.bus.publish(
            self.worker.findings_topic, codec.encode_dicts("findings", [f.to_dict() for f in findings])
        )
        for finding in findings:
            FINDINGS_PUBLISHED.labels(finding.kind, finding.state).inc()


def _apply_verdict(finding: Finding, verdict: dict[str, Any] | None) -> None:
    if verdict is None:
        return
    finding.evidence["second_opinion"] = verdict
    if verdict.get("verdict") == "benign":
        finding.severity = "low"
        finding.evidence["suppressed"] = True
        if not finding.title.startswith("Likely benign: "):
            finding.title = f"Likely benign: {finding.title}"[:512]


class MetricDetector(LeasedPartitions["PartitionConsumer"]):
    """The ``metrics-detect`` service: holds partition leases and runs a consumer per partition."""

    name = "metrics-detect"
    label = "detect partition"
    lease_prefix = LEASE_PREFIX
    members_group = MEMBERS_GROUP

    def __init__(
        self,
        backends: Backends,
        *,
        options: DetectOptions | None = None,
        leases: Leases | None = None,
        consumer: str | None = None,
        reviewer: SecondOpinion | None = None,
        topic: str = topology.METRICS,
        findings_topic: str = topology.FINDINGS,
    ) -> None:
        self.backends = backends
        self.options = options or DetectOptions()
        self.partitions = self.options.partitions or backends.settings.metric_partitions
        self.leases = leases or build_leases(backends.settings)
        self.consumer = consumer or consumer_name(backends.settings.worker_name)
        self.reviewer = reviewer
        self.topic = topic
        self.findings_topic = findings_topic
        # Lazy acknowledgement must stay well inside the visibility timeout, or the bus would
        # hand our own unacknowledged messages back to us (and count them as retries).
        visibility_s = backends.bus.options.visibility_timeout_ms / 1000
        self.flush_interval_s = min(self.options.flush_interval_s, visibility_s / 3)
        self.store = DetectorStateStore(backends.db, asyncio.Lock() if backends.db.is_sqlite else None)
        self.splitter = PartitionSplitter(self.partitions)
        self.review_slots = asyncio.Semaphore(self.options.review_concurrency)
        self.consumers: dict[int, tuple[PartitionConsumer, asyncio.Task[None]]] = {}
        self._decoded: OrderedDict[str, _Decoded] = OrderedDict()
        self._keys: dict[tuple[str, str], str] = {}
        self._tags: dict[str, dict[str, str]] = {}
        self._excluded: dict[str, bool] = {}
        self._field_filters: dict[str, _FieldFilter] = {}
        self._rules = DEFAULT_RULESET
        self._rules_at = -math.inf
        for partition in range(self.partitions):
            register_group(topic, partition_group(partition))

    # --- shared by the partitions -------------------------------------------------------------

    def points_for(self, message: Message, partition: int) -> SeriesPoints:
        """This partition's points of a message; each message is decoded once per worker."""
        entry = self._decoded.get(message.id)
        if entry is None or partition not in entry.covered:
            wanted = set(self.consumers) | {partition}
            try:
                entry = _Decoded(self.splitter.split(message.payload, wanted), None, wanted, set(wanted))
            except UnreadableBatch as exc:
                entry = _Decoded(None, exc, wanted, set(wanted))
            self._decoded[message.id] = entry
            while len(self._decoded) > self.options.decode_cache:
                self._decoded.popitem(last=False)
        entry.pending.discard(partition)
        if not entry.pending:
            self._decoded.pop(message.id, None)
        if entry.error is not None:
            raise entry.error
        assert entry.parts is not None
        return entry.parts.get(partition, [])

    def key_of(self, ident: str, point: Point, field_name: str) -> str:
        key = self._keys.get((ident, field_name))
        if key is None:
            if len(self._keys) > 500_000:
                self._keys.clear()
            key = self._keys[(ident, field_name)] = series_key(point.measurement, field_name, point.tags)
        return key

    def shared_tags(self, ident: str, tags: dict[str, str]) -> dict[str, str]:
        """One tags dict per measurement + tag set, shared by its fields' states."""
        shared = self._tags.get(ident)
        if shared is None:
            if len(self._tags) > 500_000:
                self._tags.clear()
            shared = self._tags[ident] = dict(tags)
        return shared

    def excluded_fields(self, measurement: str) -> _FieldFilter:
        """The fields of ``measurement`` the options exclude (decided once per field name)."""
        found = self._field_filters.get(measurement)
        if found is None:
            found = self._field_filters[measurement] = _FieldFilter(measurement, self.options.exclude_fields)
        return found

    def excluded(self, measurement: str) -> bool:
        decision = self._excluded.get(measurement)
        if decision is None:
            decision = any(fnmatch.fnmatchcase(measurement, p) for p in self.options.exclude_measurements)
            self._excluded[measurement] = decision
        return decision

    async def current_rules(self) -> RuleSet:
        now = time.monotonic()
        if now - self._rules_at >= self.options.rules_refresh_s:
            self._rules_at = now
            try:
                self._rules = await load_rules(self.backends.db)
            except Exception as exc:
                log.warning("detect: prediction rules not reloaded (keeping the previous ones): %s", exc)
        return self._rules

    def rule_by_id(self, rule_id: str | None) -> PredictionRule | None:
        return next((r for r in self._rules.rules if r.id == rule_id), None)

    # --- leases (see LeasedPartitions) ---------------------------------------------------------

    @property
    def partition_count(self) -> int:
        return self.partitions

    @property
    def partition_topic(self) -> str:
        return self.topic

    @property
    def lease_ttl(self) -> int:
        return self.options.lease_ttl_ms

    @property
    def stop_timeout_s(self) -> float:
        return self.options.review_timeout_s + 30

    def group_of(self, partition: int) -> str:
        return partition_group(partition)

    def new_consumer(self, partition: int) -> PartitionConsumer:
        return PartitionConsumer(self, partition)

    def after_crash(self, consumer: PartitionConsumer) -> None:
        consumer.reset()
