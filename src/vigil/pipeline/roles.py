"""The worker's roles: which parts of the pipeline a ``vigil worker`` process runs.

Kept apart from the wiring so that the CLI can check ``--roles`` without importing every stage.
"""

from __future__ import annotations

from collections.abc import Collection

# ingest: storing what arrives, log mining and the collectors; alerting: dedup, silences,
# correlation, notifications; enrich: root-cause evidence per incident; metrics: anomaly
# detection and predictions.
ROLES = ("ingest", "alerting", "enrich", "metrics")


def check_roles(roles: Collection[str]) -> None:
    """Raise ValueError naming what is wrong with ``roles``."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        named = ", ".join(unknown) or "(none given)"
        raise ValueError(f"unknown worker role(s) {named}; known: {', '.join(ROLES)}")
