"""Signals from logs for later stages: per-template counts per minute (written as metrics) and
findings when a template bursts or an error-class template appears for the first time.

The burst test is robust to a template's own noise: the count of a closed minute is compared
with the median of the template's previous minutes, scaled by the median absolute deviation
plus a Poisson floor (a template seen twice a minute on average is not "bursting" at five).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vigil.domain.findings import Finding
from vigil.domain.metrics import Point

MINUTE_NS = 60_000_000_000
MEASUREMENT = "log_template_count"
HISTORY_MINUTES = 60
MIN_HISTORY_MINUTES = 10
BURST_Z = 5.0
# A template active in fewer minutes of its history than this was nearly silent; when it starts
# at a working rate, that is a service or job starting (or traffic arriving), not a burst. Only
# a flood of at least SPARSE_FLOOD_PER_MIN counts then.
MIN_ACTIVE_MINUTES = 3
SPARSE_FLOOD_PER_MIN = 30
# A minute is closed (its count final enough to test) this long after it ended.
CLOSE_AFTER_NS = 30_000_000_000


def burst_score(history: Sequence[int], current: int) -> float | None:
    """How unusual ``current`` is against ``history`` (counts of earlier minutes, zeros
    included); None without enough history to judge."""
    if len(history) < MIN_HISTORY_MINUTES:
        return None
    median = statistics.median(history)
    mad = statistics.median(abs(h - median) for h in history)
    scale = 1.4826 * mad + math.sqrt(median) + 1.0
    return (current - median) / scale


def is_burst(history: Sequence[int], current: int) -> bool:
    score = burst_score(history, current)
    if score is None:
        return False
    if sum(1 for count in history if count) < MIN_ACTIVE_MINUTES and current < SPARSE_FLOOD_PER_MIN:
        return False
    median = statistics.median(history)
    return score >= BURST_Z and current >= 2 * median + 5


@dataclass
class _TemplateSignal:
    source: str
    template: str
    minutes: dict[int, int] = field(default_factory=dict)  # minute start ns -> count
    hosts: dict[int, dict[str | None, int]] = field(default_factory=dict)
    first_minute: int | None = None
    closed: set[int] = field(default_factory=set)
    bursting: bool = False
    dirty: set[int] = field(default_factory=set)  # minutes whose metric point needs writing


class SignalTracker:
    """Per-minute counts of one shard's templates, their metric points and burst findings."""

    def __init__(self) -> None:
        self._templates: dict[int, _TemplateSignal] = {}

    def count(self, template_id: int, source: str, template: str, host: str | None, time_ns: int) -> None:
        minute = time_ns - time_ns % MINUTE_NS
        signal = self._templates.get(template_id)
        if signal is None:
            signal = self._templates[template_id] = _TemplateSignal(source, template)
        signal.template = template
        signal.minutes[minute] = signal.minutes.get(minute, 0) + 1
        hosts = signal.hosts.setdefault(minute, {})
        hosts[host] = hosts.get(host, 0) + 1
        signal.dirty.add(minute)
        if signal.first_minute is None or minute < signal.first_minute:
            signal.first_minute = minute

    def points(self) -> list[Point]:
        """Metric points for every minute counted since the last call (running totals: a later
        write of the same minute overwrites the earlier one)."""
        points: list[Point] = []
        for template_id, signal in self._templates.items():
            for minute in sorted(signal.dirty):
                for host, n in signal.hosts.get(minute, {}).items():
                    tags = {"template_id": str(template_id), "source": signal.source}
                    if host:
                        tags["host"] = host
                    points.append(Point(MEASUREMENT, {"count": n}, tags, minute))
            signal.dirty.clear()
        return points

    def close_minutes(self, now_ns: int) -> list[Finding]:
        """Test every minute that has closed by ``now_ns``; findings for bursts that start or end."""
        findings: list[Finding] = []
        horizon = now_ns - MINUTE_NS - CLOSE_AFTER_NS
        for template_id, signal in self._templates.items():
            if signal.first_minute is None:
                continue
            pending = sorted(m for m in signal.minutes if m <= horizon and m not in signal.closed)
            last_open = horizon - horizon % MINUTE_NS
            # Quiet minutes count too: a template that stopped has zeros, not missing values.
            candidates = sorted(set(pending) | ({last_open} if last_open not in signal.closed else set()))
            for minute in candidates:
                if minute < signal.first_minute:
                    continue
                signal.closed.add(minute)
                current = signal.minutes.get(minute, 0)
                history = [
                    signal.minutes.get(m, 0)
                    for m in range(
                        max(signal.first_minute, minute - HISTORY_MINUTES * MINUTE_NS), minute, MINUTE_NS
                    )
                ]
                bursting = is_burst(history, current)
                if bursting and not signal.bursting:
                    findings.append(self._finding(template_id, signal, minute, current, history, "open"))
                elif not bursting and signal.bursting:
                    findings.append(self._finding(template_id, signal, minute, current, history, "resolved"))
                signal.bursting = bursting
            self._forget(signal, now_ns)
        return findings

    def _forget(self, signal: _TemplateSignal, now_ns: int) -> None:
        oldest = now_ns - (HISTORY_MINUTES + 5) * MINUTE_NS
        for minute in [m for m in signal.minutes if m < oldest]:
            del signal.minutes[minute]
            signal.hosts.pop(minute, None)
        signal.closed = {m for m in signal.closed if m >= oldest}

    def _finding(
        self,
        template_id: int,
        signal: _TemplateSignal,
        minute: int,
        current: int,
        history: list[int],
        state: str,
    ) -> Finding:
        median = statistics.median(history) if history else 0.0
        score = burst_score(history, current) or 0.0
        hosts = {h for h in signal.hosts.get(minute, {}) if h}
        title = (
            f'Log burst: {current}/min of "{signal.template[:120]}" (usually {median:g}/min)'
            if state == "open"
            else f'Log burst over: "{signal.template[:120]}" back to {current}/min'
        )
        return Finding(
            kind="log_burst",
            key=f"log_template:{template_id}",
            state=state,
            time_ns=minute,
            title=title,
            score=round(min(1.0, max(0.0, score / (2 * BURST_Z))), 3),
            severity="medium" if state == "open" else "low",
            host=next(iter(hosts)) if len(hosts) == 1 else None,
            evidence={
                "template_id": template_id,
                "template": signal.template,
                "source": signal.source,
                "count": current,
                "baseline_median": median,
                "minute_ns": minute,
                "hosts": sorted(hosts)[:20],
            },
        )


def new_error_template_finding(
    template_id: int,
    template: str,
    source: str,
    classification: Any,
    time_ns: int,
    host: str | None,
    service: str | None,
    example: str,
) -> Finding:
    """The first appearance of an error-class template."""
    return Finding(
        kind="new_error_template",
        key=f"log_template:{template_id}",
        state="open",
        time_ns=time_ns,
        title=f"New error log pattern ({classification.failure_type}): {template[:160]}",
        score=round(float(classification.confidence), 3),
        severity=classification.severity,
        host=host,
        service=service,
        evidence={
            "template_id": template_id,
            "template": template,
            "source": source,
            "failure_type": classification.failure_type,
            "component": classification.component,
            "label_method": classification.method,
            "example": example[:2000],
        },
    )
