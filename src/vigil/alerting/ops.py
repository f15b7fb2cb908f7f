"""Alert and incident state changes inside one transaction.

``AlertOps`` is used by the pipeline (signals in) and by the API (people acting) alike, so
every change records its timeline entry, queues its notifications (an outbox in the same
transaction) and collects the events to announce after commit. Rows get their ids at the
first flush; everything that needs an id (timeline, deliveries, incident links, events) is
written in ``finish()``.

Writers take ``alerting_transaction``: a PostgreSQL advisory lock (SQLite: a process lock)
serialises them, so two workers never open two alerts for one fingerprint or two incidents
for one failure, and incident counts stay exact.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.alerting.events import ChangeSet
from vigil.alerting.notifications.router import deliveries, notification_message, route_channels
from vigil.alerting.rules import EscalationView, RuleSet
from vigil.alerting.summary import RULES, Summary, TemplateSummarizer, apply_summary, incident_snapshots
from vigil.analytics.correlation import (
    SEVERITY_RANK,
    AlertFeatures,
    CorrelationPolicy,
    Decision,
    FlapPolicy,
    IncidentFeatures,
    Topology,
    alert_labels,
    choose_incident,
    compute_fingerprint,
    is_flapping,
    merge_features,
    new_incident_features,
    record_state_change,
    signal_labels,
    silencing,
    transition_error,
)
from vigil.domain.alerts import AlertSignal
from vigil.store.db import Database
from vigil.store.models import Alert, Incident, TimelineEntry
from vigil.store.types import utcnow

ALERTING_LOCK_ID = 0x56414C54  # any constant shared by every Vigil process
INCIDENT_STATUS_RANK = {"new": 0, "acknowledged": 1, "in_progress": 2, "resolved": 3}
USER_STATUSES = ("new", "acknowledged", "in_progress", "resolved")

_sqlite_locks: weakref.WeakKeyDictionary[Database, asyncio.Lock] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def alerting_transaction(db: Database) -> AsyncIterator[AsyncSession]:
    """A session whose transaction is the only alerting writer until it commits."""
    if db.is_sqlite:
        lock = _sqlite_locks.setdefault(db, asyncio.Lock())
        async with lock, db.session() as session:
            yield session
    else:
        async with db.session() as session:
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ALERTING_LOCK_ID})
            yield session


class AlertingError(Exception):
    """An action that cannot be done (the message says why, naming the field)."""


@dataclass(frozen=True)
class AlertingOptions:
    flap: FlapPolicy = field(default_factory=FlapPolicy)
    correlation: CorrelationPolicy = field(default_factory=CorrelationPolicy)
    reopen_window_s: float = 1800.0  # a resolved alert that fires again this soon is reopened
    max_evidence: int = 50
    candidate_incidents: int = 200


@dataclass
class _Note:
    kind: str
    message: str
    actor: str
    data: dict[str, Any]
    at: datetime
    alert: Alert | None = None
    incident: Incident | None = None


@dataclass
class _Notify:
    alert: Alert
    event: str
    note: str | None = None
    level: int | None = None
    targets: list[tuple[int, int | None]] | None = None  # None: from the routes


@dataclass
class TopologyData:
    pairs: list[tuple[str, str]] = field(default_factory=list)
    dependencies: list[tuple[str, str]] = field(default_factory=list)


TopologyLoader = Callable[[], Awaitable[TopologyData]]


async def _no_topology() -> TopologyData:
    return TopologyData()


def as_datetime(time_ns: int) -> datetime:
    return datetime.fromtimestamp(time_ns / 1e9, UTC)


def stored_labels(alert: Alert) -> dict[str, str]:
    """The label set silences, routes and policies match a stored alert on."""
    return alert_labels(
        labels=alert.labels or {},
        origin=alert.origin,
        severity=alert.severity,
        title=alert.title,
        host=alert.host,
        service=alert.service,
        source=alert.source,
    )


def alert_features(alert: Alert) -> AlertFeatures:
    labels = stored_labels(alert)
    extra = " ".join(str(v) for k, v in (alert.labels or {}).items() if k != "title")
    return AlertFeatures.of(
        at_s=alert.first_seen.timestamp(),
        title=alert.title,
        origin=alert.origin,
        host=alert.host,
        service=alert.service,
        labels=labels,
        extra_text=extra,
    )


def incident_features(incident: Incident) -> IncidentFeatures:
    return IncidentFeatures(
        id=incident.id,
        first_at_s=incident.started_at.timestamp(),
        last_at_s=incident.last_activity_at.timestamp(),
        open=incident.status != "resolved",
        hosts=frozenset(incident.hosts or ()),
        services=frozenset(incident.services or ()),
        templates=tuple(incident.templates or ()),
        categories=frozenset(incident.categories or ()),
        origins=frozenset(incident.origins or ()),
        rule_key=incident.rule_key,
    )


class AlertOps:
    def __init__(
        self,
        session: AsyncSession,
        rules: RuleSet,
        *,
        options: AlertingOptions = AlertingOptions(),
        topology: TopologyLoader = _no_topology,
        now: datetime | None = None,
        summarizer: TemplateSummarizer | None = None,
    ) -> None:
        self.session = session
        self.rules = rules
        self.options = options
        self.now = now or utcnow()
        self.changes = ChangeSet()
        self.summarizer = summarizer or TemplateSummarizer()
        self._topology_loader = topology
        self._topology_data: TopologyData | None = None
        self._topology: Topology | None = None
        self._notes: list[_Note] = []
        self._notify: list[_Notify] = []
        self._attach: list[tuple[Alert, Incident]] = []
        # re-fired alerts of incidents: (alert, when, severity changed, title before the re-fire)
        self._refired: list[tuple[Alert, datetime, bool, str]] = []
        self._dirty: dict[int, Incident] = {}  # by Python id: new incidents have no id yet
        # Features of stored incidents that alerts joined, written in finish() (see there)
        self._features: dict[int, tuple[Incident, IncidentFeatures]] = {}
        self._candidates: dict[int, tuple[Incident, IncidentFeatures]] | None = None
        self._next_temp_id = -1

    # --- timeline ---------------------------------------------------------------------------

    def note(
        self,
        kind: str,
        message: str,
        *,
        alert: Alert | None = None,
        incident: Incident | None = None,
        actor: str = "system",
        data: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        self._notes.append(_Note(kind, message, actor, data or {}, at or self.now, alert, incident))

    # --- signals ----------------------------------------------------------------------------

    async def apply_signals(self, signals: Sequence[AlertSignal]) -> list[Alert]:
        """Deduplicate, create, re-fire, reopen or resolve: the alerts the signals touched."""
        prepared = [
            (s, compute_fingerprint(s, self.rules.fingerprint_fields.get(s.origin)).fingerprint)
            for s in sorted(signals, key=lambda s: s.time_ns)
        ]
        fingerprints = sorted({fp for _, fp in prepared})
        open_by_fp: dict[str, Alert] = {}
        recent_by_fp: dict[str, Alert] = {}
        if fingerprints:
            # Firing alerts, and those resolved recently enough to reopen, in one query.
            # Reopening is judged in the signals' own time, so replayed or late signals behave
            # as they did when they happened.
            window = timedelta(seconds=self.options.reopen_window_s)
            since = min(as_datetime(s.time_ns) for s, _ in prepared) - window
            rows = await self.session.execute(
                select(Alert)
                .where(
                    Alert.fingerprint.in_(fingerprints),
                    or_(Alert.resolved_at.is_(None), Alert.resolved_at >= since),
                )
                .order_by(Alert.resolved_at.desc(), Alert.id.desc())
            )
            for row in rows.scalars():
                if row.resolved_at is None:
                    open_by_fp[row.fingerprint] = row
                else:
                    recent_by_fp.setdefault(row.fingerprint, row)
        if any(not s.resolved for s, _ in prepared):
            await self.candidates()  # before new rows exist, so that query flushes nothing
        touched: dict[int, Alert] = {}
        created: list[Alert] = []
        # New alerts are inserted once, at the end, already linked to their incident: an
        # insert followed by an update would write every index of the table twice.
        with self.session.no_autoflush:
            await self._apply(prepared, open_by_fp, recent_by_fp, touched, created)
            for alert in created:
                if not alert.suppressed:
                    await self.correlate(alert)
        return list(touched.values())

    async def _apply(
        self,
        prepared: list[tuple[AlertSignal, str]],
        open_by_fp: dict[str, Alert],
        recent_by_fp: dict[str, Alert],
        touched: dict[int, Alert],
        created: list[Alert],
    ) -> None:
        for signal, fp in prepared:
            at = as_datetime(signal.time_ns)
            alert: Alert | None = open_by_fp.get(fp)
            if signal.resolved:
                if alert is not None:
                    await self.resolve(alert, reason="source", actor=signal.origin, at=at)
                    del open_by_fp[fp]
                    recent_by_fp[fp] = alert
                    touched[id(alert)] = alert
                continue
            if alert is not None:
                self._refire(alert, signal, at)
            elif fp in recent_by_fp and self._reopenable(recent_by_fp[fp], at):
                alert = recent_by_fp.pop(fp)
                await self._reopen(alert, signal, at)
                open_by_fp[fp] = alert
            else:
                alert = self._create(signal, fp, at)
                open_by_fp[fp] = alert
                created.append(alert)
            touched[id(alert)] = alert

    def _reopenable(self, alert: Alert, at: datetime) -> bool:
        resolved_at = alert.resolved_at
        return resolved_at is not None and at - resolved_at <= timedelta(seconds=self.options.reopen_window_s)

    def _merge_signal(self, alert: Alert, signal: AlertSignal, at: datetime) -> bool:
        """Refresh a firing alert from a new signal; returns whether its severity changed."""
        alert.count += 1
        if at > alert.last_seen:
            alert.last_seen = at
        alert.title = signal.title
        if signal.description:
            alert.description = signal.description
        if signal.labels:
            alert.labels = {**(alert.labels or {}), **signal.labels}
        if signal.annotations:
            alert.annotations = {**(alert.annotations or {}), **signal.annotations}
        if signal.evidence:
            evidence = list(alert.evidence or [])
            evidence += [e for e in signal.evidence if e not in evidence]
            alert.evidence = evidence[-self.options.max_evidence :]
        if signal.source:
            alert.source = signal.source
        changed = signal.severity != alert.severity
        if changed:
            self.note(
                "severity",
                f"severity {alert.severity} → {signal.severity}",
                alert=alert,
                actor=signal.origin,
                data={"from": alert.severity, "to": signal.severity},
                at=at,
            )
            alert.severity = signal.severity
        return changed

    def _create(self, signal: AlertSignal, fingerprint: str, at: datetime) -> Alert:
        labels = signal_labels(signal)
        silenced = silencing(self.rules.silences, labels, self.now)
        alert = Alert(
            fingerprint=fingerprint,
            origin=signal.origin,
            source=signal.source,
            title=signal.title,
            description=signal.description,
            severity=signal.severity,
            status="suppressed" if silenced else "new",
            host=signal.host,
            service=signal.service,
            labels=dict(signal.labels),
            annotations=dict(signal.annotations),
            evidence=list(signal.evidence)[-self.options.max_evidence :],
            count=1,
            first_seen=at,
            last_seen=at,
            updated_at=self.now,
            suppressed=bool(silenced),
            silence_ids=silenced,
            flapping=False,
            flap_history=[],
            reopened=0,
            escalation_level=0,
        )
        self.session.add(alert)
        self.note(
            "created",
            f"{signal.origin} alert raised: {signal.title}",
            alert=alert,
            actor=signal.origin,
            data={"fingerprint": fingerprint, "severity": signal.severity},
            at=at,
        )
        if silenced:
            self.note(
                "suppressed",
                f"suppressed by silence {', '.join(f'#{s}' for s in silenced)}",
                alert=alert,
                data={"silence_ids": silenced},
            )
        else:
            self._start_escalation(alert)
            self._notify.append(_Notify(alert, "trigger"))
        self.changes.alert("alert.created", alert)
        return alert

    def _refire(self, alert: Alert, signal: AlertSignal, at: datetime) -> None:
        previous_title = alert.title
        severity_changed = self._merge_signal(alert, signal, at)
        self.changes.alert("alert.updated", alert, durable=severity_changed)
        if alert.incident_id is not None:
            self._touch_incident_later(alert, at, severity_changed, previous_title)

    async def _reopen(self, alert: Alert, signal: AlertSignal, at: datetime) -> None:
        self._merge_signal(alert, signal, at)
        self._state_change(alert, at)
        silenced = silencing(self.rules.silences, stored_labels(alert), self.now)
        alert.status = "suppressed" if silenced else "new"
        alert.suppressed = bool(silenced)
        alert.silence_ids = silenced
        alert.resolved_at = None
        alert.resolve_reason = None
        alert.acknowledged_at = None
        alert.reopened += 1
        alert.updated_at = self.now
        self.note(
            "reopened", "fired again after resolving: reopened", alert=alert, actor=signal.origin, at=at
        )
        self.changes.alert("alert.updated", alert)
        if silenced:
            return
        self._start_escalation(alert)
        self._notify.append(_Notify(alert, "trigger"))
        if alert.incident_id is not None:
            incident = await self.session.get(Incident, alert.incident_id)
            if incident is not None:
                self._mark_dirty(incident)
                if at > incident.last_activity_at:
                    incident.last_activity_at = at
                return
        await self.correlate(alert)

    def _touch_incident_later(
        self, alert: Alert, at: datetime, severity_changed: bool, previous_title: str
    ) -> None:
        # Loading the incident needs an await; re-fires are frequent, so they are collected and
        # applied in finish() with one query.
        self._refired.append((alert, at, severity_changed, previous_title))

    def _state_change(self, alert: Alert, at: datetime) -> None:
        """A change of firing state reported by the source: flapping bookkeeping."""
        history = record_state_change(alert.flap_history or [], at.timestamp(), self.options.flap)
        alert.flap_history = history
        flapping = is_flapping(history, at.timestamp(), self.options.flap, alert.flapping)
        if flapping and not alert.flapping:
            window = self.options.flap.window_s / 60
            self.note(
                "flapping",
                f"flapping: {len(history)} state changes within {window:.0f} min; "
                "notifications held until it is stable",
                alert=alert,
                at=at,
            )
        alert.flapping = flapping

    # --- escalation ---------------------------------------------------------------------------

    def _policy(self, alert: Alert) -> EscalationView | None:
        if alert.escalation_policy_id is not None:
            policy = next((p for p in self.rules.escalation if p.id == alert.escalation_policy_id), None)
            if policy is not None:
                return policy
        return self.rules.escalation_for(alert.severity, stored_labels(alert))

    def _start_escalation(self, alert: Alert) -> None:
        policy = self.rules.escalation_for(alert.severity, stored_labels(alert))
        alert.escalation_level = 0
        if policy is None:
            alert.escalation_policy_id = None
            alert.next_escalation_at = None
            return
        alert.escalation_policy_id = policy.id
        alert.next_escalation_at = self.now + timedelta(minutes=policy.steps[0].after_minutes)

    async def escalate(self, alert: Alert, actor: str, note: str | None = None) -> int:
        """Notify the next escalation step (or, without a policy step left, every route that
        takes escalations); returns the new level."""
        if alert.status == "resolved":
            raise AlertingError("status: a resolved alert cannot be escalated")
        policy = self._policy(alert)
        level = alert.escalation_level
        targets: list[tuple[int, int | None]] | None = None
        step_due = alert.next_escalation_at or self.now
        if policy is not None and level < len(policy.steps):
            step = policy.steps[level]
            targets = [
                (c, None)
                for c in step.channel_ids
                if c in self.rules.channels and self.rules.channels[c].enabled
            ]
            following = policy.steps[level + 1] if level + 1 < len(policy.steps) else None
            base = step_due if actor == "system" else self.now
            alert.next_escalation_at = (
                base + timedelta(minutes=following.after_minutes - step.after_minutes)
                if following is not None
                else None
            )
        else:
            alert.next_escalation_at = None
        alert.escalation_level = level + 1
        alert.updated_at = self.now
        who = "not acknowledged in time" if actor == "system" else f"by {actor}"
        where = f" (policy {policy.name!r})" if policy is not None else ""
        self.note(
            "escalated",
            f"escalated to level {level + 1}{where}, {who}",
            alert=alert,
            actor=actor,
            data={"level": level + 1, "note": note} if note else {"level": level + 1},
        )
        self._notify.append(_Notify(alert, "escalate", note=note, level=level + 1, targets=targets))
        self.changes.alert("alert.updated", alert)
        return level + 1

    async def escalate_due(self, limit: int = 200) -> int:
        rows = await self.session.execute(
            select(Alert)
            .where(Alert.next_escalation_at <= self.now)
            .order_by(Alert.next_escalation_at)
            .limit(limit)
        )
        done = 0
        for alert in rows.scalars():
            if alert.status != "new" or alert.resolved_at is not None:
                alert.next_escalation_at = None  # acknowledged or resolved meanwhile
                continue
            await self.escalate(alert, "system")
            done += 1
        return done

    # --- people's actions ---------------------------------------------------------------------

    async def set_status(self, alert: Alert, status: str, actor: str, note: str | None = None) -> bool:
        """Move an alert to ``status`` (new, acknowledged, in_progress, resolved); returns
        whether anything changed. AlertingError when the transition is not allowed."""
        if status not in USER_STATUSES:
            raise AlertingError(f"status: must be one of {', '.join(USER_STATUSES)}")
        error = transition_error(alert.status, status)
        if error:
            raise AlertingError(f"status: {error}")
        if alert.status == status:
            return False
        if status == "resolved":
            await self.resolve(alert, reason="manual", actor=actor, note=note)
            return True
        previous = alert.status
        if previous == "resolved":
            alert.resolved_at = None
            alert.resolve_reason = None
            alert.reopened += 1
            self._start_escalation(alert)
        alert.status = status
        alert.updated_at = self.now
        if status in ("acknowledged", "in_progress"):
            alert.acknowledged_at = alert.acknowledged_at or self.now
            alert.next_escalation_at = None
        if status == "new":
            alert.acknowledged_at = None
        if status != "suppressed":
            alert.suppressed = False
        self.note(
            "status",
            f"{previous} → {status}",
            alert=alert,
            actor=actor,
            data={"from": previous, "to": status, **({"note": note} if note else {})},
        )
        if status == "acknowledged":
            self._notify.append(_Notify(alert, "acknowledge", note=note))
        self.changes.alert("alert.updated", alert)
        if alert.incident_id is not None:
            incident = await self.session.get(Incident, alert.incident_id)
            if incident is not None:
                self._raise_incident_status(incident, status, actor)
                self._mark_dirty(incident)
        elif previous == "resolved" and not alert.suppressed:
            await self.correlate(alert)
        return True

    def _raise_incident_status(self, incident: Incident, alert_status: str, actor: str) -> None:
        """Working on an alert works on its incident: acknowledge / start it if it was behind."""
        if alert_status not in ("acknowledged", "in_progress"):
            return
        if incident.acknowledged_at is None:
            incident.acknowledged_at = self.now
        if INCIDENT_STATUS_RANK.get(incident.status, 0) < INCIDENT_STATUS_RANK[alert_status]:
            previous = incident.status
            incident.status = alert_status
            self.note(
                "status",
                f"{previous} → {alert_status} (through an alert)",
                incident=incident,
                actor=actor,
                data={"from": previous, "to": alert_status},
            )
            self.changes.incident("incident.updated", incident)

    async def resolve(
        self, alert: Alert, *, reason: str, actor: str, at: datetime | None = None, note: str | None = None
    ) -> None:
        if alert.status == "resolved":
            return
        previous = alert.status
        when = at or self.now
        alert.status = "resolved"
        alert.resolved_at = when
        alert.resolve_reason = reason
        alert.next_escalation_at = None
        alert.updated_at = self.now
        if reason in ("source", "timeout"):
            self._state_change(alert, when)
        why = {
            "source": f"resolved by {actor}",
            "timeout": "resolved: no re-fire within the origin's timeout (condition cleared)",
            "manual": f"resolved by {actor}",
            "incident": f"resolved with its incident by {actor}",
        }.get(reason, f"resolved ({reason})")
        self.note(
            "status",
            why,
            alert=alert,
            actor=actor,
            data={"from": previous, "to": "resolved", "reason": reason, **({"note": note} if note else {})},
            at=when,
        )
        if previous != "suppressed":
            self._notify.append(_Notify(alert, "resolve", note=note))
        self.changes.alert("alert.resolved", alert)
        if alert.incident_id is not None:
            incident = await self.session.get(Incident, alert.incident_id)
            if incident is not None:
                self._mark_dirty(incident)

    def assign(self, alert: Alert, assignee: str | None, actor: str) -> bool:
        if alert.assignee == assignee:
            return False
        previous = alert.assignee
        alert.assignee = assignee
        alert.updated_at = self.now
        message = f"assigned to {assignee}" if assignee else "unassigned"
        self.note("assigned", message, alert=alert, actor=actor, data={"from": previous, "to": assignee})
        self.changes.alert("alert.updated", alert)
        return True

    def add_note(
        self, text_: str, actor: str, *, alert: Alert | None = None, incident: Incident | None = None
    ) -> None:
        self.note("note", text_, alert=alert, incident=incident, actor=actor)
        if alert is not None:
            self.changes.alert("alert.updated", alert, durable=False)
        if incident is not None:
            self.changes.incident("incident.updated", incident, durable=False)

    async def set_incident_status(
        self, incident: Incident, status: str, actor: str, note: str | None = None
    ) -> bool:
        """Incident actions apply to its alerts: acknowledging it acknowledges its new alerts,
        resolving it resolves every alert still open."""
        if status not in USER_STATUSES:
            raise AlertingError(f"status: must be one of {', '.join(USER_STATUSES)}")
        if incident.status == status:
            return False
        if incident.status == "resolved" and status != "new":
            raise AlertingError(f"status: a resolved incident cannot become {status}; reopen it (new) first")
        alerts = list(
            (await self.session.execute(select(Alert).where(Alert.incident_id == incident.id))).scalars()
        )
        previous = incident.status
        if status == "resolved":
            for alert in alerts:
                if alert.resolved_at is None:
                    await self.resolve(alert, reason="incident", actor=actor, note=note)
            self._resolve_incident(incident, actor)
        elif status == "new":
            incident.status = "new"
            incident.resolved_at = None
            incident.acknowledged_at = None
        else:
            incident.status = status
            incident.acknowledged_at = incident.acknowledged_at or self.now
            for alert in alerts:
                if alert.status == "new":
                    await self.set_status(alert, "acknowledged", actor)
        self.note(
            "status",
            f"{previous} → {status}",
            incident=incident,
            actor=actor,
            data={"from": previous, "to": status, **({"note": note} if note else {})},
        )
        self.changes.incident("incident.resolved" if status == "resolved" else "incident.updated", incident)
        self._mark_dirty(incident)
        return True

    def assign_incident(self, incident: Incident, assignee: str | None, actor: str) -> bool:
        if incident.assignee == assignee:
            return False
        previous = incident.assignee
        incident.assignee = assignee
        self.note(
            "assigned",
            f"assigned to {assignee}" if assignee else "unassigned",
            incident=incident,
            actor=actor,
            data={"from": previous, "to": assignee},
        )
        self.changes.incident("incident.updated", incident)
        return True

    def _resolve_incident(self, incident: Incident, actor: str) -> None:
        if incident.status == "resolved":
            return
        incident.status = "resolved"
        incident.resolved_at = self.now
        self.note(
            "status",
            "resolved: every alert is resolved" if actor == "system" else f"resolved by {actor}",
            incident=incident,
            actor=actor,
            data={"to": "resolved"},
        )
        self.changes.incident("incident.resolved", incident)

    # --- timers ---------------------------------------------------------------------------------

    async def auto_resolve_stale(self, origins: Sequence[str], limit: int = 500) -> int:
        """Resolve alerts that stopped re-firing for longer than their origin's timeout."""
        done = 0
        for origin in origins:
            minutes = self.rules.auto_resolve_after(origin)
            if minutes is None:
                continue
            cutoff = self.now - timedelta(minutes=minutes)
            rows = await self.session.execute(
                select(Alert)
                .where(Alert.origin == origin, Alert.resolved_at.is_(None), Alert.last_seen < cutoff)
                .order_by(Alert.last_seen)
                .limit(limit)
            )
            for alert in rows.scalars():
                await self.resolve(alert, reason="timeout", actor="system")
                done += 1
        return done

    async def settle_flapping(self, limit: int = 500) -> int:
        """Alerts stable for a whole flap window stop flapping; their current state is then
        notified once (it was held while flapping)."""
        rows = await self.session.execute(select(Alert).where(Alert.flapping.is_(True)).limit(limit))
        done = 0
        for alert in rows.scalars():
            if is_flapping(alert.flap_history or [], self.now.timestamp(), self.options.flap, True):
                continue
            alert.flapping = False
            alert.updated_at = self.now
            state = "resolved" if alert.resolved_at is not None else "firing"
            self.note("flapping", f"stable again ({state}); notifications resume", alert=alert)
            if not alert.suppressed:
                self._notify.append(_Notify(alert, "resolve" if alert.resolved_at is not None else "trigger"))
            self.changes.alert("alert.updated", alert)
            done += 1
        return done

    async def reapply_silences(self, limit: int = 5000) -> tuple[int, int]:
        """Un-suppress alerts whose silences ended, suppress new alerts a silence now covers;
        returns (suppressed, unsuppressed)."""
        unsuppressed = 0
        rows = await self.session.execute(
            select(Alert).where(Alert.status == "suppressed", Alert.resolved_at.is_(None)).limit(limit)
        )
        for alert in rows.scalars():
            active = silencing(self.rules.silences, stored_labels(alert), self.now)
            if active:
                if active != list(alert.silence_ids or []):
                    alert.silence_ids = active
                continue
            alert.status = "acknowledged" if alert.acknowledged_at is not None else "new"
            alert.suppressed = False
            alert.silence_ids = []
            alert.updated_at = self.now
            self.note("unsuppressed", "silence ended: active again", alert=alert)
            self._start_escalation(alert)
            self._notify.append(_Notify(alert, "trigger"))
            self.changes.alert("alert.updated", alert)
            if alert.incident_id is None:
                await self.correlate(alert)
            unsuppressed += 1
        suppressed = 0
        if any(w.is_active(self.now) for w in self.rules.silences):
            rows = await self.session.execute(
                select(Alert).where(Alert.status == "new", Alert.resolved_at.is_(None)).limit(limit)
            )
            for alert in rows.scalars():
                active = silencing(self.rules.silences, stored_labels(alert), self.now)
                if not active:
                    continue
                alert.status = "suppressed"
                alert.suppressed = True
                alert.silence_ids = active
                alert.next_escalation_at = None
                alert.updated_at = self.now
                self.note(
                    "suppressed",
                    f"suppressed by silence {', '.join(f'#{s}' for s in active)}",
                    alert=alert,
                    data={"silence_ids": active},
                )
                self.changes.alert("alert.updated", alert)
                suppressed += 1
        return suppressed, unsuppressed

    # --- incidents ------------------------------------------------------------------------------

    async def topology(self) -> Topology:
        if self._topology is None:
            if self._topology_data is None:
                self._topology_data = await self._topology_loader()
            self._topology = Topology.build(self._topology_data.pairs, self._topology_data.dependencies)
        return self._topology

    async def learn_pair(self, host: str | None, service: str | None) -> None:
        """Count ``host`` as running ``service`` from now on (an alert names both)."""
        if self._topology_data is None:
            self._topology_data = await self._topology_loader()
        if host and service and (host, service) not in self._topology_data.pairs:
            self._topology_data.pairs.append((host, service))
            self._topology = None

    async def candidates(self) -> dict[int, tuple[Incident, IncidentFeatures]]:
        """Incidents an alert may join: open ones and those resolved moments ago."""
        if self._candidates is None:
            recently = self.now - timedelta(seconds=self.options.correlation.near_s)
            rows = await self.session.execute(
                select(Incident)
                .where(or_(Incident.status != "resolved", Incident.resolved_at >= recently))
                .order_by(Incident.last_activity_at.desc())
                .limit(self.options.candidate_incidents)
            )
            self._candidates = {i.id: (i, incident_features(i)) for i in rows.scalars()}
        return self._candidates

    async def decide(self, alert: Alert, features: AlertFeatures | None = None) -> Decision:
        await self.learn_pair(alert.host, alert.service)
        candidates = await self.candidates()
        return choose_incident(
            features or alert_features(alert),
            [f for _, f in candidates.values()],
            await self.topology(),
            self.rules.grouping,
            self.options.correlation,
        )

    async def correlate(self, alert: Alert) -> Incident:
        """Put the alert in the incident it belongs to, opening one when there is none."""
        features = alert_features(alert)
        decision = await self.decide(alert, features)
        candidates = await self.candidates()
        if decision.incident_id is None:
            incident = Incident(
                title=alert.title,
                severity=alert.severity,
                status="new",
                started_at=alert.first_seen,
                detected_at=self.now,
                last_activity_at=alert.first_seen,
                alert_count=0,
                open_alert_count=0,
                rule_key=decision.rule_key,
                labels={},
                summary_generated_by=RULES,
            )
            self.session.add(incident)
            temp_id = self._next_temp_id
            self._next_temp_id -= 1
            merged = new_incident_features(temp_id, features, decision.rule_key)
            self.note(
                "created",
                f"incident opened by {alert.origin} alert: {alert.title}",
                incident=incident,
                data={"reasons": list(decision.reasons)},
            )
            self.changes.incident("incident.created", incident)
        else:
            incident, known = candidates[decision.incident_id]
            merged = merge_features(known, features)
            if SEVERITY_RANK.get(alert.severity, 0) > SEVERITY_RANK.get(incident.severity, 0):
                self.note(
                    "severity",
                    f"severity {incident.severity} → {alert.severity}",
                    incident=incident,
                    data={"from": incident.severity, "to": alert.severity},
                )
                incident.severity = alert.severity
                incident.title = alert.title
            self.changes.incident("incident.updated", incident)
        candidates[merged.id] = (incident, merged)
        if incident.id is None:
            self._write_features(incident, merged)  # part of its insert
        else:
            self._features[incident.id] = (incident, merged)
        self.note(
            "joined",
            f"alert joined: {alert.title}",
            alert=alert,
            incident=incident,
            data={"reasons": list(decision.reasons), "score": decision.score},
        )
        if incident.id is not None:
            alert.incident_id = incident.id
        else:
            self._attach.append((alert, incident))  # a new incident: its id comes with the flush
        self._mark_dirty(incident)
        return incident

    @staticmethod
    def _write_features(incident: Incident, features: IncidentFeatures) -> None:
        # Most joins change nothing but the time: only rewrite what differs (lists are JSON).
        for name, value in (
            ("hosts", sorted(features.hosts)),
            ("services", sorted(features.services)),
            ("origins", sorted(features.origins)),
            ("templates", list(features.templates)),
            ("categories", sorted(features.categories)),
        ):
            if getattr(incident, name) != value:
                setattr(incident, name, value)
        incident.last_activity_at = datetime.fromtimestamp(features.last_at_s, UTC)
        incident.started_at = datetime.fromtimestamp(features.first_at_s, UTC)

    async def move_alert(self, alert_id: int, incident: Incident, actor: str) -> None:
        """Correct the grouping by hand: put an alert into ``incident``."""
        alert = await self.session.get(Alert, alert_id)
        if alert is None:
            raise AlertingError(f"alert_id: alert {alert_id} does not exist")
        if alert.incident_id == incident.id:
            return
        if alert.incident_id is not None:
            previous = await self.session.get(Incident, alert.incident_id)
            if previous is not None:
                self.note(
                    "moved",
                    f"alert moved to incident #{incident.id} by {actor}",
                    alert=alert,
                    incident=previous,
                    actor=actor,
                )
                self._mark_dirty(previous)
                self.changes.incident("incident.updated", previous)
        self._write_features(incident, merge_features(incident_features(incident), alert_features(alert)))
        if SEVERITY_RANK.get(alert.severity, 0) > SEVERITY_RANK.get(incident.severity, 0):
            incident.severity = alert.severity
        alert.incident_id = incident.id
        alert.updated_at = self.now
        self.note(
            "joined",
            f"alert moved here by {actor}: {alert.title}",
            alert=alert,
            incident=incident,
            actor=actor,
        )
        self._mark_dirty(incident)
        self.changes.alert("alert.updated", alert)
        self.changes.incident("incident.updated", incident)

    def _mark_dirty(self, incident: Incident) -> None:
        self._dirty[id(incident)] = incident

    async def _apply_refires(self) -> None:
        refired = self._refired
        if not refired:
            return
        ids = sorted({a.incident_id for a, _, _, _ in refired if a.incident_id is not None})
        rows = await self.session.execute(select(Incident).where(Incident.id.in_(ids)))
        incidents = {i.id: i for i in rows.scalars()}
        for alert, at, severity_changed, previous_title in refired:
            incident = incidents.get(alert.incident_id or 0)
            if incident is None:
                continue
            if at > incident.last_activity_at:
                incident.last_activity_at = at
            if alert.title != previous_title and incident.title == previous_title:
                # The incident is named after this alert: keep the name current (a forecast's
                # "exhausted in ~22 min", not the first "~70 min").
                incident.title = alert.title
                self._mark_dirty(incident)
                self.changes.incident("incident.updated", incident, durable=False)
            if severity_changed and SEVERITY_RANK.get(alert.severity, 0) > SEVERITY_RANK.get(
                incident.severity, 0
            ):
                self.note(
                    "severity",
                    f"severity {incident.severity} → {alert.severity}",
                    incident=incident,
                    data={"from": incident.severity, "to": alert.severity},
                )
                incident.severity = alert.severity
                self._mark_dirty(incident)
                self.changes.incident("incident.updated", incident)
        refired.clear()

    async def _recount(self) -> None:
        """Exact alert counts of the touched incidents; an incident with no alert left firing
        resolves, one with a firing alert again reopens."""
        incidents = [i for i in self._dirty.values() if i.id is not None]
        if not incidents:
            return
        open_case = case((Alert.resolved_at.is_(None), 1), else_=0)
        rows = await self.session.execute(
            select(Alert.incident_id, func.count(), func.sum(open_case))
            .where(Alert.incident_id.in_([i.id for i in incidents]))
            .group_by(Alert.incident_id)
        )
        counts = {incident_id: (int(total), int(open_ or 0)) for incident_id, total, open_ in rows.all()}
        for incident in incidents:
            total, open_ = counts.get(incident.id, (0, 0))
            incident.alert_count = total
            incident.open_alert_count = open_
            if open_ == 0 and incident.status != "resolved":
                self._resolve_incident(incident, "system")
            elif open_ > 0 and incident.status == "resolved":
                incident.status = "new"
                incident.resolved_at = None
                self.note("reopened", "an alert fired again: reopened", incident=incident)
                self.changes.incident("incident.updated", incident)

    # --- commit preparation --------------------------------------------------------------------

    async def finish(self) -> None:
        """Write what needs ids (links, counts, timeline, deliveries, summaries) and snapshot
        the changes to announce. Call once, before the transaction commits.

        Changes to stored incidents (features, counts, summary) are held back until the last
        flush, so each incident is updated once per transaction: flushed as they happened,
        a batch joining a busy incident updated it three times (with the alerts' insert,
        with its counts, with its summary), in the transaction every alert waits for."""
        self._mark_notified()
        await self.session.flush()  # new alerts and incidents get their ids
        if self._attach:
            for alert, incident in self._attach:
                alert.incident_id = incident.id
            self._attach.clear()
            await self.session.flush()
        with self.session.no_autoflush:
            for incident, features in self._features.values():
                self._write_features(incident, features)
            self._features.clear()
            await self._apply_refires()
            await self._recount()
            incidents_by_id = {i.id: i for i in self._dirty.values() if i.id is not None}
            for pending in self._notify:
                await self._queue_notification(pending, incidents_by_id)
            self._notify.clear()
            for n in self._notes:
                self.session.add(
                    TimelineEntry(
                        at=n.at,
                        alert_id=n.alert.id if n.alert is not None else None,
                        incident_id=n.incident.id if n.incident is not None else None,
                        kind=n.kind,
                        actor=n.actor,
                        message=n.message,
                        data=n.data,
                    )
                )
            self._notes.clear()
            dirty = [i for i in self._dirty.values() if i.id is not None]
            snapshots = await incident_snapshots(self.session, dirty)
            for incident in dirty:
                summary = Summary(self.summarizer.render(snapshots[incident.id]), RULES)
                if await apply_summary(self.session, incident, summary):
                    self.changes.incident("incident.updated", incident, durable=False)
            self._dirty.clear()
        await self.session.flush()
        self.changes.render()

    @staticmethod
    def _held(pending: _Notify) -> bool:
        """A flapping alert's trigger or resolve waits until the alert is stable."""
        alert = pending.alert
        return not alert.suppressed and alert.flapping and pending.event in ("trigger", "resolve")

    def _targets(self, pending: _Notify) -> list[tuple[int, int | None]]:
        """The channels a queued notification goes to: none for a suppressed alert, a held
        notification, or news of an alert nobody was told fired; otherwise its own targets
        or the routes'."""
        alert = pending.alert
        if alert.suppressed or self._held(pending):
            return []
        if pending.event in ("resolve", "acknowledge") and alert.notified_at is None:
            return []
        if pending.targets is None:
            pending.targets = route_channels(self.rules, pending.event, alert.severity, stored_labels(alert))
        return pending.targets

    def _mark_notified(self) -> None:
        """Mark the alerts that queued notifications will reach, before the flush that inserts
        new alerts: marked after it, each notified new alert was inserted, then updated."""
        for pending in self._notify:
            first = pending.event in ("trigger", "escalate") and pending.alert.notified_at is None
            if first and self._targets(pending):
                pending.alert.notified_at = self.now

    async def _queue_notification(self, pending: _Notify, incidents: dict[int, Incident]) -> None:
        alert = pending.alert
        if self._held(pending):
            self.session.add(
                TimelineEntry(
                    at=self.now,
                    alert_id=alert.id,
                    kind="notification_held",
                    actor="system",
                    message=f"{pending.event} notification held: the alert is flapping",
                    data={},
                )
            )
            return
        targets = self._targets(pending)
        if not targets:
            return
        incident = incidents.get(alert.incident_id or 0)
        if incident is None and alert.incident_id is not None:
            incident = await self.session.get(Incident, alert.incident_id)
        message = notification_message(
            alert, pending.event, incident, note=pending.note, escalation_level=pending.level
        )
        # The outbox runs on the wall clock even when a replay or test moves `now`.
        for delivery in deliveries(alert, message, targets, utcnow()):
            self.session.add(delivery)
        if pending.event in ("trigger", "escalate") and alert.notified_at is None:
            alert.notified_at = self.now
