"""Token budgets: prompts fit their limit, and every cut is announced in the prompt."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.llm.budget import (
    Section,
    estimate_messages_tokens,
    estimate_tokens,
    fit_messages,
    fit_sections,
    truncate_text,
)
from vigil.llm.client import Message


def test_estimate_grows_with_text_and_counts_digits_in_groups() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("disk") == 1
    assert estimate_tokens("disk full") == 2
    assert estimate_tokens("123456") == 2  # digits in groups of three
    assert estimate_tokens("infrastructure") == 3  # long words split
    # A log line with paths and numbers costs more per character than prose.
    log = "2024-05-01T10:00:00Z kernel: Out of memory: Killed process 4242 (java) total-vm:8123456kB"
    assert estimate_tokens(log) > len(log) / 4


def test_truncate_text_cuts_to_the_budget_at_a_word() -> None:
    text = " ".join(f"word{i}" for i in range(200))
    cut, was_cut = truncate_text(text, 50)
    assert was_cut and estimate_tokens(cut) <= 51 and cut.endswith(" …")
    assert text.startswith(cut[:-2])
    assert truncate_text("short text", 50) == ("short text", False)


def test_sections_within_budget_are_untouched() -> None:
    fitted = fit_sections([Section("Evidence", ["E1 disk 97%", "E2 OOM kill"])], 1000)
    assert fitted.notices == []
    assert fitted.text == "## Evidence\nE1 disk 97%\nE2 OOM kill"


def test_low_priority_sections_lose_items_first_with_a_notice() -> None:
    evidence = [f"E{i}: anomaly on series cpu.usage host web-{i:02d} score 0.9" for i in range(40)]
    logs = [f"2024-05-01 10:00:{i:02d} app-02 java.lang.OutOfMemoryError: Java heap space" for i in range(60)]
    fitted = fit_sections(
        [
            Section("Evidence", evidence, priority=10, unit="evidence items"),
            Section("Log lines", logs, priority=1, unit="log lines", min_items=2),
        ],
        budget_tokens=600,
    )
    assert fitted.estimated_tokens <= 600
    assert "[truncated: 58 of 60 log lines omitted to fit the token budget]" in fitted.text
    assert any(n.startswith("Log lines: 58 of 60") for n in fitted.notices)
    # The important section lost items only after the other was down to its minimum.
    kept_evidence = sum(1 for e in evidence if e in fitted.text)
    assert kept_evidence < 40
    assert evidence[0] in fitted.text and evidence[kept_evidence - 1] in fitted.text


def test_very_long_items_are_capped() -> None:
    fitted = fit_sections([Section("Stack", ["frame " * 2000], max_item_tokens=100)], 10_000)
    assert "[truncated]" in fitted.text and estimate_tokens(fitted.text) < 150


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.text(min_size=1, max_size=200), max_size=30), min_size=1, max_size=4),
    st.integers(min_value=40, max_value=2000),
)
def test_fitted_prompt_never_exceeds_the_budget(items: list[list[str]], budget: int) -> None:
    sections = [Section(f"S{i}", block, priority=i, min_items=0) for i, block in enumerate(items)]
    fitted = fit_sections(sections, budget)
    assert fitted.estimated_tokens <= budget + 20  # + the closing notice line when cut hard


def test_messages_drop_oldest_turns_and_keep_system_and_question() -> None:
    history = [Message("system", "You are an SRE assistant.")]
    for i in range(30):
        history += [Message("user", f"question {i} " + "detail " * 40), Message("assistant", "answer " * 40)]
    history.append(Message("user", "What about web-03?"))
    fitted, notices = fit_messages(history, 800)
    assert estimate_messages_tokens(fitted) <= 800
    assert fitted[0].content == "You are an SRE assistant."
    assert fitted[1].role == "system" and "earlier messages omitted" in (fitted[1].content or "")
    assert fitted[-1].content == "What about web-03?"
    assert notices and "earlier messages omitted" in notices[0]


def test_one_huge_message_is_cut_with_a_notice() -> None:
    messages = [Message("system", "Summarise."), Message("user", "log line " * 5000)]
    fitted, notices = fit_messages(messages, 500)
    assert estimate_messages_tokens(fitted) <= 500
    assert "to fit the token budget]" in (fitted[-1].content or "")
    assert notices
