"""A second opinion on a metric anomaly: real problem or benign?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from vigil.llm.budget import Section, fit_sections
from vigil.llm.client import Message
from vigil.llm.prompts import DATA_NOTICE, fenced

VERSION = "second_opinion/1"


class AnomalyVerdict(BaseModel):
    is_real: bool = Field(description="true if this looks like a genuine problem worth an alert")
    confidence: float = Field(description="0 to 1")
    rationale: str = Field(description="One or two sentences for the operator.")


SYSTEM = f"""You review anomalies that a statistical detector found in a metric series, for an
operations team. Decide whether the anomaly is a genuine problem worth alerting on, or benign
(an expected pattern the detector lacked context for: a batch job, a deploy, a known daily peak,
a tiny absolute change). Be conservative: when unsure, say it is real with a low confidence.
{DATA_NOTICE}
Answer with JSON only."""


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def build(
    series_key: str,
    seasonality: str,
    points: Sequence[tuple[float, float, float, float, float, float, str]],
    context: Mapping[str, str],
    budget_tokens: int,
) -> tuple[list[Message], list[str]]:
    """``points``: (time, value, expected, lower, upper, score, methods), oldest first."""
    rows = [
        f"{_clock(t)} value={v:.6g} expected={e:.6g} band=[{lo:.6g}, {hi:.6g}] score={s:.2f}"
        + (f" fired={m}" if m else "")
        for t, v, e, lo, hi, s, m in points
    ]
    # The most recent points matter most: keep them, drop the oldest first.
    rows.reverse()
    fitted = fit_sections(
        [
            Section("Series", [series_key, f"baseline seasonality: {seasonality}"], priority=10),
            Section(
                "Context",
                [f"{k}: {v}" for k, v in context.items()] or ["(none)"],
                priority=5,
                unit="context facts",
            ),
            Section("Recent points, newest first", rows, priority=1, min_items=3, unit="points"),
        ],
        budget_tokens,
    )
    user = f"{fenced(fitted.text)}\n\nIs this anomaly a genuine problem?"
    return [Message("system", SYSTEM), Message("user", user)], fitted.notices
