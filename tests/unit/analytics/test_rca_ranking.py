"""Ranking candidate root causes on hand-made evidence: timing, topology, specificity."""

from __future__ import annotations

import pytest

from vigil.analytics.rca_ranking import (
    Evidence,
    Scope,
    categorise,
    group_candidates,
    rank,
    specificity,
    timeline,
    topology,
)

T0 = 1_714_557_600.0  # incident start
MIN = 60.0


def ev(id_: str, kind: str, title: str, minutes: float, **kw: object) -> Evidence:
    return Evidence(id=id_, kind=kind, title=title, onset=T0 + minutes * MIN, **kw)


@pytest.mark.parametrize(
    ("texts", "category"),
    [
        (("disk", "used_percent"), "disk_space"),
        (("mem", "used_percent"), "out_of_memory"),
        (("cpu", "usage_user"), "cpu"),
        (("Interface Gi0/1 down on sw-1",), "network"),
        (("http_server", "latency_p99"), "latency"),
        (("checkout 5xx error rate",), "errors"),
        (("Fan 2 failed: temperature high",), "hardware"),
        (("something else entirely",), None),
    ],
)
def test_categorise(texts: tuple[str, ...], category: str | None) -> None:
    assert categorise(*texts) == category


def test_specific_evidence_beats_generic_symptoms() -> None:
    template = ev("E1", "new_log_template", "No space left on device", 0, category="disk_space", is_new=True)
    cpu = ev("E2", "metric_anomaly", "cpu high", 0, category="cpu")
    unknown = ev("E3", "new_log_template", "GET /health 200", 0)
    release = ev("E4", "release", "Release 2.4.1", 0, subject="2.4.1")
    assert specificity(template) > specificity(release) > specificity(cpu)
    assert specificity(unknown) < specificity(template)


def test_topology_levels() -> None:
    scope = Scope(
        start=T0,
        hosts=frozenset({"web-03"}),
        services=frozenset({"checkout"}),
        runs_on={"checkout": frozenset({"app-01"}), "payments-db": frozenset({"db-01"})},
        depends_on={"checkout": frozenset({"payments"}), "payments": frozenset({"payments-db"})},
    )
    assert topology(ev("E1", "alert", "x", 0, host="web-03"), scope)[0] == 1.0
    assert topology(ev("E1", "alert", "x", 0, service="checkout"), scope)[0] == 1.0
    assert topology(ev("E1", "alert", "x", 0, host="app-01"), scope)[0] == 0.9  # runs checkout
    assert topology(ev("E1", "alert", "x", 0, service="payments"), scope)[0] == 0.7  # a dependency
    assert topology(ev("E1", "alert", "x", 0, host="db-01"), scope)[0] == 0.7  # runs a dependency (2 hops)
    assert topology(ev("E1", "alert", "x", 0), scope)[0] == 0.5  # unscoped
    assert topology(ev("E1", "alert", "x", 0, host="web-99"), scope)[0] == 0.15


def test_disk_filling_ranks_first_over_a_later_generic_symptom_and_an_unrelated_earlier_anomaly() -> None:
    scope = Scope(start=T0, hosts=frozenset({"web-03"}))
    evidence = [
        ev("E1", "metric_anomaly", "cpu spike on db-07", -50, host="db-07", category="cpu", score=0.95),
        ev(
            "E2",
            "prediction",
            "/var on web-03 full in ~2 h",
            -40,
            host="web-03",
            category="disk_space",
            score=0.8,
        ),
        ev("E3", "metric_anomaly", "disk used_percent on web-03", -20, host="web-03", category="disk_space"),
        ev(
            "E4",
            "new_log_template",
            "No space left on device",
            -1,
            host="web-03",
            category="disk_space",
            is_new=True,
        ),
        ev("E5", "metric_anomaly", "latency p99 on web-03", 1, host="web-03", category="latency", score=0.9),
    ]
    hypotheses = rank(evidence, scope)
    top = hypotheses[0]
    assert top.key == "disk_space@web-03"
    assert top.evidence_ids == ("E2", "E3", "E4")  # in onset order
    assert top.title.startswith("Disk space exhaustion on web-03")
    assert any("corroborated by 3 kinds" in r for r in top.reasons)
    assert {h.key for h in hypotheses[1:]} == {"cpu@db-07", "latency@web-03"}
    assert top.lead_s == 40 * MIN


def test_release_and_the_errors_it_introduced_are_one_cause() -> None:
    scope = Scope(start=T0, services=frozenset({"checkout"}))
    evidence = [
        ev("E1", "release", "Release 2.4.1 of checkout", -6, service="checkout", subject="2.4.1"),
        ev(
            "E2",
            "error_group",
            "KeyError: 'currency'",
            -5,
            service="checkout",
            release="2.4.1",
            is_new=True,
            category="errors",
            subject="error_group:7",
        ),
        ev("E3", "log_burst", "burst of 'payment failed'", -3, service="checkout", category="errors"),
        ev("E4", "metric_anomaly", "checkout latency", -2, service="checkout", category="latency"),
    ]
    groups = group_candidates(evidence)
    assert sorted(e.id for e in groups["release:checkout:2.4.1"]) == ["E1", "E2"]
    top = rank(evidence, scope)[0]
    assert top.key == "release:checkout:2.4.1"
    assert top.title == "Release 2.4.1 of checkout, followed by 1 new error group"
    assert top.evidence_ids == ("E1", "E2")


def test_a_candidate_that_began_after_the_incident_is_penalised() -> None:
    scope = Scope(start=T0, hosts=frozenset({"app-02"}))
    before = ev("E1", "metric_anomaly", "mem growing on app-02", -30, host="app-02", category="out_of_memory")
    after = ev(
        "E2",
        "new_log_template",
        "segfault in worker",
        10,
        host="app-02",
        category="service_crash",
        is_new=True,
    )
    first, second = rank([before, after], scope)
    assert first.key == "out_of_memory@app-02"
    assert second.timing == pytest.approx((1 - 0.7) * 0.5)
    assert any("after the incident started" in r for r in second.reasons)


def test_ranking_is_deterministic_and_independent_of_input_order() -> None:
    scope = Scope(start=T0, hosts=frozenset({"a", "b"}))
    evidence = [
        ev(f"E{i}", "metric_anomaly", f"m{i}", -i, host="a" if i % 2 else "b", category=c)
        for i, c in enumerate(["cpu", "latency", "disk_space", "network", "errors"], start=1)
    ]
    forward = rank(evidence, scope)
    backward = rank(list(reversed(evidence)), scope)
    assert [h.to_dict() for h in forward] == [h.to_dict() for h in backward]
    assert [h.rank for h in forward] == [1, 2, 3, 4, 5]


def test_no_evidence_no_hypotheses() -> None:
    assert rank([], Scope(start=T0)) == []


def test_timeline_lists_what_came_first() -> None:
    scope = Scope(start=T0)
    items = [ev("E2", "alert", "b", 5), ev("E1", "alert", "a", -5)]
    assert [(t["id"], t["lead_s"]) for t in timeline(items, scope)] == [("E1", 300.0), ("E2", -300.0)]


def test_resource_saturation_explains_more_than_service_symptoms() -> None:
    cpu = ev("E1", "metric_anomaly", "cpu", 0, category="cpu")
    latency = ev("E2", "metric_anomaly", "latency", 0, category="latency")
    link_down = ev("E3", "alert", "Interface Gi0/1 down", 0, category="network")
    health_burst = ev("E4", "log_burst", "GET /health 200", 0)
    assert specificity(link_down) > specificity(cpu) > specificity(latency) > specificity(health_burst)


def test_a_long_standing_condition_is_not_a_recent_change() -> None:
    scope = Scope(start=T0, hosts=frozenset({"web-03"}), horizon_s=6 * 3600)
    old = ev("E1", "alert", "RAID degraded on web-03", -3 * 24 * 60, host="web-03", category="hardware")
    new = ev("E2", "metric_anomaly", "disk used on web-03", -10, host="web-03", category="disk_space")
    by_key = {h.key: h for h in rank([old, new], scope)}
    assert by_key["hardware@web-03"].timing == 0.5
    assert any("long-standing condition (open for 3.0 days)" in r for r in by_key["hardware@web-03"].reasons)
    assert by_key["disk_space@web-03"].timing == 1.0  # the earliest *recent* signal


def test_a_prediction_that_ran_out_later_than_the_incident_explains_little() -> None:
    due = ev("E1", "prediction", "/var full in ~2 h", -120, category="disk_space", details={"eta_s": 7200})
    five_days = {"eta_s": 432000}
    later = ev("E2", "prediction", "/var full in ~5 days", -120, category="disk_space", details=five_days)
    assert specificity(due, T0) == 0.8
    assert specificity(later, T0) == 0.45
    assert specificity(later) == 0.8  # without a start there is nothing to compare with
