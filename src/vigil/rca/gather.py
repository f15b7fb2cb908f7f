"""Reading the records an analysis needs from the stores, bounded in size and time.

The window runs from ``lookback`` before the incident's start to ``lookahead`` after it (causes
come first, but detectors lag). Each source is optional: a store that does not exist in this
installation, or fails, is skipped and named in the notices, and the analysis goes on with the
rest.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, func, or_, select

from vigil.analytics.rca_ranking import Scope
from vigil.rca.evidence import (
    AlertRecord,
    ChangeRecord,
    ErrorGroupRecord,
    ReleaseRecord,
    TemplateRecord,
)
from vigil.store.db import Database
from vigil.store.models import Alert, Incident

log = logging.getLogger(__name__)


class ChangeSource(Protocol):
    """Deploys, configuration changes, automation runs: anything that changed the systems.
    The automation module (or an integration) registers one with the RCA service."""

    name: str

    async def changes(
        self, start: datetime, end: datetime, hosts: frozenset[str], services: frozenset[str]
    ) -> Sequence[ChangeRecord]: ...


@dataclass(frozen=True, slots=True)
class GatherOptions:
    lookback: timedelta = timedelta(hours=2)
    lookahead: timedelta = timedelta(minutes=15)
    # Still-open signals that began before the window (a prediction days old) count too.
    open_since_max: timedelta = timedelta(days=7)
    max_alerts: int = 400
    max_templates: int = 200
    max_error_groups: int = 200


@dataclass
class Gathered:
    scope: Scope
    window_start: datetime
    window_end: datetime
    alerts: list[AlertRecord] = field(default_factory=list)
    templates: list[TemplateRecord] = field(default_factory=list)
    error_groups: list[ErrorGroupRecord] = field(default_factory=list)
    releases: list[ReleaseRecord] = field(default_factory=list)
    changes: list[ChangeRecord] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    alert_count: int = 0


Topology = tuple[list[tuple[str, str]], list[tuple[str, str]]]  # (host, service) pairs, (caller, callee)
TopologyLoader = Callable[[], Awaitable[Topology]]


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _model(module: str, name: str) -> Any:
    """A model class from another area, or None when this installation does not have it."""
    try:
        return getattr(importlib.import_module(f"vigil.store.models.{module}"), name)
    except (ImportError, AttributeError):
        return None


def _scope(incident: Incident, incident_alerts: Sequence[Alert], topology: Topology) -> Scope:
    hosts = set(incident.hosts or ()) | {a.host for a in incident_alerts if a.host}
    services = set(incident.services or ()) | {a.service for a in incident_alerts if a.service}
    runs_on: dict[str, set[str]] = {}
    depends_on: dict[str, set[str]] = {}
    pairs, dependencies = topology
    for host, service in pairs:
        runs_on.setdefault(service, set()).add(host)
    for caller, callee in dependencies:
        depends_on.setdefault(caller, set()).add(callee)
    return Scope(
        start=incident.started_at.timestamp(),
        hosts=frozenset(hosts),
        services=frozenset(services),
        runs_on={k: frozenset(v) for k, v in runs_on.items()},
        depends_on={k: frozenset(v) for k, v in depends_on.items()},
    )


def _alert_record(a: Alert) -> AlertRecord:
    return AlertRecord(
        id=a.id,
        origin=a.origin,
        title=a.title,
        severity=a.severity,
        first_seen=a.first_seen.timestamp(),
        host=a.host,
        service=a.service,
        last_seen=_ts(a.last_seen),
        resolved_at=_ts(a.resolved_at),
        count=a.count,
        labels={str(k): str(v) for k, v in (a.labels or {}).items()},
        evidence=tuple(e for e in (getattr(a, "evidence", None) or ()) if isinstance(e, dict)),
        incident_id=a.incident_id,
    )


async def gather(
    db: Database,
    incident_id: int,
    options: GatherOptions,
    topology: TopologyLoader | None = None,
    change_sources: Sequence[ChangeSource] = (),
) -> Gathered:
    async with db.session() as session:
        incident = await session.get(Incident, incident_id)
        if incident is None:
            raise KeyError(f"incident {incident_id} does not exist")
        incident_alerts = list(
            (
                await session.execute(select(Alert).where(Alert.incident_id == incident_id).limit(1000))
            ).scalars()
        )
    notices: list[str] = []
    topo: Topology = ([], [])
    if topology is not None:
        try:
            topo = await topology()
        except Exception as exc:
            notices.append(f"topology unavailable ({type(exc).__name__}); ranked without it")
    scope = _scope(incident, incident_alerts, topo)
    start = incident.started_at
    window_start, window_end = start - options.lookback, start + options.lookahead
    # The incident's own counter (what the enrich stage compares with to decide on a re-run).
    alert_count = incident.alert_count if incident.alert_count is not None else len(incident_alerts)
    gathered = Gathered(scope, window_start, window_end, notices=notices, alert_count=alert_count)

    for name, step in (
        ("alerts", _alerts),
        ("log templates", _templates),
        ("error groups and releases", _errors),
    ):
        try:
            await step(db, gathered, options, incident_alerts)
        except Exception as exc:  # one broken source must not stop the analysis
            log.warning("RCA: %s unavailable for incident %s: %s", name, incident_id, exc)
            gathered.notices.append(f"{name}: not searched ({type(exc).__name__}: {str(exc)[:120]})")
    if not change_sources:
        gathered.notices.append("changes and automation runs: no change source is configured")
    for source in change_sources:
        try:
            found = await source.changes(window_start, window_end, scope.hosts, scope.services)
            gathered.changes.extend(found)
        except Exception as exc:
            gathered.notices.append(f"changes from {source.name}: not searched ({type(exc).__name__})")
    return gathered


async def _alerts(db: Database, g: Gathered, options: GatherOptions, incident_alerts: list[Alert]) -> None:
    start = datetime.fromtimestamp(g.scope.start, g.window_start.tzinfo)
    async with db.session() as session:
        in_window = (
            await session.execute(
                select(Alert)
                .where(Alert.first_seen >= g.window_start, Alert.first_seen <= g.window_end)
                .order_by(Alert.first_seen, Alert.id)
                .limit(options.max_alerts)
            )
        ).scalars()
        still_open = (
            await session.execute(
                select(Alert)
                .where(
                    Alert.first_seen < g.window_start,
                    Alert.first_seen >= start - options.open_since_max,
                    or_(Alert.resolved_at.is_(None), Alert.resolved_at >= start),
                )
                .order_by(Alert.first_seen.desc(), Alert.id.desc())
                .limit(max(10, options.max_alerts // 4))
            )
        ).scalars()
        rows = {a.id: a for a in [*incident_alerts, *in_window, *still_open]}
    if len(rows) >= options.max_alerts:
        g.notices.append(f"alerts: only the first {options.max_alerts} in the window were considered")
    g.alerts = [_alert_record(a) for a in sorted(rows.values(), key=lambda a: (a.first_seen, a.id))]


async def _templates(db: Database, g: Gathered, options: GatherOptions, _: list[Alert]) -> None:
    LogTemplate = _model("logs", "LogTemplate")
    LogLine = _model("logs", "LogLine")
    if LogTemplate is None or LogLine is None:
        g.notices.append("log templates: log intelligence is not installed")
        return
    lo, hi = int(g.window_start.timestamp() * 1e9), int(g.window_end.timestamp() * 1e9)
    async with db.session() as session:
        templates = list(
            (
                await session.execute(
                    select(LogTemplate)
                    .where(
                        LogTemplate.first_seen_ns >= lo,
                        LogTemplate.first_seen_ns <= hi,
                        # New routine messages (a new URL, a new user) explain nothing.
                        or_(LogTemplate.failure_type != "none", LogTemplate.severity != "low"),
                    )
                    .order_by(LogTemplate.first_seen_ns)
                    .limit(options.max_templates)
                )
            ).scalars()
        )
        places: dict[int, tuple[set[str], set[str]]] = {t.id: (set(), set()) for t in templates}
        if templates:
            rows = await session.execute(
                select(LogLine.template_id, LogLine.host, LogLine.service)
                .where(LogLine.template_id.in_(list(places)), LogLine.time_ns >= lo, LogLine.time_ns <= hi)
                .distinct()
                .limit(20 * len(templates))
            )
            for template_id, host, service in rows.all():
                hosts, services = places[int(template_id)]
                if host:
                    hosts.add(host)
                if service:
                    services.add(service)
    g.templates = [
        TemplateRecord(
            id=t.id,
            template=t.template,
            first_seen=t.first_seen_ns / 1e9,
            count=int(t.count or 0),
            failure_type=t.failure_type or "none",
            severity=t.severity or "low",
            component=t.component,
            hosts=tuple(sorted(places[t.id][0])),
            services=tuple(sorted(places[t.id][1])),
            example=(t.examples or [None])[0],
        )
        for t in templates
    ]


async def _errors(db: Database, g: Gathered, options: GatherOptions, _: list[Alert]) -> None:
    ErrorGroup = _model("ingest", "ErrorGroup")
    ErrorEvent = _model("ingest", "ErrorEventRecord")
    if ErrorGroup is None or ErrorEvent is None:
        g.notices.append("error groups: error ingestion is not installed")
        return
    async with db.session() as session:
        groups = list(
            (
                await session.execute(
                    select(ErrorGroup)
                    .where(
                        ErrorGroup.last_seen >= g.window_start,
                        or_(
                            ErrorGroup.first_seen <= g.window_end,
                            and_(
                                ErrorGroup.regressed_at.is_not(None), ErrorGroup.regressed_at <= g.window_end
                            ),
                        ),
                    )
                    .order_by(ErrorGroup.last_seen.desc())
                    .limit(options.max_error_groups)
                )
            ).scalars()
        )
        # Only groups that began (or came back) in the window say something about a cause.
        groups = [
            e
            for e in groups
            if e.first_seen >= g.window_start
            or (e.regressed_at is not None and e.regressed_at >= g.window_start)
        ]
        releases: list[ReleaseRecord] = []
        if groups:
            ids = [e.id for e in groups]
            first_seen = await session.execute(
                select(
                    ErrorEvent.service,
                    ErrorEvent.release,
                    func.min(ErrorEvent.time),
                    func.max(ErrorEvent.host),
                )
                .where(
                    ErrorEvent.group_id.in_(ids),
                    ErrorEvent.release.is_not(None),
                    ErrorEvent.time <= g.window_end,
                )
                .group_by(ErrorEvent.service, ErrorEvent.release)
            )
            for service, release, first, host in first_seen.all():
                if first is None or first < g.window_start:
                    continue
                earlier = await session.execute(
                    select(ErrorEvent.release)
                    .where(
                        ErrorEvent.service == service if service else ErrorEvent.service.is_(None),
                        ErrorEvent.release.is_not(None),
                        ErrorEvent.release != release,
                        ErrorEvent.time < first,
                    )
                    .order_by(ErrorEvent.time.desc())
                    .limit(1)
                )
                same_service = ErrorEvent.service == service if service else ErrorEvent.service.is_(None)
                seen_before = await session.execute(
                    select(func.count())
                    .select_from(ErrorEvent)
                    .where(ErrorEvent.release == release, same_service, ErrorEvent.time < g.window_start)
                )
                if seen_before.scalar_one():
                    continue
                releases.append(
                    ReleaseRecord(
                        service=service or "unknown",
                        release=str(release),
                        first_seen=first.timestamp(),
                        previous=earlier.scalar_one_or_none(),
                        host=host,
                    )
                )
    g.error_groups = [
        ErrorGroupRecord(
            id=e.id,
            title=e.title,
            first_seen=e.first_seen.timestamp(),
            last_seen=e.last_seen.timestamp(),
            count=int(e.count or 0),
            culprit=e.culprit,
            exception_type=e.exception_type,
            level=e.level,
            first_release=e.first_release,
            last_release=e.last_release,
            host=e.last_host,
            service=e.last_service,
            regressed_at=_ts(e.regressed_at),
        )
        for e in groups
    ]
    g.releases = releases
