"""The LLM: what is configured, whether it answers, and what it has cost, per feature."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from vigil.api.auth import Reader, backends_of
from vigil.api.problems import Problem
from vigil.llm.client import LLMError
from vigil.llm.factory import RULES, describe, llm_for
from vigil.llm.usage import usage_summary

router = APIRouter(prefix="/api/v1/llm", tags=["llm"])

# What each feature uses, and what it does without a model.
FEATURES = {
    "classification": "log template classification (rules without a model)",
    "second_opinion": "second opinion on metric anomalies (none without a model)",
    "summary": "incident summaries (template without a model)",
    "rca": "root-cause explanations (ranked hypotheses without a model)",
}


class LLMStatus(BaseModel):
    configured: bool
    provider: str
    model: str | None
    base_url: str | None
    generated_by: str = Field(description='What results are labelled with: "rules" or "model:<name>"')
    features: dict[str, str]
    max_prompt_tokens: int
    max_completion_tokens: int
    concurrency: int
    timeout_s: float
    max_retries: int
    reachable: bool | None = Field(None, description="With ?check=true: whether the server answered")
    models: list[str] | None = None
    error: str | None = None


class UsageGroup(BaseModel):
    calls: int
    errors: int
    retries: int
    invalid_outputs: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    mean_latency_ms: float | None


class UsageOut(BaseModel):
    since: datetime
    until: datetime
    group_by: str
    groups: dict[str, UsageGroup]
    totals: UsageGroup


@router.get("/status", response_model=LLMStatus, summary="The configured model, if any")
async def llm_status(
    request: Request,
    _: Reader,
    check: bool = Query(False, description="Ask the server for its models to see that it answers"),
) -> LLMStatus:
    backends = backends_of(request)
    info: dict[str, Any] = describe(backends.settings)
    label = info["generated_by"]
    info["features"] = {name: label if label != RULES else RULES for name in FEATURES}
    status = LLMStatus(**info)
    llm = llm_for(backends)
    if check and llm is not None:
        try:
            status.models = await llm.provider.list_models()
            status.reachable = True
        except LLMError as exc:
            status.reachable = False
            status.error = f"{type(exc).__name__}: {exc}"[:500]
    return status


@router.get("/usage", response_model=UsageOut, summary="Tokens, cost and failures per feature, model or day")
async def llm_usage(
    request: Request,
    _: Reader,
    since: datetime | None = Query(None, description="Start (default: 30 days ago)"),
    until: datetime | None = Query(None, description="End, exclusive (default: now)"),
    group_by: Literal["feature", "model", "day"] = "feature",
) -> UsageOut:
    now = datetime.now(UTC)
    until = _aware(until, "until") if until else now
    since = _aware(since, "since") if since else until - timedelta(days=30)
    if since >= until:
        raise Problem(422, "since: must be before until")
    groups = await usage_summary(backends_of(request).db, since, until, group_by)
    totals: dict[str, Any] = {
        k: 0 for k in ("calls", "errors", "retries", "invalid_outputs", "prompt_tokens", "completion_tokens")
    }
    totals["cost_usd"] = 0.0
    latency = 0.0
    for row in groups.values():
        for key in totals:
            totals[key] += row[key]
        latency += (row["mean_latency_ms"] or 0.0) * row["calls"]
    totals["total_tokens"] = totals["prompt_tokens"] + totals["completion_tokens"]
    totals["cost_usd"] = round(totals["cost_usd"], 6)
    totals["mean_latency_ms"] = round(latency / totals["calls"], 1) if totals["calls"] else None
    return UsageOut(
        since=since,
        until=until,
        group_by=group_by,
        groups={k: UsageGroup(**v) for k, v in groups.items()},
        totals=UsageGroup(**totals),
    )


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise Problem(422, f"{name}: give a timezone, e.g. 2024-05-01T00:00:00Z")
    return value.astimezone(UTC)
