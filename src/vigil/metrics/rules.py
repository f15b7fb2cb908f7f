"""Prediction rules: which series get "exhausted in ..." forecasts, towards what threshold.

Rules stored through the API (``metric_prediction_rules``) come first, by priority, then the
built-in ones below. The first rule whose globs match a series decides: ``predict`` it towards
the rule's threshold, or ``ignore`` it (to exclude, say, tmpfs mounts from the disk rule).

Titles are templates with ``{name}`` placeholders: the series' tags (``{host}``, ``{path}``...),
``{measurement}``, ``{field}``, ``{threshold}``, ``{eta}`` ("in ~3.2 days", or "now") and ``{interval}``
("(90% interval 2.5–4.1 days)"). Unknown names are left as they are. Substitution is plain
text replacement, never ``str.format``, so a template cannot reach into objects.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import orjson
from sqlalchemy import select

from vigil.store.db import Database
from vigil.store.models import PredictionRule as PredictionRuleRow

Direction = Literal["rising", "falling"]
Action = Literal["predict", "ignore"]

DAY = 86400.0
DEFAULT_HORIZON_S = 7 * DAY
DEFAULT_TITLE = "{measurement} {field} on {host} reaches {threshold} {eta} {interval}"


@dataclass(frozen=True, slots=True)
class PredictionRule:
    id: str  # "default:<name>" or "rule:<database id>"
    name: str
    measurement: str  # glob
    field: str  # glob
    tags: tuple[tuple[str, str], ...] = ()  # (tag name, glob)
    threshold: float = 100.0
    direction: Direction = "rising"
    horizon_s: float = DEFAULT_HORIZON_S
    title: str = DEFAULT_TITLE
    action: Action = "predict"

    def matches(self, measurement: str, field: str, tags: Mapping[str, str]) -> bool:
        if not fnmatch.fnmatchcase(measurement, self.measurement):
            return False
        if not fnmatch.fnmatchcase(field, self.field):
            return False
        return all(fnmatch.fnmatchcase(tags.get(name, ""), pattern) for name, pattern in self.tags)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "measurement": self.measurement,
            "field": self.field,
            "tags": dict(self.tags),
            "threshold": self.threshold,
            "direction": self.direction,
            "horizon_s": self.horizon_s,
            "title": self.title,
            "action": self.action,
        }


DEFAULT_RULES: tuple[PredictionRule, ...] = (
    PredictionRule(
        "default:disk_used",
        "disk used %",
        "disk",
        "used_percent",
        title="{path} on {host} reaches {threshold}% {eta} {interval}",
    ),
    PredictionRule(
        "default:disk_inodes",
        "free inodes",
        "disk",
        "inodes_free",
        threshold=0.0,
        direction="falling",
        title="inodes of {path} on {host} run out {eta} {interval}",
    ),
    PredictionRule(
        "default:mem_used",
        "memory used %",
        "mem",
        "used_percent",
        title="memory on {host} exhausted {eta} {interval}",
    ),
    PredictionRule(
        "default:swap_used",
        "swap used %",
        "swap",
        "used_percent",
        title="swap on {host} full {eta} {interval}",
    ),
    PredictionRule(
        "default:cpu_idle",
        "CPU saturation",
        "cpu",
        "usage_idle",
        tags=(("cpu", "cpu-total"),),
        threshold=0.0,
        direction="falling",
        title="CPU on {host} saturated {eta} {interval}",
    ),
    PredictionRule(
        "default:pool_used",
        "connection pools",
        "*pool*",
        "*_percent",
        title="{measurement} {field} on {host} reaches {threshold}% {eta} {interval}",
    ),
)


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[PredictionRule, ...]
    version: str  # changes whenever any rule changes

    @classmethod
    def of(cls, rules: Sequence[PredictionRule]) -> RuleSet:
        digest = hashlib.blake2b(orjson.dumps([r.to_dict() for r in rules]), digest_size=8).hexdigest()
        return cls(tuple(rules), digest)

    def match(self, measurement: str, field: str, tags: Mapping[str, str]) -> PredictionRule | None:
        """The rule that predicts this series, or None (no rule, or an ``ignore`` rule)."""
        for rule in self.rules:
            if rule.matches(measurement, field, tags):
                return rule if rule.action == "predict" else None
        return None


DEFAULT_RULESET = RuleSet.of(DEFAULT_RULES)


def rule_from_row(row: PredictionRuleRow) -> PredictionRule:
    return PredictionRule(
        id=f"rule:{row.id}",
        name=row.name,
        measurement=row.measurement,
        field=row.field,
        tags=tuple(sorted((str(k), str(v)) for k, v in (row.tags or {}).items())),
        threshold=float(row.threshold),
        direction="falling" if row.direction == "falling" else "rising",
        horizon_s=float(row.horizon_s),
        title=row.title or DEFAULT_TITLE,
        action="ignore" if row.action == "ignore" else "predict",
    )


async def load_rules(db: Database) -> RuleSet:
    """Enabled stored rules (by priority, then id), then the built-in ones."""
    async with db.session() as session:
        rows = (
            await session.execute(
                select(PredictionRuleRow)
                .where(PredictionRuleRow.enabled.is_(True))
                .order_by(PredictionRuleRow.priority, PredictionRuleRow.id)
            )
        ).scalars()
        custom = [rule_from_row(row) for row in rows]
    return RuleSet.of([*custom, *DEFAULT_RULES])


# --- titles --------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


def render_title(template: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return " ".join(_PLACEHOLDER.sub(replace, template).split())


def _unit(seconds: float) -> tuple[float, str]:
    if seconds >= 2 * DAY:
        return DAY, "days"
    if seconds >= 2 * 3600:
        return 3600.0, "h"
    return 60.0, "min"


def _number(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def format_eta(seconds: float) -> str:
    """``3.2 days``, ``4.0 h``, ``35 min``; ``now`` under a minute."""
    if seconds < 60:
        return "now"
    scale, unit = _unit(seconds)
    return f"{_number(seconds / scale)} {unit}"


def format_interval(eta_s: float, low_s: float, high_s: float, confidence: float = 0.9) -> str:
    """``(90% interval 2.5–4.1 days)`` in the unit of the estimate; ``(90% interval 3.0 h or
    later)`` when the slow end of the interval never reaches the threshold."""
    scale, unit = _unit(max(eta_s, 60.0))
    low = _number(max(low_s, 0.0) / scale)
    if not math.isfinite(high_s):
        return f"({confidence:.0%} interval {low} {unit} or later)"
    return f"({confidence:.0%} interval {low}–{_number(high_s / scale)} {unit})"


def format_threshold(value: float) -> str:
    return f"{value:g}"
