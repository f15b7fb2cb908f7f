"""Helpers for alerting tests: run pipeline stages until their topics are drained, publish
signals and findings."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from vigil.backends import Backends
from vigil.domain import codec
from vigil.domain.alerts import AlertSignal
from vigil.domain.findings import Finding
from vigil.pipeline import topology
from vigil.pipeline.runner import Runner, Stage


async def drain(backends: Backends, stages: Sequence[Stage], idle_rounds: int = 2) -> int:
    """Run the stages (as the worker would) until none of their topics has anything left;
    returns how many messages were processed."""
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


async def publish_signals(
    backends: Backends, signals: Sequence[AlertSignal], source: str | None = None
) -> None:
    await backends.bus.publish(
        topology.EXTERNAL_ALERTS, codec.encode_dicts("alerts", [s.to_dict() for s in signals], source=source)
    )


async def publish_findings(backends: Backends, findings: Sequence[Finding]) -> None:
    await backends.bus.publish(
        topology.FINDINGS, codec.encode_dicts("findings", [f.to_dict() for f in findings])
    )


def now_ns(minutes_ago: float = 0) -> int:
    return time.time_ns() - int(minutes_ago * 60e9)


def signal(**kw: Any) -> AlertSignal:
    base: dict[str, Any] = {
        "origin": "alertmanager",
        "title": "Something broke",
        "severity": "high",
        "time_ns": now_ns(),
    }
    base.update(kw)
    return AlertSignal(**base)
