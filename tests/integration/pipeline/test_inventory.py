"""Inventory on both profiles: hosts and services from metrics (both shapes), logs and errors,
labels merged, writes de-duplicated in memory, and the inventory API."""

from __future__ import annotations

import time

from tests.integration.conftest import Api
from tests.integration.ingest.helpers import drain
from vigil.domain import codec
from vigil.domain.errors import ErrorEvent
from vigil.domain.logs import LogRecord
from vigil.domain.metrics import Point
from vigil.pipeline import topology
from vigil.pipeline.stages.inventory import (
    InventoryRecorder,
    Sighting,
    inventory_stages,
    metric_sightings,
)


def test_line_protocol_sightings_read_only_series_keys() -> None:
    payload = codec.encode_line_protocol(
        "cpu,host=web1,cpu=0 v=1 1\ncpu,host=web1,cpu=1 v=1 1\nhttp,service=api,host=web2 req=3i 1\n"
        'mem v=1,host="a field, not a tag" 1',
        "fleet",
    )
    assert metric_sightings(payload) == {
        Sighting("host", "web1", "metrics", (("source", "fleet"),)),
        Sighting("host", "web2", "metrics", (("source", "fleet"),)),
        Sighting("service", "api", "metrics", (("source", "fleet"),)),
    }


async def test_hosts_and_services_from_every_topic(api: Api) -> None:
    backends = api.backends
    stages = inventory_stages(backends.db)
    for stage in stages:
        await backends.bus.ensure_group(stage.topic, stage.group)
    now = time.time_ns()
    await backends.bus.publish(
        topology.METRICS, codec.encode_line_protocol(f"cpu,host=web1 v=1 {now}", "telegraf")
    )
    await backends.bus.publish(
        topology.METRICS,
        codec.encode_points([Point("up", {"v": 1}, {"host": "db1", "service": "postgres"}, now)]),
    )
    logs = [LogRecord(now, "x", host="web1", service="nginx", os="linux", source="logs-a")]
    await backends.bus.publish(
        topology.LOGS, codec.encode_dicts("logs", [r.to_dict() for r in logs], "logs-a")
    )
    errors = [
        ErrorEvent(
            event_id="e" * 32, time_ns=now, project="1", host="app1", service="checkout", environment="prod"
        )
    ]
    await backends.bus.publish(topology.ERRORS, codec.encode_dicts("errors", [e.to_dict() for e in errors]))
    await backends.bus.publish(topology.LOGS, b"not json")  # skipped, not fatal
    await drain(backends, stages)

    listing = (await api.client.get("/api/v1/inventory")).json()
    entities = {(e["kind"], e["name"]): e for e in listing["items"]}
    assert set(entities) == {
        ("host", "web1"),
        ("host", "db1"),
        ("host", "app1"),
        ("service", "postgres"),
        ("service", "nginx"),
        ("service", "checkout"),
    }
    web1 = entities[("host", "web1")]
    assert web1["telemetry"] == ["logs", "metrics"]
    assert web1["labels"] == {"os": "linux", "source": "logs-a"}  # the latest source wins
    assert entities[("host", "app1")]["labels"] == {"environment": "prod"}
    hosts = (await api.client.get("/api/v1/inventory", params={"kind": "host", "telemetry": "logs"})).json()
    assert [e["name"] for e in hosts["items"]] == ["web1"]
    by_label = (await api.client.get("/api/v1/inventory", params={"label": "environment=prod"})).json()
    assert [e["name"] for e in by_label["items"]] == ["app1", "checkout"]
    page = (await api.client.get("/api/v1/inventory", params={"limit": 4})).json()
    rest = (
        await api.client.get("/api/v1/inventory", params={"limit": 4, "cursor": page["next_cursor"]})
    ).json()
    assert len(page["items"]) == 4 and len(rest["items"]) == 2 and rest["next_cursor"] is None
    one = (await api.client.get(f"/api/v1/inventory/{web1['id']}")).json()
    assert one["name"] == "web1"
    assert (await api.client.get("/api/v1/inventory/999999")).status_code == 404
    assert (await api.client.get("/api/v1/inventory", params={"label": "nokey"})).status_code == 400


async def test_repeated_sightings_write_once_a_minute_unless_something_is_new(api: Api) -> None:
    recorder = InventoryRecorder(api.backends.db, write_interval_s=60)
    sighting = Sighting("host", "web9", "metrics", (("source", "a"),))
    assert await recorder.observe([sighting]) == 1
    assert await recorder.observe([sighting] * 100) == 0
    assert await recorder.observe([Sighting("host", "web9", "logs", (("source", "a"),))]) == 1
    assert await recorder.observe([Sighting("host", "web9", "metrics", (("os", "linux"),))]) == 1
    fresh = InventoryRecorder(api.backends.db, write_interval_s=0)  # another worker, or a minute later
    assert await fresh.observe([sighting]) == 1
    [entity] = (await api.client.get("/api/v1/inventory", params={"q": "web9"})).json()["items"]
    assert entity["telemetry"] == ["logs", "metrics"]
    assert entity["labels"] == {"os": "linux", "source": "a"}
    assert entity["last_seen"] >= entity["first_seen"]
