"""The detect stage's second-opinion seam, on both profiles: a strong anomaly is held back until
the reviewer answers; "benign" lowers it and every event of the finding records the verdict; a
failing reviewer never hides a finding."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.integration.metrics.helpers import (
    collected_findings,
    drain_groups,
    fast_options,
    wait_for_partitions,
)
from vigil.analytics.anomaly import ReviewRequest, ReviewVerdict, SecondOpinionPolicy
from vigil.backends import Backends
from vigil.domain import codec
from vigil.domain.metrics import Point
from vigil.pipeline.runner import Runner
from vigil.pipeline.stages.detect import MetricDetector

N = 600
START_S = 1_700_000_000 // 60 * 60


class ScriptedReviewer:
    def __init__(self, verdict: ReviewVerdict | None) -> None:
        self.verdict = verdict
        self.requests: list[ReviewRequest] = []

    async def review(self, request: ReviewRequest) -> ReviewVerdict:
        self.requests.append(request)
        await asyncio.sleep(0.2)  # a reviewer takes a while; the partition must not wait for it
        if self.verdict is None:
            raise ConnectionError("model endpoint down")
        return self.verdict


def _messages() -> list[bytes]:
    rng = np.random.default_rng(0)
    values = 10 + rng.normal(0, 1, N)
    values[N - 20 : N - 14] += 30
    return [
        codec.encode_points(
            Point("queue", {"depth": float(values[i])}, {"host": "q-1"}, (START_S + i * 60) * 1_000_000_000)
            for i in range(first, first + 50)
        )
        for first in range(0, N, 50)
    ]


async def _run(backends: Backends, reviewer: ScriptedReviewer, name: str) -> list[dict]:
    topic, findings_topic = f"test.metrics.{name}", f"test.findings.{name}"
    await backends.bus.ensure_group(findings_topic, "test")
    options = fast_options(2)
    options.review_policy = SecondOpinionPolicy(min_score=0.6)
    detector = MetricDetector(
        backends, options=options, reviewer=reviewer, topic=topic, findings_topic=findings_topic
    )
    await detector.ensure_groups()
    await backends.bus.publish_many(topic, _messages())
    runner = Runner(backends.bus, [], [detector], block_ms=100)
    await runner.start()
    try:
        await wait_for_partitions(detector, 2)
        await drain_groups(backends.bus, topic, 2)
        for _ in range(100):  # the held findings go out when the review ends
            findings = await collected_findings(backends.bus, findings_topic)
            if findings:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        findings += await collected_findings(backends.bus, findings_topic)
    finally:
        await runner.stop()
    return findings


async def test_benign_verdict_lowers_the_finding(backends: Backends) -> None:
    reviewer = ScriptedReviewer(ReviewVerdict(is_real=False, confidence=0.9, rationale="nightly batch job"))
    findings = await _run(backends, reviewer, "benign")
    assert findings[0]["state"] == "open" and findings[-1]["state"] == "resolved"
    [request] = reviewer.requests
    assert request.series_key == "queue.depth{host=q-1}"
    assert request.results and max(r.value for r in request.results) > 35
    assert request.context["tag.host"] == "q-1"
    for finding in findings:
        assert finding["severity"] == "low"
        assert finding["title"].startswith("Likely benign: ")
        assert finding["evidence"]["suppressed"] is True
        assert finding["evidence"]["second_opinion"] == {
            "verdict": "benign",
            "confidence": 0.9,
            "rationale": "nightly batch job",
        }


async def test_failing_reviewer_keeps_the_finding(backends: Backends) -> None:
    reviewer = ScriptedReviewer(None)
    findings = await _run(backends, reviewer, "failing")
    assert findings and findings[0]["state"] == "open"
    first = findings[0]
    assert first["severity"] == "high"  # the spike lies several band widths above the band
    assert not first["title"].startswith("Likely benign") and "suppressed" not in first["evidence"]
    assert first["evidence"]["second_opinion"]["verdict"] == "unavailable"
    assert "model endpoint down" in first["evidence"]["second_opinion"]["error"]
