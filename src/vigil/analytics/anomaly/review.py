"""The seam for an optional "second opinion" on a finding (e.g. from an LLM).

Vigil does not need it: detection works without. When one is configured, the pipeline asks
it about findings whose score is at least ``SecondOpinionPolicy.min_score`` and records the
verdict on the finding (it may lower the severity or mark it as likely benign, never delete
evidence). Implementations live outside ``analytics`` (e.g. in ``vigil.llm``) because they do
I/O; this module only defines the shapes both sides agree on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from vigil.analytics.anomaly.detector import DetectionResult


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    """What a reviewer is shown: the series, the recent points and the detector's evidence."""

    series_key: str  # e.g. "cpu,host=web-1:usage_user"
    results: tuple[DetectionResult, ...]  # the points of the finding, oldest first
    seasonality: str  # the detector's baseline: "none", "daily" or "weekly"
    context: dict[str, str] = field(default_factory=dict)  # e.g. host role, recent deploys


@dataclass(frozen=True, slots=True)
class ReviewVerdict:
    is_real: bool  # the reviewer believes it is a genuine problem
    confidence: float  # 0..1
    rationale: str  # short text shown next to the finding


@runtime_checkable
class SecondOpinion(Protocol):
    """Anything that can review a finding; async because real reviewers call out."""

    async def review(self, request: ReviewRequest) -> ReviewVerdict: ...


@dataclass(frozen=True, slots=True)
class SecondOpinionPolicy:
    """When to ask: only findings this strong, to bound cost and latency."""

    min_score: float = 0.8

    def wants_review(self, peak_score: float) -> bool:
        return peak_score >= self.min_score
