"""The seam for model labels: templates the rules could not classify with confidence get a
second opinion from a :class:`TemplateClassifier` (the LLM layer implements it), once per
template. Operators' corrections are never overwritten (``label_method == 'operator'``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sqlalchemy import select, update

from vigil.analytics.logclassify import CONFIDENT, FAILURE_TYPES, SEVERITIES, Classification
from vigil.backends import Backends
from vigil.logs.store import classification_columns
from vigil.store.models.logs import LogTemplate
from vigil.store.types import utcnow
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)


@runtime_checkable
class TemplateClassifier(Protocol):
    async def classify(
        self, template: str, examples: Sequence[str], rule: Classification
    ) -> Classification | None:
        """A label for ``template`` (method "model"), or None for no opinion."""


class ModelLabeler:
    """Service: asks the classifier about low-confidence rule labels, each template once."""

    name = "log-template-labeler"

    def __init__(
        self, backends: Backends, classifier: TemplateClassifier, interval_s: float = 10.0, batch: int = 20
    ) -> None:
        self.backends = backends
        self.classifier = classifier
        self.interval_s = interval_s
        self.batch = batch

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("model labelling failed, retrying later: %s", exc)
            await sleep_unless(stopping, self.interval_s)

    async def run_once(self) -> int:
        db = self.backends.db
        async with db.session() as session:
            rows = list(
                (
                    await session.execute(
                        select(LogTemplate)
                        .where(
                            LogTemplate.label_method == "rule",
                            LogTemplate.label_confidence < CONFIDENT,
                            LogTemplate.model_checked_at.is_(None),
                        )
                        .order_by(LogTemplate.id)
                        .limit(self.batch)
                    )
                ).scalars()
            )
        for row in rows:
            rule = Classification(
                row.failure_type, row.severity, row.component, row.label_confidence, "rule", row.label_reason
            )
            result = await self.classifier.classify(row.template, list(row.examples or []), rule)
            values: dict[str, object] = {"model_checked_at": utcnow()}
            if (
                result is not None
                and result.failure_type in FAILURE_TYPES
                and result.severity in SEVERITIES
                and result.confidence > row.label_confidence
            ):
                values.update(
                    classification_columns(
                        Classification(
                            result.failure_type,
                            result.severity,
                            result.component,
                            result.confidence,
                            "model",
                            result.reason,
                        )
                    )
                )
            async with db.session() as session:
                # The method check keeps an operator's correction made meanwhile.
                await session.execute(
                    update(LogTemplate)
                    .where(LogTemplate.id == row.id, LogTemplate.label_method == "rule")
                    .values(**values)
                )
        return len(rows)
