"""Explaining the ranked hypotheses: by rules always, by a model when one is configured.

The model's answer must cite evidence by id, and only ids it was shown: an answer citing
anything else (or nothing) is rejected and the model re-asked once with what was wrong; a second
bad answer falls back to the rules explanation, recorded with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vigil.analytics.rca_ranking import CHANGE_KINDS, Evidence, Hypothesis, Scope
from vigil.llm.budget import estimate_tokens
from vigil.llm.client import LLM
from vigil.llm.factory import RULES
from vigil.llm.prompts import rca as prompt
from vigil.llm.structured import ask_structured
from vigil.rca.evidence import describe

BRACKETED_ID = re.compile(r"\[(E\d+)\]")
MODEL_HYPOTHESES = 6  # candidates shown to the model


@dataclass
class Explanation:
    summary: str
    explanation: str
    next_steps: list[dict[str, Any]]
    citations: list[str]
    generated_by: str
    chosen_rank: int | None  # the hypothesis (1-based) the explanation names as the cause
    confidence: float | None = None
    fallback_reason: str | None = None
    notices: list[str] = field(default_factory=list)


# Next steps per failure category / evidence kind; {host}, {service}, {subject}, {previous} filled in.
NEXT_STEPS: dict[str, list[str]] = {
    "disk_space": [
        "Free space on {where}: find what grew (du -xh --max-depth=2 / | sort -h | tail), rotate or "
        "remove old logs and temporary files.",
        "If the growth is legitimate, extend the volume, and add a retention policy for whatever filled it.",
    ],
    "out_of_memory": [
        "Find the process whose memory grew on {where} (RSS over time, OOM-killer messages) and restart it "
        "to restore service.",
        "Capture a heap profile before the next restart; if the growth began with a release, roll it back.",
    ],
    "service_crash": [
        "Read the crash output on {where} (last log lines before the exit, core dump, exit code) and check "
        "its restart count.",
        "If the crashes began after a change, roll it back; otherwise pin the failing input or request.",
    ],
    "network": [
        "Check the link and interface error counters on {where}; look for a flapping port, duplex mismatch "
        "or a failing optic or cable.",
        "Fail over to a redundant path if there is one, and dampen the flapping interface.",
    ],
    "hardware": [
        "Check the hardware health of {where} (BMC/Redfish sensors, SMART, ECC logs) and plan a "
        "replacement or drain the host."
    ],
    "config_error": [
        "Compare the configuration of {where} with the last known good version and revert "
        "the offending change."
    ],
    "auth_failure": [
        "Check credentials, certificates and tokens used by {where} (expiry, rotation) and "
        "the identity provider's status."
    ],
    "cpu": [
        "Identify the top CPU consumers on {where} (top, pidstat) and whether the load is legitimate "
        "traffic or a runaway process; scale out or throttle."
    ],
    "latency": [
        "Trace slow requests on {where} to the slowest dependency; check saturation of its "
        "database and upstream calls."
    ],
    "errors": [
        "Open the top error group for {where} and its stack trace; check whether it started with "
        "a release or a dependency failure."
    ],
    "timeout": ["Find which call times out on {where} and check the health of the service it calls."],
    "dependency_down": [
        "Check the health of the dependency {where} reports as unavailable and fail over or restore it."
    ],
    "release": [
        "Roll back {service} from {subject} to {previous} and confirm the errors stop.",
        "Compare the error groups first seen with {subject} against its changes to find the defect.",
    ],
    "change": ["Review change {subject} on {where}; roll it back if the timing matches the incident."],
    "automation_run": [
        "Review automation run {subject} on {where}: what it changed and whether it "
        "finished; revert its changes if they match the failure."
    ],
}
DEFAULT_STEPS = [
    "Review the evidence in order of onset, starting with the earliest signal on the affected hosts.",
]


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S UTC")


def _minutes(seconds: float) -> str:
    minutes = abs(seconds) / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _cite(ids: Sequence[str], limit: int = 4) -> str:
    return " ".join(f"[{i}]" for i in ids[:limit])


def rule_steps(h: Hypothesis, evidence: dict[str, Evidence]) -> list[dict[str, Any]]:
    key = h.kind if h.kind in CHANGE_KINDS else (h.category or "")
    previous = next(
        (
            str(evidence[i].details.get("previous"))
            for i in h.evidence_ids
            if i in evidence and evidence[i].details.get("previous")
        ),
        "the previous release",
    )
    subject = next(
        (evidence[i].subject for i in h.evidence_ids if i in evidence and evidence[i].kind == h.kind),
        h.title,
    )
    values = {
        "where": h.host or h.service or "the affected systems",
        "host": h.host or "the host",
        "service": h.service or h.host or "the service",
        "subject": subject,
        "previous": previous,
    }
    cited = list(h.evidence_ids[:3])
    return [
        {"action": text.format(**values), "evidence_ids": cited}
        for text in NEXT_STEPS.get(key, DEFAULT_STEPS)
    ]


def rules_explanation(
    hypotheses: Sequence[Hypothesis], evidence: Sequence[Evidence], scope: Scope
) -> Explanation:
    by_id = {e.id: e for e in evidence}
    if not hypotheses:
        return Explanation(
            summary="No evidence was found around the start of this incident.",
            explanation=(
                "No anomalies, predictions, new log patterns, new errors, releases or changes were "
                f"recorded in the window around {_clock(scope.start)}. The incident's own alerts are "
                "the only information; check the affected systems directly."
            ),
            next_steps=[{"action": DEFAULT_STEPS[0], "evidence_ids": []}],
            citations=[],
            generated_by=RULES,
            chosen_rank=None,
        )
    top = hypotheses[0]
    lead = (
        f"began {_minutes(top.lead_s)} before the incident started"
        if top.lead_s >= 0
        else f"began {_minutes(top.lead_s)} after the incident started"
    )
    sentences = [
        f"{top.title} {lead} ({'; '.join(top.reasons[1:]) or 'no further context'}) "
        f"{_cite(top.evidence_ids)}."
    ]
    first = min(evidence, key=lambda e: (e.onset, e.id))
    if first.id not in top.evidence_ids:
        sentences.append(f"The first signal overall was {first.title} [{first.id}].")
    others = [h for h in hypotheses[1:3]]
    if others:
        sentences.append(
            "Other candidates: "
            + "; ".join(f"{h.title} (score {h.score:.2f}) {_cite(h.evidence_ids, 2)}" for h in others)
            + "."
        )
    citations = sorted(
        {*top.evidence_ids[:4], *(first.id,), *(i for h in others for i in h.evidence_ids[:2])},
        key=lambda x: int(x[1:]),
    )
    return Explanation(
        summary=f"Most likely cause: {top.title} {_cite(top.evidence_ids, 2)}.",
        explanation=" ".join(sentences),
        next_steps=rule_steps(top, by_id),
        citations=citations,
        generated_by=RULES,
        chosen_rank=1,
        confidence=round(top.score, 3),
    )


def citation_problem(answer: prompt.RCAAnswer, shown: set[str], candidates: int) -> str | None:
    """What is wrong with the answer's citations, or None when every cited id was supplied."""
    cited = set(answer.evidence_ids)
    for step in answer.next_steps:
        cited |= set(step.evidence_ids)
        cited |= set(BRACKETED_ID.findall(step.action))
    cited |= set(BRACKETED_ID.findall(answer.summary)) | set(BRACKETED_ID.findall(answer.explanation))
    unknown = sorted(cited - shown, key=lambda x: (len(x), x))
    if unknown:
        return (
            f"you cited evidence that was not supplied: {', '.join(unknown)}. "
            f"Cite only ids from the evidence list ({', '.join(sorted(shown, key=lambda x: int(x[1:])))})."
        )
    if not cited:
        return "you cited no evidence; cite the evidence ids your answer relies on, e.g. [E1]."
    if not 1 <= answer.hypothesis <= candidates:
        return f"hypothesis must be the number of a listed candidate, 1 to {candidates}."
    if not answer.next_steps:
        return "give at least one next step."
    return None


def _incident_lines(title: str, scope: Scope, hosts_limit: int = 12) -> list[str]:
    lines = [f"Title: {title}", f"Started: {datetime.fromtimestamp(scope.start, UTC).isoformat()}"]
    if scope.hosts:
        lines.append("Hosts: " + ", ".join(sorted(scope.hosts)[:hosts_limit]))
    if scope.services:
        lines.append("Services: " + ", ".join(sorted(scope.services)[:hosts_limit]))
    return lines


async def model_explanation(
    llm: LLM,
    title: str,
    hypotheses: Sequence[Hypothesis],
    evidence: Sequence[Evidence],
    scope: Scope,
) -> Explanation:
    """The model's explanation; raises ``LLMError`` (incl. ``InvalidOutput``) when there is none."""
    candidates = list(hypotheses[:MODEL_HYPOTHESES])
    # Evidence behind the candidates first (it is what the model must weigh), then the rest.
    wanted = [i for h in candidates for i in h.evidence_ids]
    order = {eid: n for n, eid in enumerate(dict.fromkeys(wanted))}
    ranked = sorted(evidence, key=lambda e: (order.get(e.id, len(order)), e.onset))
    budget = llm.options.max_prompt_tokens - estimate_tokens(prompt.SYSTEM) - 64
    messages, shown, notices = prompt.build(
        _incident_lines(title, scope),
        [(f"{h.title} (score {h.score:.2f}; {'; '.join(h.reasons)})", h.evidence_ids) for h in candidates],
        [describe(e, scope.start) for e in ranked],
        budget,
    )
    answer = await ask_structured(
        llm,
        "rca",
        messages,
        prompt.RCAAnswer,
        check=lambda a: citation_problem(a, shown, len(candidates)),
        schema_name="root_cause",
    )
    value = answer.value
    cited = set(value.evidence_ids) | {i for s in value.next_steps for i in s.evidence_ids}
    cited |= set(BRACKETED_ID.findall(value.summary + " " + value.explanation))
    rejected = [f"rejected answer: {r}" for r in answer.rejected]
    return Explanation(
        summary=value.summary.strip(),
        explanation=value.explanation.strip(),
        next_steps=[
            {"action": s.action.strip(), "evidence_ids": list(dict.fromkeys(s.evidence_ids))}
            for s in value.next_steps[:6]
        ],
        citations=sorted(cited, key=lambda x: int(x[1:])),
        generated_by=llm.generated_by,
        chosen_rank=value.hypothesis,
        confidence=min(1.0, max(0.0, value.confidence)),
        notices=notices + rejected,
    )
