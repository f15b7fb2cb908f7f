"""``SecondOpinion`` by a model: is this metric anomaly a real problem?

Fails safe: when the model cannot be asked or answers nonsense twice, the verdict is "real" with
zero confidence, so a reviewer outage never hides a finding.
"""

from __future__ import annotations

import logging

from vigil.analytics.anomaly.review import ReviewRequest, ReviewVerdict
from vigil.llm.budget import estimate_tokens
from vigil.llm.client import LLM, LLMError
from vigil.llm.prompts import second_opinion as prompt
from vigil.llm.structured import ask_structured

log = logging.getLogger(__name__)

MAX_POINTS = 60


class LLMSecondOpinion:
    def __init__(self, llm: LLM, max_points: int = MAX_POINTS) -> None:
        self.llm = llm
        self.max_points = max_points

    async def review(self, request: ReviewRequest) -> ReviewVerdict:
        points = [
            (r.time, r.value, r.expected, r.lower, r.upper, r.score, ",".join(r.methods))
            for r in request.results[-self.max_points :]
        ]
        budget = min(3000, self.llm.options.max_prompt_tokens) - estimate_tokens(prompt.SYSTEM) - 64
        messages, _ = prompt.build(request.series_key, request.seasonality, points, request.context, budget)
        try:
            answer = await ask_structured(
                self.llm, "second_opinion", messages, prompt.AnomalyVerdict, max_tokens=200
            )
        except LLMError as exc:
            log.warning("second opinion on %s unavailable, finding kept: %s", request.series_key, exc)
            return ReviewVerdict(
                is_real=True,
                confidence=0.0,
                rationale=f"no second opinion: {self.llm.generated_by} failed ({type(exc).__name__})",
            )
        verdict = answer.value
        return ReviewVerdict(
            is_real=verdict.is_real,
            confidence=round(min(1.0, max(0.0, verdict.confidence)), 3),
            rationale=f"{verdict.rationale.strip()[:500]} ({self.llm.generated_by})",
        )
