"""Correlation, pure: fingerprints, matchers, silence windows, flapping and incident grouping on
scripted failure scenarios."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.alerting import scenarios
from tests.unit.alerting.scenarios import Step
from vigil.analytics.correlation import (
    AlertFeatures,
    CorrelationPolicy,
    Cron,
    FlapPolicy,
    GroupingRule,
    IncidentFeatures,
    Matcher,
    Recurrence,
    SilenceWindow,
    Topology,
    categories_of,
    check_fingerprint_fields,
    choose_incident,
    compute_fingerprint,
    is_flapping,
    max_severity,
    merge_features,
    new_incident_features,
    normalise_severity,
    parse_matchers,
    record_state_change,
    signal_labels,
    silencing,
    title_template,
    transition_error,
)
from vigil.domain.alerts import AlertSignal


def _signal(**kw: object) -> AlertSignal:
    base: dict[str, object] = {"origin": "alertmanager", "title": "t", "severity": "high", "time_ns": 0}
    base.update(kw)
    return AlertSignal(**base)  # type: ignore[arg-type]


# --- severities and statuses --------------------------------------------------------------------


def test_severity_order_and_mapping() -> None:
    assert max_severity(["low", "critical", "medium"]) == "critical"
    assert max_severity([]) == "low"
    assert [normalise_severity(s) for s in ("ERROR", "warning", "fatal", "info", "weird", None)] == [
        "high",
        "medium",
        "critical",
        "low",
        "medium",
        "medium",
    ]


def test_status_transitions() -> None:
    assert transition_error("new", "acknowledged") is None
    assert transition_error("acknowledged", "in_progress") is None
    assert transition_error("resolved", "resolved") is None  # no-op
    assert "cannot become" in (transition_error("resolved", "acknowledged") or "")
    assert "unknown status" in (transition_error("new", "done") or "")


# --- templates, fingerprints --------------------------------------------------------------------


def test_title_template_masks_variables_and_own_host() -> None:
    a = title_template("Disk usage on /var at 97% on web-03", "web-03")
    b = title_template("Disk usage on /var at 98.5% on web-04", "web-04")
    assert a == b == "disk usage on /var at <num> on <host>"
    assert title_template("conn from 10.1.2.3:5432 id 9ec79c33ec9942ab") == "conn from <ip> id <id>"
    # Another host's name is not masked: it is part of what the alert is about.
    assert "web-04" in title_template("web-03 cannot reach web-04", "web-03")


def test_categories_recognise_the_same_problem_in_different_words() -> None:
    assert categories_of("No space left on device") == {"disk"}
    assert categories_of("disk.used_percent anomalous") == {"disk"}
    assert "memory" in categories_of("Out of memory: Killed process 42")
    assert "memory" in categories_of("ContainerRestarted OOMKilled")
    assert categories_of("nothing to see") == frozenset()


def test_fingerprint_default_is_host_service_and_title_template() -> None:
    one = compute_fingerprint(_signal(title="Disk 97% full", host="web-03"))
    again = compute_fingerprint(_signal(title="Disk 99% full", host="web-03"))
    other_host = compute_fingerprint(_signal(title="Disk 97% full", host="web-04"))
    assert one.fingerprint == again.fingerprint != other_host.fingerprint
    assert one.fields == ("host", "service", "title_template")
    assert one.values["title_template"] == "disk <num> full"


def test_fingerprint_prefers_the_origins_own_and_honours_rules() -> None:
    own = compute_fingerprint(_signal(fingerprint="1a30ba71", host="a"))
    own_other_host = compute_fingerprint(_signal(fingerprint="1a30ba71", host="b"))
    assert own.fingerprint == own_other_host.fingerprint and own.fields == ("fingerprint",)
    # The origin is part of the identity: the same own fingerprint from another origin differs.
    assert compute_fingerprint(_signal(origin="error", fingerprint="1a30ba71")).fingerprint != own.fingerprint
    ruled_a = compute_fingerprint(
        _signal(fingerprint="x", labels={"alertname": "Down", "job": "a"}), ["labels.alertname"]
    )
    ruled_b = compute_fingerprint(
        _signal(fingerprint="y", labels={"alertname": "Down", "job": "b"}), ["labels.alertname"]
    )
    assert ruled_a.fingerprint == ruled_b.fingerprint
    assert ruled_a.values == {"labels.alertname": "Down"}
    assert "rule" in ruled_a.reason


def test_fingerprint_field_validation_names_the_bad_field() -> None:
    assert check_fingerprint_fields(["host", "labels.job"]) is None
    assert "at least one" in (check_fingerprint_fields([]) or "")
    assert "'hostname'" in (check_fingerprint_fields(["host", "hostname"]) or "")
    assert check_fingerprint_fields(["labels."]) is not None


# --- matchers -----------------------------------------------------------------------------------


def test_matchers_equality_and_anchored_regex() -> None:
    labels = signal_labels(_signal(host="web-03", labels={"env": "prod"}))
    assert Matcher.parse({"name": "host", "op": "=", "value": "web-03"}).matches(labels)
    assert Matcher.parse({"name": "host", "op": "=~", "value": "web-.*"}).matches(labels)
    assert not Matcher.parse({"name": "host", "op": "=~", "value": "web"}).matches(labels)  # anchored
    assert Matcher.parse({"name": "env", "op": "!=", "value": "dev"}).matches(labels)
    assert not Matcher.parse({"name": "env", "op": "!~", "value": "pr.*"}).matches(labels)
    # A missing label reads as the empty string.
    assert Matcher.parse({"name": "team", "op": "=", "value": ""}).matches(labels)


def test_matcher_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"matchers\[1\]\.value: invalid regular expression"):
        parse_matchers([{"name": "a", "value": "x"}, {"name": "b", "op": "=~", "value": "("}])
    with pytest.raises(ValueError, match=r"matchers\[0\]\.op"):
        parse_matchers([{"name": "a", "op": "~", "value": "x"}])
    with pytest.raises(ValueError, match=r"matchers\[0\]\.name"):
        parse_matchers([{"value": "x"}])


# --- silence windows ----------------------------------------------------------------------------


def test_cron_parsing_and_day_semantics() -> None:
    cron = Cron.parse("*/15 2-3 * * sat,sun")
    assert cron.minutes == {0, 15, 30, 45} and cron.hours == {2, 3} and cron.weekdays == {5, 6}
    assert cron.matches(datetime(2026, 12, 5, 2, 30, tzinfo=UTC))  # a Saturday
    assert not cron.matches(datetime(2026, 12, 4, 2, 30, tzinfo=UTC))  # a Friday
    # Both day fields restricted: either matches (cron's rule).
    either = Cron.parse("0 0 1 * mon")
    assert either.matches(datetime(2026, 12, 1, tzinfo=UTC))  # the 1st, a Tuesday
    assert either.matches(datetime(2026, 12, 7, tzinfo=UTC))  # a Monday
    assert not either.matches(datetime(2026, 12, 8, tzinfo=UTC))
    assert Cron.parse("0 0 * * 7").weekdays == {6}  # 7 is Sunday too
    with pytest.raises(ValueError, match="cron: hour field"):
        Cron.parse("0 25 * * *")
    with pytest.raises(ValueError, match="5 fields"):
        Cron.parse("0 0 * *")


def test_weekly_window_crossing_midnight_in_a_time_zone() -> None:
    window = Recurrence.parse(
        {"type": "weekly", "days": ["sat"], "start": "22:00", "end": "02:00", "timezone": "Europe/Paris"}
    )
    saturday_2230_paris = datetime(2026, 12, 5, 21, 30, tzinfo=UTC)
    sunday_0130_paris = datetime(2026, 12, 6, 0, 30, tzinfo=UTC)
    sunday_0230_paris = datetime(2026, 12, 6, 1, 30, tzinfo=UTC)
    saturday_2130_paris = datetime(2026, 12, 5, 20, 30, tzinfo=UTC)
    assert window.is_active(saturday_2230_paris) and window.is_active(sunday_0130_paris)
    assert not window.is_active(sunday_0230_paris) and not window.is_active(saturday_2130_paris)
    assert window.next_start(datetime(2026, 12, 1, tzinfo=UTC)) == datetime(2026, 12, 5, 21, 0, tzinfo=UTC)


def test_cron_window_lasts_its_duration() -> None:
    window = Recurrence.parse({"type": "cron", "cron": "0 2 * * *", "duration_minutes": 90})
    day = datetime(2026, 12, 3, tzinfo=UTC)
    assert not window.is_active(day + timedelta(hours=1, minutes=59))
    assert window.is_active(day + timedelta(hours=2))
    assert window.is_active(day + timedelta(hours=3, minutes=29))
    assert not window.is_active(day + timedelta(hours=3, minutes=30))
    assert window.next_start(day) == day + timedelta(hours=2)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "weekly", "days": [], "start": "01:00", "end": "02:00"}, "days"),
        ({"type": "weekly", "days": ["funday"], "start": "01:00", "end": "02:00"}, "days"),
        ({"type": "weekly", "days": [1], "start": "1am", "end": "02:00"}, "start"),
        ({"type": "cron", "cron": "0 2 * * *", "duration_minutes": 0}, "duration_minutes"),
        ({"type": "cron", "cron": "0 2 * * *", "duration_minutes": 20000}, "duration_minutes"),
        (
            {"type": "weekly", "days": [1], "start": "01:00", "end": "02:00", "timezone": "Mars/Base"},
            "timezone",
        ),
        ({"type": "monthly"}, "type"),
    ],
)
def test_recurrence_errors_name_the_field(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Recurrence.parse(raw)


def test_silence_window_bounds_and_matching() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    web = SilenceWindow(
        1,
        tuple(parse_matchers([{"name": "host", "op": "=~", "value": "web-.*"}])),
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )
    expired = SilenceWindow(2, (), starts_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1))
    future = SilenceWindow(3, (), starts_at=now + timedelta(minutes=5))
    labels = signal_labels(_signal(host="web-03"))
    assert silencing([web, expired, future], labels, now) == [1]
    assert silencing([web], signal_labels(_signal(host="db-01")), now) == []
    assert silencing([future], labels, now + timedelta(minutes=6)) == [3]


# --- flapping -----------------------------------------------------------------------------------


def test_flapping_starts_at_threshold_and_stops_after_a_quiet_window() -> None:
    policy = FlapPolicy(threshold=4, window_s=600)
    history: list[float] = []
    flapping = False
    states = []
    for t in (0, 60, 120, 180):
        history = record_state_change(history, t, policy)
        flapping = is_flapping(history, t, policy, flapping)
        states.append(flapping)
    assert states == [False, False, False, True]
    assert is_flapping(history, 700, policy, flapping)  # changes at 120 and 180 are still recent
    assert not is_flapping(history, 781, policy, flapping)  # quiet for a whole window
    # Slow changes never flap: old ones fall out of the window.
    slow: list[float] = []
    for t in range(0, 6000, 700):
        slow = record_state_change(slow, t, policy)
        assert not is_flapping(slow, t, policy, False)
    assert len(slow) == 1


# --- incident grouping --------------------------------------------------------------------------


def _features(step: Step) -> AlertFeatures:
    signal = step.signal()
    return AlertFeatures.of(
        at_s=signal.time_ns / 1e9,
        title=signal.title,
        origin=signal.origin,
        host=signal.host,
        service=signal.service,
        labels=signal_labels(signal),
        extra_text=" ".join(signal.labels.values()),
    )


def simulate(
    steps: list[Step],
    dependencies: list[tuple[str, str]] | None = None,
    rules: tuple[GroupingRule, ...] = (),
) -> dict[str, set[int]]:
    """Feed the steps like the alert service does; the incidents each failure's alerts got."""
    incidents: dict[int, IncidentFeatures] = {}
    alert_incident: dict[str, int] = {}
    alert_open: dict[str, bool] = {}
    pairs: list[tuple[str, str]] = []
    got: dict[str, set[int]] = {}
    for step in sorted(steps, key=lambda s: s.minute):
        signal = step.signal()
        fp = compute_fingerprint(signal).fingerprint
        if step.resolved:
            alert_open[fp] = False
            incident_id = alert_incident[fp]
            still_open = any(alert_open[f] for f, i in alert_incident.items() if i == incident_id)
            incidents[incident_id].open = still_open
            continue
        features = _features(step)
        if fp in alert_incident:  # a re-fire or reopening keeps its incident
            incident_id = alert_incident[fp]
            incidents[incident_id] = merge_features(incidents[incident_id], features)
        else:
            if step.host and step.service:
                pairs.append((step.host, step.service))
            topology = Topology.build(pairs, dependencies or [])
            decision = choose_incident(features, list(incidents.values()), topology, rules)
            if decision.incident_id is None:
                incident_id = len(incidents) + 1
                incidents[incident_id] = new_incident_features(incident_id, features, decision.rule_key)
            else:
                incident_id = decision.incident_id
                incidents[incident_id] = merge_features(incidents[incident_id], features)
            alert_incident[fp] = incident_id
        alert_open[fp] = True
        got.setdefault(step.failure, set()).add(incident_id)
    return got


def assert_one_incident_per_failure(got: dict[str, set[int]]) -> None:
    for failure, incident_ids in got.items():
        assert len(incident_ids) == 1, f"{failure} split over incidents {sorted(incident_ids)}"
    owners = [next(iter(ids)) for ids in got.values()]
    assert len(set(owners)) == len(owners), f"unrelated failures merged: {got}"


def test_demo_fleet_failures_each_form_one_incident() -> None:
    got = simulate(scenarios.DEMO_FLEET)
    assert set(got) == {"disk", "memory", "deploy", "cpu", "flap"}
    assert_one_incident_per_failure(got)


def test_upstream_failure_and_downstream_errors_group_through_topology() -> None:
    got = simulate(scenarios.UPSTREAM_DATABASE, scenarios.UPSTREAM_DEPENDENCIES)
    assert_one_incident_per_failure(got)
    # Without the dependency the downstream errors are not linked to the database.
    split = simulate(scenarios.UPSTREAM_DATABASE)
    assert len(set().union(*split.values())) == 3


@pytest.mark.parametrize("name", ["fleet_wide", "same_host_different_problems", "recurrence_later"])
def test_hand_made_scenarios(name: str) -> None:
    assert_one_incident_per_failure(simulate(scenarios.SCENARIOS[name]))


def test_grouping_rule_forces_groups_by_label() -> None:
    rule = GroupingRule(
        1, "by cluster", tuple(parse_matchers(scenarios.CLUSTER_RULE["matchers"])), ("cluster",), 3600
    )
    got = simulate(scenarios.CLUSTERS, rules=(rule,))
    assert_one_incident_per_failure(got)
    assert set(got) == {"eu", "us"}


def test_decisions_explain_themselves() -> None:
    disk = _features(scenarios.DISK_FILLING[0])
    incident = new_incident_features(7, disk, None)
    later = _features(scenarios.DISK_FILLING[2])  # 3 hours later: "no space left" on web-03
    decision = choose_incident(later, [incident])
    assert decision.incident_id == 7
    assert any("same host web-03" in r for r in decision.reasons)
    assert any("disk" in r for r in decision.reasons)
    assert "ongoing problem of the same kind" in decision.reasons
    # Once the incident is over, the same problem hours later starts a new incident.
    incident.open = False
    assert choose_incident(later, [incident]).incident_id is None
    # A closer window policy can be asked for.
    assert (
        choose_incident(
            later, [new_incident_features(7, disk, None)], policy=CorrelationPolicy(long_s=3600)
        ).incident_id
        is None
    )
