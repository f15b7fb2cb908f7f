"""Incident summaries: what is going on, in a few sentences, for the on-call engineer."""

from __future__ import annotations

from collections.abc import Sequence

from vigil.llm.budget import Section, fit_sections
from vigil.llm.client import Message
from vigil.llm.prompts import DATA_NOTICE, fenced

VERSION = "summary/1"

SYSTEM = f"""You write the summary of an incident for the on-call engineer: 2 to 4 plain sentences,
no markdown, no lists, no greetings. Say what is affected, since when, how bad it is, and what
the alerts suggest is happening. Do not invent facts that are not in the data; do not guess a root
cause unless the alerts state it.
{DATA_NOTICE}"""


def build(
    header: Sequence[str],
    alerts: Sequence[str],
    rules_summary: str,
    budget_tokens: int,
) -> tuple[list[Message], list[str]]:
    fitted = fit_sections(
        [
            Section("Incident", list(header), priority=10),
            Section("Alerts, newest first", list(alerts), priority=1, min_items=3, unit="alerts"),
            Section("Summary written by rules", [rules_summary], priority=5),
        ],
        budget_tokens,
    )
    user = f"{fenced(fitted.text)}\n\nWrite the summary."
    return [Message("system", SYSTEM), Message("user", user)], fitted.notices
