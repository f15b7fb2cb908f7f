"""The correlate stage: alert signals and findings in, deduplicated alerts and incidents out.

Two consumers share the alert service, each as group ``correlate`` of its topic:
``ingest.alerts`` (AlertSignals from Alertmanager, Sentry error groups, device health...) and
``findings`` (anomalies, predictions, log signals, turned into signals). A batch is applied in
one alerting transaction; if that fails, each message is retried alone so one bad message
cannot hold back the others, and a store outage (every message failing) fails the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from vigil.alerting.service import AlertService
from vigil.alerting.signals import finding_to_signal, parse_finding, parse_signal
from vigil.bus.base import Message
from vigil.domain import codec
from vigil.domain.alerts import AlertSignal
from vigil.pipeline import topology
from vigil.pipeline.runner import BatchOutcome, PoisonMessage

log = logging.getLogger(__name__)

GROUP = "correlate"


def _items(payload: bytes, kind: str) -> tuple[str | None, list[Any]]:
    try:
        data = codec.decode(payload)
    except ValueError as exc:
        raise PoisonMessage(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise PoisonMessage(f'expected {{"kind": "{kind}", "items": [...]}}')
    if data.get("kind") not in (None, kind):
        raise PoisonMessage(f"kind: expected {kind!r}, got {data.get('kind')!r}")
    source = data.get("source")
    return (source if isinstance(source, str) else None), data["items"]


def decode_alert_signals(payload: bytes) -> list[AlertSignal]:
    source, items = _items(payload, "alerts")
    signals = []
    for i, item in enumerate(items):
        try:
            signal = parse_signal(item)
        except ValueError as exc:
            raise PoisonMessage(f"items[{i}].{exc}") from None
        if signal.source is None and source:
            signal.source = source[:128]
        signals.append(signal)
    return signals


def decode_findings(payload: bytes) -> list[AlertSignal]:
    _, items = _items(payload, "findings")
    signals = []
    for i, item in enumerate(items):
        try:
            signals.append(finding_to_signal(parse_finding(item)))
        except ValueError as exc:
            raise PoisonMessage(f"items[{i}].{exc}") from None
    return signals


class _SignalStage:
    name: str
    topic: str
    group = GROUP
    batch_size = 200
    decode: Callable[[bytes], list[AlertSignal]]

    def __init__(self, service: AlertService) -> None:
        self.service = service

    async def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        outcome = BatchOutcome()
        batches: list[tuple[str, list[AlertSignal]]] = []
        for message in messages:
            try:
                batches.append((message.id, type(self).decode(message.payload)))
            except PoisonMessage as exc:
                outcome.failed[message.id] = exc
        signals = [s for _, batch in batches for s in batch]
        if not signals:
            return outcome
        try:
            await self.service.ingest(signals)
            return outcome
        except Exception as exc:
            if len(batches) == 1:
                raise
            log.warning(
                "%s: batch of %d messages failed (%s); retrying one by one", self.name, len(batches), exc
            )
        errors: list[Exception] = []
        for message_id, batch in batches:
            try:
                await self.service.ingest(batch)
            except Exception as exc:
                outcome.failed[message_id] = exc
                errors.append(exc)
        if errors and len(errors) == len(batches):
            raise errors[0]  # nothing worked: a store is down, not a bad message
        return outcome


class AlertSignalsStage(_SignalStage):
    name = "correlate-alerts"
    topic = topology.EXTERNAL_ALERTS
    decode = staticmethod(decode_alert_signals)


class FindingsStage(_SignalStage):
    name = "correlate-findings"
    topic = topology.FINDINGS
    decode = staticmethod(decode_findings)
