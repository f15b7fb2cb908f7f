"""WebSockets on real servers, on both profiles: /ws/alerts delivers to clients of every API
replica (distributed: two servers sharing Redis), /ws/metrics pushes the subscribed series, and
both refuse unauthenticated or cross-origin connections."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.integration.alerting.helpers import drain, signal
from tests.integration.conftest import Api
from tests.live_server import LiveServer
from vigil.alerting.service import AlertService
from vigil.backends import Backends
from vigil.config import Settings
from vigil.domain import codec
from vigil.domain.metrics import Point
from vigil.pipeline import topology
from vigil.pipeline.stages.alerting_live_metrics import LiveMetricsStage


async def receive(ws: ClientConnection, kind: str, wait_s: float = 5.0) -> dict[str, Any]:
    """The next message of ``kind`` (skipping others)."""
    deadline = time.monotonic() + wait_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {kind} message within {wait_s}s")
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=remaining))
        if message["type"] == kind:
            return message


class Events:
    """Alert events received on one socket, kept so that several can be looked for."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def find(self, predicate: Any, wait_s: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + wait_s
        while True:
            for event in self.seen:
                if predicate(event):
                    return event
            batch = await receive(self.ws, "alerts", max(0.01, deadline - time.monotonic()))
            self.seen += batch["events"]


async def test_alert_events_reach_clients_of_every_api_replica(
    api: Api, settings: Settings, profile: str
) -> None:
    token = await api.token("viewer")
    replicas = [api.backends]
    if profile == "distributed":  # a second API process: its own connections, the same Redis
        second = Backends.from_settings(settings)
        await second.start(migrate=False)
        replicas.append(second)
    try:
        servers = [LiveServer(b) for b in replicas]
        for server in servers:
            await server.__aenter__()
        clients = [await connect(f"{s.ws_url}/ws/alerts?token={token}") for s in servers]
        for ws in clients:
            hello = await receive(ws, "hello")
            assert hello["channel"] == "alerts" and hello["user"] == "token:test"
        # An action on the first replica...
        async with httpx.AsyncClient(base_url=servers[0].url, headers=dict(api.client.headers)) as http:
            created = (
                await http.post("/api/v1/alerts", json={"title": "Live one", "severity": "high"})
            ).json()
        streams = [Events(ws) for ws in clients]
        for stream in streams:
            event = await stream.find(lambda e: e.get("alert", {}).get("id") == created["id"])
            assert event["type"] == "alert.created" and event["alert"]["title"] == "Live one"
        # ...and the pipeline (a worker elsewhere) reach every client alike.
        await AlertService(replicas[-1].db, replicas[-1].bus).ingest([signal(title="From the worker")])
        for stream in streams:
            event = await stream.find(lambda e: e.get("alert", {}).get("title") == "From the worker")
            assert event["alert"]["incident_id"] is not None
            incident_id = event["alert"]["incident_id"]
            incident = await stream.find(lambda e, i=incident_id: e.get("incident", {}).get("id") == i)
            assert (
                incident["type"] == "incident.created" and incident["incident"]["title"] == "From the worker"
            )
        for ws in clients:
            await ws.close()
        for server in servers:
            await server.__aexit__()
    finally:
        for extra in replicas[1:]:
            await extra.close()


async def test_websockets_refuse_unauthenticated_and_cross_origin(api: Api) -> None:
    async with LiveServer(api.backends) as server:
        for path in ("/ws/alerts", "/ws/metrics", "/ws/alerts?token=vgl_wrong"):
            async with connect(f"{server.ws_url}{path}") as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        async with httpx.AsyncClient(base_url=server.url) as browser:
            from tests.integration.conftest import ADMIN_PASSWORD

            login = await browser.post(
                "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
            )
            cookie = login.cookies.get("vigil_session")
        assert cookie
        headers = {"Cookie": f"vigil_session={cookie}"}
        async with connect(f"{server.ws_url}/ws/alerts", additional_headers=headers, origin=server.url) as ws:  # type: ignore[arg-type]
            assert (await receive(ws, "hello"))["user"] == "admin"
        async with connect(
            f"{server.ws_url}/ws/alerts", additional_headers=headers, origin="http://evil.example"
        ) as ws:  # type: ignore[arg-type]
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_metrics_socket_pushes_only_subscribed_series(api: Api) -> None:
    token = await api.token("viewer")
    stage = LiveMetricsStage(api.backends.bus)
    await api.backends.bus.ensure_group(topology.METRICS, stage.group)
    async with LiveServer(api.backends) as server, connect(f"{server.ws_url}/ws/metrics?token={token}") as ws:
        await receive(ws, "hello")
        await ws.send(
            json.dumps(
                {
                    "action": "subscribe",
                    "series": [
                        "cpu.usage_user{host=web-1}",
                        {"measurement": "mem", "tags": {"host": "web-1"}},
                    ],
                }
            )
        )
        subscribed = await receive(ws, "subscribed")
        assert {s["measurement"] for s in subscribed["series"]} == {"cpu", "mem"}
        await ws.send(json.dumps({"action": "subscribe", "series": [{"tags": {}}]}))
        assert "series[0]: measurement" in (await receive(ws, "error"))["detail"]
        await ws.send("not json")
        assert (await receive(ws, "error"))["detail"] == "messages are JSON objects"
        got: dict[str, Any] | None = None
        for attempt in range(30):  # the stage hears the interest within an announcement period
            t = time.time_ns()
            await api.backends.bus.publish(
                topology.METRICS,
                codec.encode_points(
                    [
                        Point(
                            "cpu", {"usage_user": 91.5 + attempt, "usage_system": 3.0}, {"host": "web-1"}, t
                        ),
                        Point("cpu", {"usage_user": 10.0}, {"host": "web-2"}, t),
                        Point("mem", {"used_percent": 71.0, "state": "ok"}, {"host": "web-1"}, t),
                    ]
                ),
            )
            await drain(api.backends, [stage], idle_rounds=1)
            try:
                got = await receive(ws, "points", wait_s=0.3)
                break
            except TimeoutError:
                continue
        assert got is not None, "no live points"
        seen = {(p["measurement"], p["field"], p["tags"]["host"]) for p in got["points"]}
        assert seen == {("cpu", "usage_user", "web-1"), ("mem", "used_percent", "web-1")}
        await ws.send(json.dumps({"action": "clear"}))
        assert (await receive(ws, "subscribed"))["series"] == []
