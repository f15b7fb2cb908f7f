"""The findings store stage: every finding event on ``topology.FINDINGS`` into the findings table.

One consumer group (``findings-store``) for all finding kinds (metric anomalies, predictions,
log signals), so the findings API lists everything detectors concluded. How events fold into
rows is ``vigil.metrics.findings``: replays and reordering land on the same row.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from vigil.bus.base import Message
from vigil.domain import codec
from vigil.domain.findings import Finding
from vigil.metrics.findings import store_findings
from vigil.pipeline import topology
from vigil.pipeline.runner import BatchOutcome, PoisonMessage
from vigil.store.db import Database

GROUP = "findings-store"
STATES = ("open", "update", "resolved")


def decode_findings(payload: bytes) -> list[Finding]:
    """The findings of a FINDINGS message; PoisonMessage naming the problem if unusable."""
    try:
        data = codec.decode(payload)
    except orjson.JSONDecodeError as exc:
        raise PoisonMessage(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise PoisonMessage('expected {"kind": "findings", "items": [...]}')
    findings = []
    for i, item in enumerate(data["items"]):
        try:
            if not isinstance(item, dict):
                raise TypeError("must be an object")
            finding = Finding.from_dict(item)
            if finding.state not in STATES:
                raise ValueError(f"state must be one of {', '.join(STATES)}")
            if not isinstance(finding.kind, str) or not isinstance(finding.key, str) or not finding.key:
                raise ValueError("kind and key must be non-empty strings")
            if not isinstance(finding.title, str) or not isinstance(finding.severity, str):
                raise ValueError("title and severity must be strings")
        except KeyError as exc:
            raise PoisonMessage(f"items[{i}].{exc.args[0]}: required") from None
        except (TypeError, ValueError) as exc:
            raise PoisonMessage(f"items[{i}]: {exc}") from None
        findings.append(finding)
    return findings


class FindingsStoreStage:
    name = "findings-store"
    topic = topology.FINDINGS
    group = GROUP

    def __init__(self, db: Database, batch_size: int = 100) -> None:
        self.db = db
        self.batch_size = batch_size

    async def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        outcome = BatchOutcome()
        decoded: list[tuple[Message, list[Finding]]] = []
        for message in messages:
            try:
                decoded.append((message, decode_findings(message.payload)))
            except PoisonMessage as exc:
                outcome.failed[message.id] = exc
        try:
            await store_findings(self.db, [f for _, items in decoded for f in items])
        except Exception as batch_error:
            # One message alone at a time, so one that cannot be stored does not hold back the
            # others; if every one fails, the database is the problem: fail the batch.
            failures = 0
            for message, items in decoded:
                try:
                    await store_findings(self.db, items)
                except Exception as exc:
                    failures += 1
                    outcome.failed[message.id] = exc
            if decoded and failures == len(decoded):
                raise batch_error
        return outcome
