"""``TemplateClassifier`` by a model: a second opinion on log templates the rules are unsure of.

The log labeller asks it once per template whose rule label is below the rules' confidence bar;
``None`` means "no opinion" (the model answered nonsense twice) and the rule label stands; an
unreachable model raises, so the template is asked about again later. Results are labelled
``method="model"`` with the model's name in ``reason``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from vigil.analytics.logclassify import Classification
from vigil.llm.budget import estimate_tokens
from vigil.llm.client import LLM
from vigil.llm.prompts import classification as prompt
from vigil.llm.structured import InvalidOutput, ask_structured

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5


def _describe(rule: Classification) -> str:
    component = f", component {rule.component}" if rule.component else ""
    return f"{rule.failure_type}, severity {rule.severity}{component} (confidence {rule.confidence:.2f})"


class LLMTemplateClassifier:
    def __init__(self, llm: LLM, max_examples: int = MAX_EXAMPLES) -> None:
        self.llm = llm
        self.max_examples = max_examples

    async def classify(
        self, template: str, examples: Sequence[str], rule: Classification
    ) -> Classification | None:
        budget = min(2000, self.llm.options.max_prompt_tokens) - estimate_tokens(prompt.SYSTEM) - 64
        messages, _ = prompt.build(template, list(examples)[: self.max_examples], _describe(rule), budget)
        try:
            answer = await ask_structured(
                self.llm, "classification", messages, prompt.TemplateLabel, max_tokens=200
            )
        except InvalidOutput as exc:
            log.warning("no usable model label for a log template, rules label kept: %s", exc)
            return None
        # Other LLMErrors (server down, rate limits, quota) propagate: the labeller retries the
        # template later instead of recording that the model had no opinion.
        label = answer.value
        return Classification(
            failure_type=label.failure_type,
            severity=label.severity,
            component=(label.component or "").strip()[:64] or rule.component,
            confidence=round(min(1.0, max(0.0, label.confidence)), 3),
            method="model",
            reason=f"{self.llm.generated_by}: {label.reason.strip()[:300]}",
        )
