"""POST /webhooks/alertmanager: Alertmanager's v4 payload into alert signals on the bus."""

from __future__ import annotations

import base64

from tests.integration.ingest.helpers import Ingest
from vigil.domain.alerts import AlertSignal
from vigil.pipeline import topology

PAYLOAD = {
    "version": "4",
    "groupKey": '{}:{alertname="DiskFull"}',
    "status": "firing",
    "receiver": "vigil",
    "groupLabels": {"alertname": "DiskFull"},
    "commonLabels": {"alertname": "DiskFull"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "DiskFull", "instance": "web1:9100", "severity": "critical"},
            "annotations": {"summary": "Disk almost full"},
            "startsAt": "2024-05-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "aa01",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "DiskFull", "instance": "web2:9100", "severity": "critical"},
            "annotations": {},
            "startsAt": "2024-05-01T09:00:00Z",
            "endsAt": "2024-05-01T09:10:00Z",
            "fingerprint": "aa02",
        },
    ],
}


async def test_alerts_become_signals_with_basic_auth(ingest: Ingest) -> None:
    source = await ingest.source("alertmanager", name="prom-eu")
    token = await ingest.token(source)
    basic = base64.b64encode(f"alertmanager:{token}".encode()).decode()
    response = await ingest.client.post(
        "/webhooks/alertmanager", json=PAYLOAD, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 204, response.text
    [message] = await ingest.published(topology.EXTERNAL_ALERTS)
    assert message["kind"] == "alerts" and message["source"] == "prom-eu"
    firing, resolved = (AlertSignal.from_dict(item) for item in message["items"])
    assert (firing.fingerprint, firing.resolved, firing.severity, firing.host) == (
        "aa01",
        False,
        "critical",
        "web1",
    )
    assert (resolved.fingerprint, resolved.resolved, resolved.host) == ("aa02", True, "web2")
    assert firing.source == "prom-eu"


async def test_bad_payloads_and_types(ingest: Ingest) -> None:
    token = await ingest.token()
    auth = {"Authorization": f"Bearer {token}"}
    bad = await ingest.client.post(
        "/webhooks/alertmanager", json={**PAYLOAD, "alerts": [{"labels": {}}]}, headers=auth
    )
    assert bad.status_code == 400 and "alerts[0].startsAt" in bad.json()["detail"]
    text = await ingest.client.post(
        "/webhooks/alertmanager", content=b"{}", headers={**auth, "Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    assert await ingest.published(topology.EXTERNAL_ALERTS) == []
