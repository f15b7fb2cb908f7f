"""The configuration alerting applies to every signal, loaded from the database in one go:
fingerprint rules, auto-resolve timeouts, silences, grouping rules, escalation policies,
notification routes and channels."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.analytics.correlation import (
    DEFAULT_AUTO_RESOLVE_MINUTES,
    GroupingRule,
    Matcher,
    Recurrence,
    SilenceWindow,
    matches_all,
    parse_matchers,
)
from vigil.store.db import Database
from vigil.store.models import (
    EscalationPolicy,
    FingerprintRule,
    NotificationChannel,
    NotificationRoute,
    Silence,
)
from vigil.store.models import GroupingRule as GroupingRuleRow

log = logging.getLogger(__name__)

DEFAULT_ROUTE_EVENTS = frozenset({"trigger", "resolve", "escalate"})


@dataclass(frozen=True)
class RouteView:
    id: int
    name: str
    severities: frozenset[str]
    matchers: tuple[Matcher, ...]
    events: frozenset[str]
    channel_ids: tuple[int, ...]

    def wants(self, event: str, severity: str, labels: Mapping[str, str]) -> bool:
        return (
            event in self.events
            and (not self.severities or severity in self.severities)
            and matches_all(self.matchers, labels)
        )


@dataclass(frozen=True)
class EscalationStep:
    after_minutes: float
    channel_ids: tuple[int, ...]


@dataclass(frozen=True)
class EscalationView:
    id: int
    name: str
    severities: frozenset[str]
    matchers: tuple[Matcher, ...]
    steps: tuple[EscalationStep, ...]

    def applies(self, severity: str, labels: Mapping[str, str]) -> bool:
        return (
            bool(self.steps)
            and (not self.severities or severity in self.severities)
            and matches_all(self.matchers, labels)
        )


@dataclass(frozen=True)
class ChannelView:
    id: int
    name: str
    type: str
    enabled: bool


@dataclass
class RuleSet:
    fingerprint_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    auto_resolve_minutes: dict[str, int | None] = field(default_factory=dict)
    silences: list[SilenceWindow] = field(default_factory=list)
    grouping: list[GroupingRule] = field(default_factory=list)
    escalation: list[EscalationView] = field(default_factory=list)
    routes: list[RouteView] = field(default_factory=list)
    channels: dict[int, ChannelView] = field(default_factory=dict)

    def auto_resolve_after(self, origin: str) -> int | None:
        """Minutes without a re-fire before an alert of ``origin`` resolves; None: never."""
        minutes = self.auto_resolve_minutes.get(origin, DEFAULT_AUTO_RESOLVE_MINUTES.get(origin))
        return minutes or None

    def escalation_for(self, severity: str, labels: Mapping[str, str]) -> EscalationView | None:
        return next((p for p in self.escalation if p.applies(severity, labels)), None)


def silence_window(row: Silence) -> SilenceWindow:
    return SilenceWindow(
        id=row.id,
        matchers=tuple(parse_matchers(row.matchers or [])),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        recurrence=Recurrence.parse(row.recurrence) if row.recurrence else None,
    )


def escalation_steps(raw: Sequence[Mapping[str, Any]]) -> tuple[EscalationStep, ...]:
    return tuple(
        EscalationStep(
            float(step.get("after_minutes", 0)), tuple(int(c) for c in step.get("channel_ids", ()))
        )
        for step in raw
    )


async def load_rules(session: AsyncSession, now: datetime) -> RuleSet:
    rules = RuleSet()
    for fp in (await session.execute(select(FingerprintRule))).scalars():
        if fp.fields:
            rules.fingerprint_fields[fp.origin] = tuple(fp.fields)
        if fp.auto_resolve_minutes is not None:
            rules.auto_resolve_minutes[fp.origin] = fp.auto_resolve_minutes
    silences = await session.execute(
        select(Silence).where(or_(Silence.ends_at.is_(None), Silence.ends_at > now))
    )
    for row in silences.scalars():
        try:
            rules.silences.append(silence_window(row))
        except ValueError as exc:  # validated by the API; a bad row must not stop alerting
            log.warning("ignoring silence %s: %s", row.id, exc)
    grouping = await session.execute(
        select(GroupingRuleRow)
        .where(GroupingRuleRow.enabled.is_(True))
        .order_by(GroupingRuleRow.position, GroupingRuleRow.id)
    )
    for g in grouping.scalars():
        try:
            rules.grouping.append(
                GroupingRule(
                    g.id,
                    g.name,
                    tuple(parse_matchers(g.matchers or [])),
                    tuple(g.group_by or ()),
                    g.window_minutes * 60.0,
                )
            )
        except ValueError as exc:
            log.warning("ignoring grouping rule %s: %s", g.id, exc)
    policies = await session.execute(
        select(EscalationPolicy)
        .where(EscalationPolicy.enabled.is_(True))
        .order_by(EscalationPolicy.position, EscalationPolicy.id)
    )
    for p in policies.scalars():
        try:
            rules.escalation.append(
                EscalationView(
                    p.id,
                    p.name,
                    frozenset(p.severities or ()),
                    tuple(parse_matchers(p.matchers or [])),
                    escalation_steps(p.steps or []),
                )
            )
        except (ValueError, TypeError) as exc:
            log.warning("ignoring escalation policy %s: %s", p.id, exc)
    routes = await session.execute(
        select(NotificationRoute)
        .where(NotificationRoute.enabled.is_(True))
        .order_by(NotificationRoute.position, NotificationRoute.id)
    )
    for r in routes.scalars():
        try:
            rules.routes.append(
                RouteView(
                    r.id,
                    r.name,
                    frozenset(r.severities or ()),
                    tuple(parse_matchers(r.matchers or [])),
                    frozenset(r.events or DEFAULT_ROUTE_EVENTS),
                    tuple(int(c) for c in r.channel_ids or ()),
                )
            )
        except (ValueError, TypeError) as exc:
            log.warning("ignoring notification route %s: %s", r.id, exc)
    for c in (await session.execute(select(NotificationChannel))).scalars():
        rules.channels[c.id] = ChannelView(c.id, c.name, c.type, c.enabled)
    return rules


class RuleCache:
    """Rules reloaded at most every ``ttl_s`` (0: on every use): a busy pipeline does not
    re-read seven small tables per batch, and a rule edited in the API applies within ttl_s."""

    def __init__(self, ttl_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self._rules: RuleSet | None = None
        self._loaded_at = 0.0

    async def get(self, session: AsyncSession, now: datetime) -> RuleSet:
        if self._rules is None or time.monotonic() - self._loaded_at >= self.ttl_s:
            self._rules = await load_rules(session, now)
            self._loaded_at = time.monotonic()
        return self._rules

    def invalidate(self) -> None:
        self._rules = None


async def load_rules_now(db: Database, now: datetime) -> RuleSet:
    async with db.session() as session:
        return await load_rules(session, now)
