"""The KPIs API on known data, on both profiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.conftest import Api
from vigil.store.models import Alert, Incident


def _incident(
    now: datetime,
    days_ago: float,
    *,
    severity: str,
    services: list[str],
    ack_min: float | None,
    repair_h: float | None,
    detect_min: float = 0,
) -> Incident:
    started = now - timedelta(days=days_ago)
    detected = started + timedelta(minutes=detect_min)
    return Incident(
        title=f"incident {days_ago}",
        severity=severity,
        status="resolved" if repair_h is not None else "new",
        started_at=started,
        detected_at=detected,
        last_activity_at=started,
        services=services,
        acknowledged_at=None if ack_min is None else detected + timedelta(minutes=ack_min),
        resolved_at=None if repair_h is None else started + timedelta(hours=repair_h),
        labels={},
    )


def _alert(
    now: datetime,
    fingerprint: str,
    days_ago: float,
    *,
    count: int,
    reopened: int = 0,
    source: str = "prom",
    host: str = "web-1",
    title: str = "Disk full",
) -> Alert:
    seen = now - timedelta(days=days_ago)
    return Alert(
        fingerprint=fingerprint,
        origin="alertmanager",
        source=source,
        title=title,
        severity="high",
        status="resolved",
        host=host,
        labels={},
        annotations={},
        count=count,
        first_seen=seen,
        last_seen=seen,
        resolved_at=seen,
        reopened=reopened,
    )


async def test_kpis_on_known_data(api: Api) -> None:
    now = datetime.now(UTC)
    async with api.backends.db.session() as session:
        session.add_all(
            [
                _incident(now, 2, severity="critical", services=["checkout"], ack_min=15, repair_h=2),
                _incident(
                    now, 1, severity="high", services=["checkout"], ack_min=30, repair_h=4, detect_min=5
                ),
                _incident(now, 3, severity="medium", services=["search"], ack_min=60, repair_h=1),
                _incident(now, 10, severity="critical", services=["checkout"], ack_min=5, repair_h=1),
                _alert(now, "disk", 1, count=10),
                _alert(now, "disk", 2, count=5, reopened=2),
                _alert(now, "disk", 3, count=1),
                _alert(now, "link", 1, count=40, source=None, host="sw-1", title="Link down"),
                _alert(now, "once", 1, count=1, host="db-1", title="One-off"),
                _alert(now, "old", 9, count=100, host="old-1", title="Last week"),
            ]
        )
    report = (await api.client.get("/api/v1/kpis", params={"days": 7, "service": ["billing"]})).json()
    assert report["window"]["days"] == 7
    assert report["mtta"]["count"] == 3
    assert report["mtta"]["mean_s"] == pytest.approx((15 + 30 + 60) * 60 / 3)
    assert report["mttr"]["count"] == 3
    assert report["mttr"]["mean_s"] == pytest.approx((2 + 4 + 1) * 3600 / 3)
    checkout = report["uptime"]["services"]["checkout"]
    assert checkout["downtime_s"] == pytest.approx(6 * 3600)
    assert checkout["failures"] == 2
    assert checkout["uptime_pct"] == pytest.approx(100 * (1 - 6 / 168), abs=1e-3)
    assert checkout["mtbf_s"] == pytest.approx((168 - 6) * 3600 / 2)
    assert report["uptime"]["services"]["search"]["uptime_pct"] == 100.0  # medium is not an outage
    assert report["uptime"]["services"]["billing"] == {
        "uptime_pct": 100.0,
        "downtime_s": 0.0,
        "failures": 0,
        "mtbf_s": None,
    }
    assert report["incidents"]["current"] == 3 and report["incidents"]["previous"] == 1
    assert report["incidents"]["change_pct"] == 200.0 and report["incidents"]["direction"] == "up"
    assert report["alerts"]["current"] == 5 and report["alerts"]["previous"] == 1
    assert len(report["alerts"]["daily"]) == 7 and sum(d["count"] for d in report["alerts"]["daily"]) <= 5
    noisy = report["top_noisy_sources"]
    assert [(n["host"], n["fires"]) for n in noisy[:2]] == [("sw-1", 40), ("web-1", 16)]
    recurring = report["top_recurring_issues"]
    assert [(r["fingerprint"], r["occurrences"]) for r in recurring] == [("disk", 5)]
    assert recurring[0]["fires"] == 16 and recurring[0]["title"] == "Disk full"
    last_day = (await api.client.get("/api/v1/kpis", params={"days": 1})).json()
    assert last_day["mttr"]["count"] == 1 and last_day["mttr"]["mean_s"] == pytest.approx(4 * 3600)
    assert last_day["mtta"]["count"] == 1 and last_day["mtta"]["mean_s"] == pytest.approx(30 * 60)
    assert (await api.client.get("/api/v1/kpis", params={"days": 1, "service": ["x"]})).json()["uptime"][
        "services"
    ]["x"]["failures"] == 0
    assert (await api.client.get("/api/v1/kpis", params={"days": 0})).status_code == 422
