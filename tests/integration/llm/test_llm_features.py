"""The LLM implementations of the seams (template classifier, anomaly second opinion, incident
summarizer) against the scripted local server, including their fallbacks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.fakes.llm_server import FakeLLMServer, Reply, insufficient_quota, server_error
from vigil.alerting.summary import AlertBrief, IncidentSnapshot
from vigil.analytics.anomaly.detector import DetectionResult
from vigil.analytics.anomaly.review import ReviewRequest
from vigil.analytics.logclassify import Classification
from vigil.backends import Backends
from vigil.llm.classifier import LLMTemplateClassifier
from vigil.llm.client import LLM, LLMOptions
from vigil.llm.openai_compat import OpenAICompatProvider
from vigil.llm.second_opinion import LLMSecondOpinion
from vigil.llm.summarizer import LLMIncidentSummarizer
from vigil.llm.usage import MemoryUsage


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as s:
        yield s


@pytest.fixture
def usage() -> MemoryUsage:
    return MemoryUsage()


@pytest.fixture
def llm(server: FakeLLMServer, usage: MemoryUsage) -> LLM:
    async def no_wait(_: float) -> None:
        return None

    provider = OpenAICompatProvider(server.openai_url, "gpt-test", "k", timeout_s=5)
    return LLM(provider, LLMOptions(max_retries=1), usage, sleep=no_wait)


UNSURE = Classification("none", "low", None, 0.3, reason="no rule matched")
TEMPLATE = "worker <*> lost lease on shard <*> after <*> ms"


async def test_classifier_labels_a_template_the_rules_were_unsure_of(
    server: FakeLLMServer, llm: LLM, usage: MemoryUsage
) -> None:
    server.push(
        Reply(
            content=json.dumps(
                {
                    "failure_type": "dependency_down",
                    "severity": "high",
                    "component": "scheduler",
                    "confidence": 0.82,
                    "reason": "lost lease means the coordination service is unreachable",
                }
            )
        )
    )
    label = await LLMTemplateClassifier(llm).classify(
        TEMPLATE, ["worker 3 lost lease on shard 7 after 5012 ms"], UNSURE
    )
    await llm.aclose()
    assert label is not None
    assert (label.failure_type, label.severity, label.component, label.method) == (
        "dependency_down",
        "high",
        "scheduler",
        "model",
    )
    assert (
        label.confidence == 0.82 and label.reason is not None and label.reason.startswith("model:gpt-test: ")
    )
    prompt = server.chat_requests()[0].prompt
    assert TEMPLATE in prompt and "<data>" in prompt and "none, severity low" in prompt
    assert usage.events[0].feature == "classification"


async def test_classifier_rejects_an_unknown_failure_type_then_gives_no_opinion(
    server: FakeLLMServer, llm: LLM
) -> None:
    bad = json.dumps(
        {"failure_type": "cosmic_rays", "severity": "high", "component": None, "confidence": 1, "reason": "x"}
    )
    server.push(Reply(content=bad), Reply(content=bad))
    assert await LLMTemplateClassifier(llm).classify(TEMPLATE, [], UNSURE) is None
    await llm.aclose()
    assert "failure_type" in server.chat_requests()[1].messages[-1]["content"]


def _request() -> ReviewRequest:
    results = tuple(
        DetectionResult(
            time=1_714_557_600.0 + 60 * i,
            value=50.0 + (40.0 if i >= 8 else 0.0),
            score=0.95 if i >= 8 else 0.1,
            onset=0.9 if i == 8 else 0.0,
            is_anomalous=i >= 8,
            expected=50.0,
            lower=45.0,
            upper=55.0,
            methods=("level_shift",) if i >= 8 else (),
            evidence=2.0 if i >= 8 else 0.1,
        )
        for i in range(10)
    )
    return ReviewRequest("cpu,host=web-1:usage_user", results, "daily", {"role": "web"})


async def test_second_opinion_verdict(server: FakeLLMServer, llm: LLM) -> None:
    server.push(Reply(content='{"is_real": false, "confidence": 0.7, "rationale": "Nightly batch job."}'))
    verdict = await LLMSecondOpinion(llm).review(_request())
    await llm.aclose()
    assert (verdict.is_real, verdict.confidence) == (False, 0.7)
    assert verdict.rationale == "Nightly batch job. (model:gpt-test)"
    prompt = server.chat_requests()[0].prompt
    assert "cpu,host=web-1:usage_user" in prompt and "fired=level_shift" in prompt and "role: web" in prompt


async def test_second_opinion_fails_safe_when_the_model_is_unavailable(
    server: FakeLLMServer, llm: LLM
) -> None:
    server.push(insufficient_quota())
    verdict = await LLMSecondOpinion(llm).review(_request())
    await llm.aclose()
    assert verdict.is_real is True and verdict.confidence == 0.0
    assert "LLMQuotaExceeded" in verdict.rationale


def _snapshot() -> IncidentSnapshot:
    at = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    alert = AlertBrief(7, "Disk /var 97% full on web-03", "high", "new", "anomaly", "web-03", None, at, at, 3)
    return IncidentSnapshot(
        id=1,
        title="Disk filling on web-03",
        severity="high",
        status="new",
        started_at=at,
        acknowledged_at=None,
        resolved_at=None,
        assignee=None,
        hosts=("web-03",),
        services=(),
        categories=("disk",),
        alert_count=1,
        open_alert_count=1,
        alerts=(alert,),
    )


async def test_summarizer_writes_plain_text_labelled_with_the_model(server: FakeLLMServer, llm: LLM) -> None:
    server.push(
        Reply(content="- The /var filesystem on web-03 is 97% full\nand still growing since 10:00 UTC.")
    )
    summary = await LLMIncidentSummarizer(llm).summarize(_snapshot())
    await llm.aclose()
    assert summary.generated_by == "model:gpt-test"
    assert summary.text == "The /var filesystem on web-03 is 97% full and still growing since 10:00 UTC."
    assert "Disk /var 97% full on web-03" in server.chat_requests()[0].prompt


async def test_summarizer_falls_back_to_rules(server: FakeLLMServer, llm: LLM) -> None:
    server.push(server_error(), server_error())
    summary = await LLMIncidentSummarizer(llm).summarize(_snapshot())
    await llm.aclose()
    assert summary.generated_by == "rules"
    assert summary.text.startswith("1 alert (1 still firing) on host web-03")


async def test_classifier_raises_when_the_model_is_unreachable_so_the_template_is_retried(
    server: FakeLLMServer, llm: LLM
) -> None:
    from vigil.llm.client import LLMQuotaExceeded

    server.push(insufficient_quota())
    with pytest.raises(LLMQuotaExceeded):
        await LLMTemplateClassifier(llm).classify(TEMPLATE, [], UNSURE)
    await llm.aclose()


async def test_the_log_labeller_stores_the_model_label(backends: Backends, server: FakeLLMServer) -> None:
    """The log intelligence seam end to end: a low-confidence rule label replaced by the model's."""
    from sqlalchemy import select

    from vigil.llm.factory import template_classifier
    from vigil.logs.labels import ModelLabeler
    from vigil.store.models.logs import LogTemplate

    backends.settings.llm_provider = "openai"
    backends.settings.llm_base_url = server.openai_url
    backends.settings.llm_model = "fake-model"
    classifier = template_classifier(backends)
    assert classifier is not None
    async with backends.db.session() as session:
        session.add(
            LogTemplate(
                source="app",
                local_id=1,
                template=TEMPLATE,
                count=3,
                first_seen_ns=1,
                last_seen_ns=2,
                examples=["worker 3 lost lease on shard 7 after 5012 ms"],
                failure_type="none",
                severity="low",
                label_method="rule",
                label_confidence=0.3,
            )
        )
    server.push(
        Reply(
            content='{"failure_type": "dependency_down", "severity": "high", "component": "scheduler", '
            '"confidence": 0.8, "reason": "coordination service unreachable"}'
        )
    )
    assert await ModelLabeler(backends, classifier).run_once() == 1
    async with backends.db.session() as session:
        row = (await session.execute(select(LogTemplate))).scalar_one()
    assert (row.failure_type, row.severity, row.label_method) == ("dependency_down", "high", "model")
    assert row.label_confidence == 0.8 and row.model_checked_at is not None
