"""GA, PA, FGA and FTA of bench/logparse.py on hand-made parses."""

from __future__ import annotations

import pytest

from bench.logparse import (
    group_f1,
    grouping_accuracy,
    normalize_template,
    parsing_accuracy,
    score,
    template_f1,
)

TRUTH = ["A <*>", "A <*>", "B", "C <*> <*>", "C <*> <*>"]


def test_perfect_parse_scores_one_everywhere() -> None:
    predicted_templates = ["A <*>", "A <*>", "B", "C <*>", "C <*><*>"]
    perfect = {"ga": 1.0, "pa": 1.0, "fga": 1.0, "fta": 1.0}
    assert score(TRUTH, [1, 1, 2, 3, 3], predicted_templates) == perfect


def test_splitting_a_group_costs_all_of_its_lines() -> None:
    predicted = [1, 1, 2, 3, 4]  # the C group is split in two
    assert grouping_accuracy(TRUTH, predicted) == pytest.approx(3 / 5)
    # predicted groups {0,1}, {2} are correct: precision 2/4, recall 2/3
    assert group_f1(TRUTH, predicted) == pytest.approx(2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3))


def test_merging_two_groups_costs_both() -> None:
    predicted = [1, 1, 1, 3, 3]  # A and B merged
    assert grouping_accuracy(TRUTH, predicted) == pytest.approx(2 / 5)


def test_parsing_accuracy_is_per_line_and_collapses_wildcard_runs() -> None:
    predicted_templates = ["A <*>", "A x", "B", "C <*>", "C  <*>   <*>"]
    assert parsing_accuracy(TRUTH, predicted_templates) == pytest.approx(4 / 5)
    assert normalize_template("a <*> <*><*>  b") == "a <*> b"


def test_template_f1_needs_the_right_group_and_the_right_text() -> None:
    # Groups are all right, but group 1's template text is wrong.
    predicted_templates = ["A x", "A x", "B", "C <*>", "C <*>"]
    groups = [1, 1, 2, 3, 3]
    assert template_f1(TRUTH, groups, predicted_templates) == pytest.approx(2 / 3)
    # Right text but a split group: the split halves do not count.
    assert template_f1(TRUTH, [1, 5, 2, 3, 3], ["A <*>", "A <*>", "B", "C <*>", "C <*>"]) == pytest.approx(
        2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3)
    )


def test_lengths_must_agree() -> None:
    with pytest.raises(ValueError):
        grouping_accuracy(TRUTH, [1, 2])
