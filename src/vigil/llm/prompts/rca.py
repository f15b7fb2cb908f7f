"""Root-cause explanation: pick the cause among ranked hypotheses, explain it citing evidence ids."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, Field

from vigil.llm.budget import Section, estimate_tokens, fit_sections
from vigil.llm.client import Message
from vigil.llm.prompts import DATA_NOTICE, fenced

VERSION = "rca/1"
EVIDENCE_LINE = re.compile(r"^\[(E\d+)\]", re.MULTILINE)


class RCAStep(BaseModel):
    action: str = Field(description="A concrete next step for the on-call engineer.")
    evidence_ids: list[str] = Field(description="Ids of the evidence that motivates this step, e.g. E3.")


class RCAAnswer(BaseModel):
    hypothesis: int = Field(description="The number of the candidate cause you believe, e.g. 1 for H1.")
    summary: str = Field(description="One sentence: the root cause, citing evidence like [E3].")
    explanation: str = Field(description="2 to 5 sentences citing evidence ids in brackets, e.g. [E1].")
    evidence_ids: list[str] = Field(description="Every evidence id your explanation relies on.")
    next_steps: list[RCAStep] = Field(description="1 to 4 next steps.")
    confidence: float = Field(description="0 to 1")


SYSTEM = f"""You are a site reliability engineer doing root-cause analysis of an incident.
You get the incident, evidence items with ids (E1, E2, ...) listed in the order they began, and
candidate causes (H1, H2, ...) ranked by deterministic rules on timing, topology and specificity.
Choose the candidate that best explains the incident: causes begin before their effects, a
specific failure explains more than a generic symptom, and a problem on the affected host or a
dependency matters more than one elsewhere. You may disagree with the rules' order.
Cite evidence only by the ids listed in the evidence section, in brackets like [E3]; never invent
ids, never cite a candidate number as evidence. If evidence was truncated, reason only from what
is shown. Keep it short and concrete.
{DATA_NOTICE}
Answer with JSON only."""


def build(
    incident_lines: Sequence[str],
    hypothesis_lines: Sequence[tuple[str, Sequence[str]]],
    evidence_lines: Sequence[str],
    budget_tokens: int,
) -> tuple[list[Message], set[str], list[str]]:
    """The messages, the evidence ids actually shown (what the answer may cite), and notices.

    ``hypothesis_lines``: (text, evidence ids) per candidate, best first; ``evidence_lines``:
    one per evidence item, each starting with ``[E<n>]``, most relevant first.
    """
    incident = fit_sections([Section("Incident", list(incident_lines), priority=10)], budget_tokens // 4)
    # Candidates are short; evidence gets what remains, so the shown ids are known before the
    # candidates are written (a candidate must not point at evidence the model cannot see).
    reserve = estimate_tokens(incident.text) + sum(estimate_tokens(t) + 12 for t, _ in hypothesis_lines) + 40
    evidence = fit_sections(
        [
            Section(
                "Evidence, in order of onset",
                list(evidence_lines),
                priority=1,
                min_items=1,
                unit="evidence items",
                max_item_tokens=160,
            )
        ],
        max(200, budget_tokens - reserve),
    )
    shown = set(EVIDENCE_LINE.findall(evidence.text))
    candidates = []
    for i, (text, ids) in enumerate(hypothesis_lines, start=1):
        visible = [x for x in ids if x in shown]
        hidden = len(ids) - len(visible)
        cited = ", ".join(visible) + (f" (+{hidden} not shown)" if hidden else "")
        candidates.append(f"H{i}: {text} — evidence: {cited or 'none shown'}")
    body = "\n\n".join(
        [incident.text, "## Candidate causes, ranked by rules\n" + "\n".join(candidates), evidence.text]
    )
    user = f"{fenced(body)}\n\nWhich candidate is the root cause, why, and what should be done next?"
    return [Message("system", SYSTEM), Message("user", user)], shown, incident.notices + evidence.notices
