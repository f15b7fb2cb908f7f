"""The second-opinion seam: the policy and the protocol a reviewer implements."""

from __future__ import annotations

import asyncio

from vigil.analytics.anomaly import (
    ReviewRequest,
    ReviewVerdict,
    SecondOpinion,
    SecondOpinionPolicy,
    UnivariateDetector,
)


class KeywordReviewer:
    """A stand-in reviewer: calls a finding benign when the context says a deploy is running."""

    async def review(self, request: ReviewRequest) -> ReviewVerdict:
        benign = "deploy" in request.context.get("events", "")
        rationale = "deploy in progress" if benign else ""
        return ReviewVerdict(is_real=not benign, confidence=0.7, rationale=rationale)


def test_policy_asks_only_about_strong_findings() -> None:
    policy = SecondOpinionPolicy(min_score=0.8)
    assert policy.wants_review(0.85)
    assert not policy.wants_review(0.5)


def test_a_reviewer_gets_the_detector_evidence_and_returns_a_verdict() -> None:
    reviewer = KeywordReviewer()
    assert isinstance(reviewer, SecondOpinion)
    detector = UnivariateDetector()
    results = tuple(detector.update(1_700_000_000.0 + 60 * i, 1.0) for i in range(3))
    request = ReviewRequest("cpu,host=a:usage", results, detector.seasonality, {"events": "deploy web v42"})
    verdict = asyncio.run(reviewer.review(request))
    assert not verdict.is_real and verdict.rationale == "deploy in progress"
    assert request.results[-1].time == 1_700_000_120.0
