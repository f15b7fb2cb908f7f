"""When the enrich stage (re-)analyses an incident: new incidents at once, grown ones soon but
not on every change of an alert storm, unchanged or resolved ones not again."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

from vigil.pipeline.stages.enrich import EnrichStage
from vigil.store.types import utcnow


def stage() -> EnrichStage:
    nothing = cast(Any, None)  # _due touches neither the database, the bus nor the RCA service
    return EnrichStage(nothing, nothing, nothing, min_rerun_s=60, min_growth_rerun_s=5)


def analysed(alerts: int, seconds_ago: float) -> Any:
    return SimpleNamespace(alert_count=alerts, created_at=utcnow() - timedelta(seconds=seconds_ago))


def test_a_new_incident_is_analysed_at_once() -> None:
    assert stage()._due(None, 1, {"incident.created"}, resolved=False) == (True, "incident.created")
    assert stage()._due(None, 3, {"incident.resolved"}, resolved=True) == (True, "incident.resolved")


def test_growth_reruns_soon_but_not_on_every_change_of_a_storm() -> None:
    types = {"alert.created"}
    assert stage()._due(analysed(10, 1), 20, types, resolved=False)[0] is False  # doubled, 1 s ago
    assert stage()._due(analysed(10, 6), 20, types, resolved=False) == (True, "incident.updated")
    assert stage()._due(analysed(10, 6), 12, types, resolved=False)[0] is False  # grew by a fifth
    assert stage()._due(analysed(10, 61), 11, types, resolved=False) == (True, "incident.updated")


def test_unchanged_or_resolved_incidents_are_not_analysed_again() -> None:
    assert stage()._due(analysed(10, 600), 10, {"alert.updated"}, resolved=False)[0] is False
    assert stage()._due(analysed(10, 600), 30, {"incident.resolved"}, resolved=True)[0] is False
