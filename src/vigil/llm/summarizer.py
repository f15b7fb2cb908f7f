"""``IncidentSummarizer`` by a model, falling back to the rules template when it cannot answer."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from vigil.alerting.summary import RULES, IncidentSnapshot, Summary, TemplateSummarizer
from vigil.llm.budget import estimate_tokens
from vigil.llm.client import LLM, ChatRequest, LLMError
from vigil.llm.prompts import summary as prompt

log = logging.getLogger(__name__)

MAX_SUMMARY_CHARS = 1200
_MARKDOWN = re.compile(r"^\s*(#+|[-*•]|\d+\.)\s+", re.MULTILINE)


def _clock(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


class LLMIncidentSummarizer:
    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self.rules = TemplateSummarizer()

    @property
    def name(self) -> str:
        return self.llm.generated_by

    async def summarize(self, incident: IncidentSnapshot) -> Summary:
        rules_text = self.rules.render(incident)
        header = [
            f"Title: {incident.title}",
            f"Severity: {incident.severity}; status: {incident.status}",
            f"Started: {_clock(incident.started_at)}",
            f"Alerts: {incident.alert_count} ({incident.open_alert_count} still firing)",
        ]
        if incident.hosts:
            header.append("Hosts: " + ", ".join(incident.hosts[:12]))
        if incident.services:
            header.append("Services: " + ", ".join(incident.services[:12]))
        if incident.categories:
            header.append("Kinds of problem: " + ", ".join(incident.categories))
        alerts = [
            f"[{a.severity}] {a.title} — {a.origin}"
            + (f", host {a.host}" if a.host else "")
            + (f", service {a.service}" if a.service else "")
            + f", first {_clock(a.first_seen)}, {a.count}×, {a.status}"
            for a in incident.alerts
        ]
        budget = min(3000, self.llm.options.max_prompt_tokens) - estimate_tokens(prompt.SYSTEM) - 64
        messages, _ = prompt.build(header, alerts, rules_text, budget)
        try:
            result = await self.llm.chat("summary", ChatRequest(tuple(messages), max_tokens=300))
        except LLMError as exc:
            log.warning("model summary of incident %s failed, rules summary kept: %s", incident.id, exc)
            return Summary(rules_text, RULES)
        text = _MARKDOWN.sub("", (result.content or "").strip()).replace("\n", " ").strip()
        if not text:
            return Summary(rules_text, RULES)
        if len(text) > MAX_SUMMARY_CHARS:
            text = text[:MAX_SUMMARY_CHARS].rsplit(" ", 1)[0] + " …"
        return Summary(text, self.llm.generated_by)
