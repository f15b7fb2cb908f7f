"""Evidence from records, the rules explanation, citation checking and the RCA prompt budget."""

from __future__ import annotations

from vigil.analytics.rca_ranking import Scope, rank
from vigil.llm.budget import estimate_tokens
from vigil.llm.prompts import rca as prompt
from vigil.rca.evidence import (
    AlertRecord,
    ErrorGroupRecord,
    ReleaseRecord,
    TemplateRecord,
    build_evidence,
    describe,
)
from vigil.rca.explain import citation_problem, rules_explanation

T0 = 1_714_557_600.0
MIN = 60.0


def finding_alert(id_: int, kind: str, minutes: float, **finding: object) -> AlertRecord:
    return AlertRecord(
        id=id_,
        origin="anomaly",
        title=str(finding.pop("title", f"{kind} {id_}")),
        severity="high",
        first_seen=T0 + minutes * MIN,
        host=str(finding.pop("host", "web-03")),
        evidence=({"type": "finding", "kind": kind, **finding},),
    )


def test_records_become_evidence_in_onset_order_without_duplicates() -> None:
    evidence = build_evidence(
        alerts=[
            finding_alert(
                1,
                "anomaly",
                -20,
                key="disk,host=web-03:used_percent",
                measurement="disk",
                field="used_percent",
                score=0.9,
                observed=97.1,
                expected=60.0,
            ),
            finding_alert(
                2,
                "new_error_template",
                -1,
                key="log_template:5",
                template_id=5,
                failure_type="disk_space",
                score=0.95,
                title="New error log pattern",
            ),
            AlertRecord(
                3,
                "alertmanager",
                "HighLatency checkout",
                "medium",
                T0 + 2 * MIN,
                service="checkout",
                labels={"alertname": "HighLatency"},
            ),
        ],
        templates=[
            # Template 5 is already carried by alert 2: not repeated.
            TemplateRecord(5, "No space left on device", T0 - 1 * MIN, failure_type="disk_space"),
            TemplateRecord(6, "write failed: <*>", T0 - 2 * MIN, hosts=("web-03",)),
        ],
        error_groups=[ErrorGroupRecord(9, "OSError: [Errno 28]", T0 - 3 * MIN, T0, first_release="web@1.2")],
        releases=[ReleaseRecord("web", "web@1.2", T0 - 30 * MIN, previous="web@1.1")],
        window_start=T0 - 7200,
    )
    assert [e.id for e in evidence] == [f"E{i}" for i in range(1, 7)]
    assert [e.kind for e in evidence] == [
        "release",
        "metric_anomaly",
        "error_group",
        "new_log_template",
        "new_log_template",
        "alert",
    ]
    disk, template_alert = evidence[1], evidence[4]
    assert disk.category == "disk_space" and disk.score == 0.9 and disk.details["observed"] == 97.1
    assert template_alert.category == "disk_space" and template_alert.ref["template_id"] == 5
    assert not any(
        e.ref.get("template_id") == 5 and e.kind == "new_log_template" and e.id != "E5" for e in evidence
    )
    assert evidence[2].release == "web@1.2" and evidence[2].is_new
    assert evidence[5].category == "latency"
    assert describe(evidence[0], T0).startswith("[E1] release: Release web@1.2 of web first seen")
    assert "30 min before the start" in describe(evidence[0], T0)


def _ranked() -> tuple[list, list, Scope]:
    evidence = build_evidence(
        alerts=[
            finding_alert(1, "anomaly", -20, key="disk", measurement="disk", field="used_percent", score=0.9),
            finding_alert(2, "new_error_template", -1, key="t", template_id=5, failure_type="disk_space"),
            finding_alert(3, "anomaly", 1, key="lat", measurement="http", field="latency_p99", score=0.8),
        ],
        window_start=T0 - 7200,
    )
    scope = Scope(start=T0, hosts=frozenset({"web-03"}))
    return evidence, rank(evidence, scope), scope


def test_rules_explanation_cites_the_top_hypothesis_and_suggests_steps() -> None:
    evidence, hypotheses, scope = _ranked()
    result = rules_explanation(hypotheses, evidence, scope)
    assert result.generated_by == "rules" and result.chosen_rank == 1
    assert result.summary.startswith("Most likely cause: Disk space exhaustion on web-03")
    assert "[E1]" in result.explanation and "20 min before the incident started" in result.explanation
    assert set(result.citations) <= {e.id for e in evidence}
    assert result.next_steps[0]["action"].startswith("Free space on web-03")
    assert result.next_steps[0]["evidence_ids"] == ["E1", "E2"]


def test_rules_explanation_without_evidence() -> None:
    result = rules_explanation([], [], Scope(start=T0))
    assert result.chosen_rank is None and result.citations == []
    assert "No evidence" in result.summary


def answer(**kw: object) -> prompt.RCAAnswer:
    base: dict[str, object] = {
        "hypothesis": 1,
        "summary": "Disk full [E1].",
        "explanation": "It filled [E1][E2].",
        "evidence_ids": ["E1", "E2"],
        "next_steps": [{"action": "Free space", "evidence_ids": ["E1"]}],
        "confidence": 0.8,
    }
    return prompt.RCAAnswer.model_validate({**base, **kw})


def test_citations_must_be_among_the_supplied_ids() -> None:
    shown = {"E1", "E2", "E3"}
    assert citation_problem(answer(), shown, 3) is None
    problem = citation_problem(answer(evidence_ids=["E1", "E9"]), shown, 3)
    assert problem is not None and "not supplied: E9" in problem and "(E1, E2, E3)" in problem
    assert "E7" in (citation_problem(answer(explanation="Because of [E7]."), shown, 3) or "")
    steps = [{"action": "Roll back, see [E12]", "evidence_ids": []}]
    assert "E12" in (citation_problem(answer(next_steps=steps), shown, 3) or "")
    # A bare exception name that looks like an id is not a citation; only bracketed ids are.
    assert citation_problem(answer(explanation="MongoDB E11000 duplicate key [E1]."), shown, 3) is None


def test_citations_cannot_be_empty_and_the_hypothesis_must_exist() -> None:
    shown = {"E1"}
    empty = answer(
        summary="Disk.",
        explanation="Full.",
        evidence_ids=[],
        next_steps=[{"action": "x", "evidence_ids": []}],
    )
    assert "cited no evidence" in (citation_problem(empty, shown, 2) or "")
    assert "1 to 2" in (
        citation_problem(answer(hypothesis=5, evidence_ids=["E1"], explanation="[E1]"), {"E1", "E2"}, 2) or ""
    )


def test_prompt_shows_only_ids_whose_evidence_fits_the_budget() -> None:
    lines = [f"[E{i}] metric anomaly: {'very long title ' * 12} on host-{i}" for i in range(1, 120)]
    hypotheses = [("Disk space exhaustion on host-1", ["E1", "E2", "E118"])]
    messages, shown, notices = prompt.build(["Title: Disk"], hypotheses, lines, budget_tokens=1500)
    user = messages[1].content or ""
    assert estimate_tokens(user) <= 1600
    assert "E1" in shown and "E118" not in shown
    assert "evidence: E1, E2 (+1 not shown)" in user
    assert any("evidence items omitted" in n for n in notices)
    assert "[truncated:" in user
