"""Prediction rules: first match decides, ignore rules exclude, titles and durations read well."""

from __future__ import annotations

import math

from vigil.metrics.rules import (
    DEFAULT_RULESET,
    PredictionRule,
    RuleSet,
    format_eta,
    format_interval,
    render_title,
)


def _match(rules: RuleSet, measurement: str, field: str, tags: dict[str, str]) -> PredictionRule:
    rule = rules.match(measurement, field, tags)
    assert rule is not None, (measurement, field, tags)
    return rule


def test_default_rules_cover_the_resource_series() -> None:
    rules = DEFAULT_RULESET
    assert _match(rules, "disk", "used_percent", {"path": "/var"}).id == "default:disk_used"
    assert _match(rules, "disk", "inodes_free", {}).direction == "falling"
    assert _match(rules, "mem", "used_percent", {}).id == "default:mem_used"
    assert _match(rules, "cpu", "usage_idle", {"cpu": "cpu-total"}).threshold == 0.0
    assert rules.match("cpu", "usage_idle", {"cpu": "cpu3"}) is None  # per-core idle is not a resource
    assert _match(rules, "pgbouncer_pool", "used_percent", {}).id == "default:pool_used"
    assert rules.match("cpu", "usage_user", {}) is None


def test_first_matching_rule_decides_and_ignore_excludes() -> None:
    custom = PredictionRule(
        "rule:1", "tmpfs", "disk", "used_percent", tags=(("fstype", "tmpfs"),), action="ignore"
    )
    bigger = PredictionRule("rule:2", "90%", "disk", "used_*", threshold=90.0)
    rules = RuleSet.of([custom, bigger, *DEFAULT_RULESET.rules])
    assert rules.match("disk", "used_percent", {"fstype": "tmpfs"}) is None
    assert _match(rules, "disk", "used_percent", {"fstype": "ext4"}).threshold == 90.0
    assert rules.version != DEFAULT_RULESET.version
    assert RuleSet.of([custom, bigger]).version == RuleSet.of([custom, bigger]).version


def test_titles_fill_placeholders_and_leave_unknown_ones() -> None:
    title = render_title("{path} on {host} reaches {threshold}% {eta} {interval}", {
        "path": "/var", "host": "web-03", "threshold": "100", "eta": "in ~3.2 days",
        "interval": "(90% interval 2.5–4.1 days)",
    })  # fmt: skip
    assert title == "/var on web-03 reaches 100% in ~3.2 days (90% interval 2.5–4.1 days)"
    assert render_title("{host} {nope} {0.__class__}", {"host": "a"}) == "a {nope} {0.__class__}"
    assert render_title("{a} {b}", {"a": "x", "b": ""}) == "x"  # no dangling spaces


def test_durations_read_in_the_unit_of_the_estimate() -> None:
    assert format_eta(30) == "now"
    assert format_eta(35 * 60) == "35 min"
    assert format_eta(4 * 3600) == "4.0 h"
    assert format_eta(3.2 * 86400) == "3.2 days"
    assert format_eta(12 * 86400) == "12 days"
    assert format_interval(3.2 * 86400, 2.5 * 86400, 4.1 * 86400) == "(90% interval 2.5–4.1 days)"
    assert format_interval(4 * 3600, 3 * 3600, math.inf) == "(90% interval 3.0 h or later)"
