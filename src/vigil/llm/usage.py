"""Tokens and cost per feature: every model call is recorded, in the database when there is one.

Costs are computed from configured prices (``VIGIL_LLM_PRICE_INPUT_PER_MTOK`` /
``..._OUTPUT_PER_MTOK``, USD per million tokens; 0 for self-hosted models), because providers do
not return prices. Failing to record usage never fails the feature that made the call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from prometheus_client import Counter

from vigil.observability import REGISTRY

if TYPE_CHECKING:
    from vigil.store.db import Database

log = logging.getLogger(__name__)

LLM_CALLS = Counter(
    "vigil_llm_calls_total",
    "Model calls by feature and outcome (ok, retry, error, invalid_output).",
    ["feature", "outcome"],
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "vigil_llm_tokens_total",
    "Tokens used by feature and kind (prompt, completion).",
    ["feature", "kind"],
    registry=REGISTRY,
)


@dataclass(frozen=True, slots=True)
class Pricing:
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1e6


@dataclass(frozen=True, slots=True)
class UsageEvent:
    feature: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float
    outcome: str  # ok | retry | error | invalid_output
    error: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class UsageSink(Protocol):
    async def record(self, event: UsageEvent) -> None: ...


def _count(event: UsageEvent) -> None:
    LLM_CALLS.labels(event.feature, event.outcome).inc()
    if event.prompt_tokens:
        LLM_TOKENS.labels(event.feature, "prompt").inc(event.prompt_tokens)
    if event.completion_tokens:
        LLM_TOKENS.labels(event.feature, "completion").inc(event.completion_tokens)


class MemoryUsage:
    """Usage kept in memory (tests, benchmarks)."""

    def __init__(self) -> None:
        self.events: list[UsageEvent] = []

    async def record(self, event: UsageEvent) -> None:
        _count(event)
        self.events.append(event)

    def totals(self) -> dict[str, dict[str, Any]]:
        return summarise(self.events, "feature")


class DatabaseUsage:
    """Usage stored in ``llm_usage``, one row per call or rejected answer."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, event: UsageEvent) -> None:
        from vigil.store.models.llm import LLMUsage

        _count(event)
        try:
            async with self.db.session() as session:
                session.add(
                    LLMUsage(
                        created_at=event.at,
                        feature=event.feature,
                        provider=event.provider,
                        model=event.model[:255],
                        prompt_tokens=event.prompt_tokens,
                        completion_tokens=event.completion_tokens,
                        cost_usd=event.cost_usd,
                        latency_ms=round(event.latency_ms, 2),
                        outcome=event.outcome,
                        error=event.error,
                    )
                )
        except Exception as exc:  # accounting must never break the feature that made the call
            log.warning("could not record LLM usage for %s: %s", event.feature, exc)


GroupBy = Literal["feature", "model", "day"]


def summarise(events: list[UsageEvent], group_by: GroupBy) -> dict[str, dict[str, Any]]:
    """Totals per group: calls, failures, retries, rejected answers, tokens, cost, latency."""
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        key = {"feature": e.feature, "model": e.model}.get(group_by) or e.at.date().isoformat()
        row = out.setdefault(key, _empty_row())
        _accumulate(row, e.outcome, 1, e.prompt_tokens, e.completion_tokens, e.cost_usd, e.latency_ms)
    return {k: _finish(v) for k, v in sorted(out.items())}


def _empty_row() -> dict[str, Any]:
    return {
        "calls": 0, "errors": 0, "retries": 0, "invalid_outputs": 0, "prompt_tokens": 0,
        "completion_tokens": 0, "cost_usd": 0.0, "_latency_sum": 0.0,
    }


def _accumulate(
    row: dict[str, Any], outcome: str, count: int, prompt: int, completion: int, cost: float, latency: float
) -> None:
    # A rejected answer is not a call of its own (the call was counted as "ok"): count it apart.
    if outcome == "invalid_output":
        row["invalid_outputs"] += count
        return
    if outcome == "retry":
        row["retries"] += count
    elif outcome == "error":
        row["errors"] += count
    row["calls"] += count
    row["prompt_tokens"] += prompt
    row["completion_tokens"] += completion
    row["cost_usd"] += cost
    row["_latency_sum"] += latency


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    latency_sum = row.pop("_latency_sum")
    row["total_tokens"] = row["prompt_tokens"] + row["completion_tokens"]
    row["cost_usd"] = round(row["cost_usd"], 6)
    row["mean_latency_ms"] = round(latency_sum / row["calls"], 1) if row["calls"] else None
    return row


async def usage_summary(
    db: Database, since: datetime, until: datetime, group_by: GroupBy
) -> dict[str, dict[str, Any]]:
    """Totals from ``llm_usage`` in ``[since, until)``, aggregated in SQL."""
    from sqlalchemy import func, select

    from vigil.store.models.llm import LLMUsage

    key: Any
    if group_by == "feature":
        key = LLMUsage.feature
    elif group_by == "model":
        key = LLMUsage.model
    elif db.is_sqlite:
        key = func.date(LLMUsage.created_at)  # stored as naive UTC text
    else:
        key = func.date(func.timezone("UTC", LLMUsage.created_at))  # the UTC day, whatever TimeZone
    stmt = (
        select(
            key,
            LLMUsage.outcome,
            func.count(),
            func.coalesce(func.sum(LLMUsage.prompt_tokens), 0),
            func.coalesce(func.sum(LLMUsage.completion_tokens), 0),
            func.coalesce(func.sum(LLMUsage.cost_usd), 0.0),
            func.coalesce(func.sum(LLMUsage.latency_ms), 0.0),
        )
        .where(LLMUsage.created_at >= since, LLMUsage.created_at < until)
        .group_by(key, LLMUsage.outcome)
    )
    out: dict[str, dict[str, Any]] = {}
    async with db.session() as session:
        for group, outcome, count, prompt, completion, cost, latency in (await session.execute(stmt)).all():
            row = out.setdefault(str(group), _empty_row())
            _accumulate(row, outcome, int(count), int(prompt), int(completion), float(cost), float(latency))
    return {k: _finish(v) for k, v in sorted(out.items())}
