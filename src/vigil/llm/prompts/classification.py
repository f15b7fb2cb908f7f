"""Log template classification: failure type, severity and component of one template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from vigil.llm.budget import Section, fit_sections
from vigil.llm.client import Message
from vigil.llm.prompts import DATA_NOTICE, fenced

VERSION = "classification/1"

FailureType = Literal[
    "disk_space",
    "out_of_memory",
    "service_crash",
    "auth_failure",
    "network",
    "timeout",
    "config_error",
    "hardware",
    "dependency_down",
    "none",
]
SeverityName = Literal["critical", "high", "medium", "low"]


class TemplateLabel(BaseModel):
    failure_type: FailureType = Field(description="The kind of failure this message reports, or none.")
    severity: SeverityName
    component: str | None = Field(description="The subsystem or program, e.g. kernel, sshd, nginx, or null.")
    confidence: float = Field(description="0 to 1: how sure you are.")
    reason: str = Field(description="One short sentence: what in the message decided it.")


SYSTEM = f"""You classify log message templates for an operations team.
A template is a log line with its variable parts replaced by <*>.
Choose the failure type:
- disk_space: a disk, filesystem, volume or quota is full or nearly full
- out_of_memory: memory exhausted, allocation failures, OOM kills
- service_crash: a process crashed, panicked, dumped core or exited unexpectedly
- auth_failure: failed logins, denied permissions, invalid credentials or tokens
- network: links down, unreachable hosts, connection resets or refusals, DNS failures
- timeout: operations or requests that timed out
- config_error: invalid, missing or conflicting configuration
- hardware: failing disks, ECC errors, fans, power supplies, temperatures
- dependency_down: a database, queue or upstream service the program needs is unavailable
- none: informational or routine messages that report no failure
Severity: critical (outage or data loss now), high (a failure needing action), medium (a degraded
or retried condition), low (routine or informational).
{DATA_NOTICE}
Answer with JSON only."""


def build(
    template: str,
    examples: Sequence[str],
    rule_label: str,
    budget_tokens: int,
) -> tuple[list[Message], list[str]]:
    fitted = fit_sections(
        [
            Section("Template", [template], priority=10, max_item_tokens=300),
            Section(
                "Example lines",
                list(examples),
                priority=1,
                min_items=1,
                unit="example lines",
                max_item_tokens=200,
            ),
        ],
        budget_tokens,
    )
    user = (
        f"{fenced(fitted.text)}\n\n"
        f"The built-in rules guessed: {rule_label}. They are unsure; give your own classification."
    )
    return [Message("system", SYSTEM), Message("user", user)], fitted.notices
