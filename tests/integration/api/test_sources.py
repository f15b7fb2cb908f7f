"""The source registry API on both profiles: CRUD, validation, secrets, test connection, ingest
tokens, and a source created here being polled by the scheduler into the metric store."""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import select

from tests.integration.collectors.scheduling import Fleet, drain, points_of, wait_for
from tests.integration.conftest import Api
from tests.services import SnmpAgent
from vigil.domain.metrics import MetricQuery
from vigil.pipeline import topology
from vigil.store.models import ApiToken, AuditEntry, Source


def _snmp(agent: SnmpAgent | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "core-switch",
        "type": "snmp",
        "target": f"{agent.host}:{agent.port}" if agent else "10.0.0.5",
        "config": {"version": "2c", "timeout_s": 1, "retries": 0},
        "credentials": {"community": agent.community if agent else "s3cret-community"},
        "interval_s": 30,
    }
    body.update(overrides)
    return body


async def test_create_read_list_update_delete(api: Api) -> None:
    created = await api.client.post("/api/v1/sources", json=_snmp())
    assert created.status_code == 201, created.text
    source = created.json()
    assert source["target"] == "10.0.0.5:161"  # normalised
    assert source["kind"] == "pull" and source["enabled"] is True
    assert source["credential_keys"] == ["community"]
    assert "s3cret-community" not in created.text
    assert source["config"]["version"] == "2c" and source["config"]["max_repetitions"] == 25  # defaults shown
    assert source["health"]["status"] == "unknown"

    for name in ("web-telegraf", "dd"):
        body = (
            {"name": name, "type": "telegraf"}
            if name == "web-telegraf"
            else {
                "name": name,
                "type": "datadog",
                "config": {"queries": ["avg:system.load.1{*}"]},
                "credentials": {"api_key": "k", "app_key": "a"},
            }
        )
        assert (await api.client.post("/api/v1/sources", json=body)).status_code == 201
    page = (await api.client.get("/api/v1/sources", params={"limit": 2})).json()
    assert [s["name"] for s in page["items"]] == ["core-switch", "web-telegraf"]
    rest = (
        await api.client.get("/api/v1/sources", params={"limit": 2, "cursor": page["next_cursor"]})
    ).json()
    assert [s["name"] for s in rest["items"]] == ["dd"] and rest["next_cursor"] is None
    push = (await api.client.get("/api/v1/sources", params={"kind": "push"})).json()["items"]
    assert [s["name"] for s in push] == ["web-telegraf"]
    assert (await api.client.get("/api/v1/sources", params={"type": "datadog"})).json()["items"][0][
        "name"
    ] == "dd"

    source_id = source["id"]
    patched = await api.client.patch(
        f"/api/v1/sources/{source_id}",
        json={
            "config": {"version": "2c", "interfaces": False},
            "interval_s": 10,
            "enabled": False,
            "credentials": {"community": "rotated"},
        },
    )
    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert (
        after["config"]["interfaces"] is False and after["config"]["timeout_s"] == 2.0
    )  # replaced, not merged
    assert (after["interval_s"], after["enabled"]) == (10, False)
    assert after["credential_keys"] == ["community"]
    fetched = (await api.client.get(f"/api/v1/sources/{source_id}")).json()
    assert fetched == after

    assert (await api.client.delete(f"/api/v1/sources/{source_id}")).status_code == 204
    missing = await api.client.get(f"/api/v1/sources/{source_id}")
    assert missing.status_code == 404 and f"source {source_id} does not exist" in missing.json()["detail"]


async def test_credentials_are_encrypted_at_rest_and_merged_on_update(api: Api) -> None:
    body = {
        "name": "v3-switch",
        "type": "snmp",
        "target": "sw2",
        "config": {"version": "3", "username": "monitor"},
        "credentials": {"auth_key": "auth-passphrase", "priv_key": "priv-passphrase"},
    }
    source = (await api.client.post("/api/v1/sources", json=body)).json()
    assert source["credential_keys"] == ["auth_key", "priv_key"]
    async with api.backends.db.session() as session:
        row = await session.get(Source, source["id"])
        assert row is not None and row.credentials_encrypted
        assert "passphrase" not in row.credentials_encrypted
        stored = orjson.loads(api.backends.secrets.decrypt(row.credentials_encrypted))
    assert stored == {"auth_key": "auth-passphrase", "priv_key": "priv-passphrase"}

    # Going to auth-only: drop priv_key (null) without resending auth_key.
    patched = await api.client.patch(
        f"/api/v1/sources/{source['id']}",
        json={
            "config": {"version": "3", "username": "monitor", "priv_protocol": "none"},
            "credentials": {"priv_key": None},
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["credential_keys"] == ["auth_key"]

    async with api.backends.db.session() as session:
        entries = list(
            (await session.execute(select(AuditEntry).where(AuditEntry.target_type == "source"))).scalars()
        )
    assert [e.action for e in entries] == ["source.create", "source.update"]
    audit_text = orjson.dumps([e.before for e in entries] + [e.after for e in entries]).decode()
    assert "passphrase" not in audit_text and '"credentials_encrypted":"***"' in audit_text


async def test_invalid_sources_get_422_naming_the_field(api: Api) -> None:
    cases = [
        ({"type": "nagios"}, "type: unknown source type 'nagios'"),
        ({"config": {"version": "2c", "bogus": 1}}, "config.bogus"),
        ({"config": {"version": "4"}}, "config.version"),
        ({"credentials": {}}, "credentials.community: required for SNMP v2c"),
        ({"target": "switch:99999"}, "target:"),
        ({"interval_s": 0}, "interval_s"),
        ({"name": "has space"}, "name"),
        (
            {
                "type": "datadog",
                "target": None,
                "credentials": {"api_key": "k", "app_key": "a"},
                "config": {},
            },
            "config.queries",
        ),
        (
            {
                "type": "splunk",
                "target": "https://splunk:8089",
                "credentials": {"token": "t"},
                "config": {"searches": [{"name": "x", "search": "index=main"}]},
            },
            "config.searches.0.search",
        ),
    ]
    for overrides, expected in cases:
        response = await api.client.post("/api/v1/sources", json=_snmp(**overrides))
        assert response.status_code == 422, (overrides, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert expected in response.json()["detail"], (expected, response.json()["detail"])
    assert (await api.client.get("/api/v1/sources")).json()["items"] == []


async def test_duplicate_names_conflict(api: Api) -> None:
    assert (await api.client.post("/api/v1/sources", json=_snmp())).status_code == 201
    again = await api.client.post("/api/v1/sources", json=_snmp())
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    other = (await api.client.post("/api/v1/sources", json=_snmp(name="edge"))).json()
    renamed = await api.client.patch(f"/api/v1/sources/{other['id']}", json={"name": "core-switch"})
    assert renamed.status_code == 409


async def test_viewers_read_but_cannot_write(api: Api) -> None:
    source = (await api.client.post("/api/v1/sources", json=_snmp())).json()
    async with api.as_token(await api.token("viewer")) as viewer:
        assert (await viewer.get("/api/v1/sources")).status_code == 200
        assert (await viewer.get(f"/api/v1/sources/{source['id']}/health")).status_code == 200
        assert (await viewer.get("/api/v1/sources/types")).status_code == 200
        for method, path in (
            ("POST", "/api/v1/sources"),
            ("PATCH", f"/api/v1/sources/{source['id']}"),
            ("DELETE", f"/api/v1/sources/{source['id']}"),
            ("POST", f"/api/v1/sources/{source['id']}/test"),
            ("POST", f"/api/v1/sources/{source['id']}/tokens"),
        ):
            response = await viewer.request(method, path, json={})
            assert response.status_code == 403, (method, path, response.status_code)


async def test_types_list_config_schemas_and_credential_keys(api: Api) -> None:
    types = {t["name"]: t for t in (await api.client.get("/api/v1/sources/types")).json()}
    assert {n for n, t in types.items() if t["kind"] == "pull"} == {
        "snmp",
        "redfish",
        "datadog",
        "splunk",
        "thousandeyes",
    }
    assert {"telegraf", "sentry", "logs", "alertmanager", "syslog"} <= set(types)
    assert types["snmp"]["credential_keys"] == ["auth_key", "community", "priv_key"]
    assert "max_repetitions" in types["snmp"]["config_schema"]["properties"]


async def test_test_connection_polls_once_without_publishing(api: Api, snmp_agent: SnmpAgent) -> None:
    source = (await api.client.post("/api/v1/sources", json=_snmp(snmp_agent))).json()
    tested = await api.client.post(f"/api/v1/sources/{source['id']}/test")
    assert tested.status_code == 200, tested.text
    outcome = tested.json()
    assert outcome["ok"] is True and outcome["error"] is None and outcome["latency_ms"] > 0
    assert outcome["points"] > 5
    assert {s["measurement"] for s in outcome["sample"]} >= {"snmp_system", "snmp_interface"}
    assert await drain(api.backends, topology.METRICS) == []  # nothing published
    row = (await api.client.get(f"/api/v1/sources/{source['id']}")).json()
    assert row["health"]["status"] == "unknown"  # a test is not a poll

    broken = (
        await api.client.post(
            "/api/v1/sources", json=_snmp(snmp_agent, name="bad", credentials={"community": "wrong"})
        )
    ).json()
    failed = (await api.client.post(f"/api/v1/sources/{broken['id']}/test")).json()
    assert failed["ok"] is False and "No SNMP response" in failed["error"] and failed["points"] == 0

    # Settings can be tested before they are saved.
    unsaved = await api.client.post("/api/v1/sources/test", json=_snmp(snmp_agent, name="new"))
    assert unsaved.status_code == 200 and unsaved.json()["ok"] is True
    push = (await api.client.post("/api/v1/sources", json={"name": "tg", "type": "telegraf"})).json()
    refused = await api.client.post(f"/api/v1/sources/{push['id']}/test")
    assert refused.status_code == 422 and "nothing to poll" in refused.json()["detail"]


async def test_ingest_tokens_with_agent_snippets(api: Api) -> None:
    expected = {
        "telegraf": "[[outputs.http]]",
        "sentry": "dsn",
        "alertmanager": "webhook_configs",
        "logs": "curl",
    }
    for source_type, marker in expected.items():
        source = (
            await api.client.post("/api/v1/sources", json={"name": f"s-{source_type}", "type": source_type})
        ).json()
        response = await api.client.post(f"/api/v1/sources/{source['id']}/tokens", json={})
        assert response.status_code == 201, response.text
        minted = response.json()
        token = minted["token"]
        assert token["scopes"] == ["ingest"] and token["source_id"] == source["id"]
        assert token["token"].startswith("vgl_")
        snippets = minted["snippets"]
        assert marker in snippets or any(marker in v for v in snippets.values()), snippets
        assert any(token["token"] in v for v in snippets.values())
        if source_type == "sentry":
            assert snippets["dsn"] == f"http://{token['token']}@vigil.test/{source['id']}"
        if source_type == "telegraf":
            assert f'Authorization = "Bearer {token["token"]}"' in snippets["telegraf.conf"]
            assert snippets["url"] == "http://vigil.test/webhooks/telegraf"
        listed = (await api.client.get(f"/api/v1/sources/{source['id']}/tokens")).json()
        assert [t["id"] for t in listed] == [token["id"]]

    # Deleting a source deletes its tokens.
    telegraf = (await api.client.get("/api/v1/sources", params={"type": "telegraf"})).json()["items"][0]
    assert (await api.client.delete(f"/api/v1/sources/{telegraf['id']}")).status_code == 204
    async with api.backends.db.session() as session:
        left = (await session.execute(select(ApiToken).where(ApiToken.source_id == telegraf["id"]))).all()
    assert left == []


async def test_sources_created_here_are_polled_into_the_metric_store(
    api: Api, snmp_agent: SnmpAgent, redfish_url: str
) -> None:
    snmp = (await api.client.post("/api/v1/sources", json=_snmp(snmp_agent, interval_s=1))).json()
    redfish = (
        await api.client.post(
            "/api/v1/sources",
            json={
                "name": "bmc-1",
                "type": "redfish",
                "target": redfish_url,
                "config": {"auth": "none", "host": "server-1"},
                "interval_s": 1,
            },
        )
    ).json()
    fleet = Fleet(api.backends)
    scheduler = fleet.start("worker")
    try:
        # Two SNMP polls: the first primes the interface counters, the second has rates.
        await wait_for(lambda: scheduler.completed_polls >= 4, 20, "two polls of each source")
    finally:
        await fleet.close()
    published = points_of(await drain(api.backends, topology.METRICS))
    assert {source for source, _ in published} == {"core-switch", "bmc-1"}
    points = [p for _, p in published]
    await api.backends.metrics.write(points)  # what the metrics ingest stage does with them
    start, end = min(p.time_ns for p in points) - 1, time.time_ns() + 1
    rates = await api.backends.metrics.query(
        MetricQuery("snmp_interface", "in_bps", start, end, aggregation="count", group_by=("if_name",))
    )
    assert "lo" in {s.tags["if_name"] for s in rates}
    temperatures = await api.backends.metrics.query(
        MetricQuery("redfish_temperature", "reading_c", start, end, aggregation="last", group_by=("sensor",))
    )
    assert {s.tags["sensor"]: s.values for s in temperatures}["CPU Temp"] == [41.0]

    for source in (snmp, redfish):
        health = (await api.client.get(f"/api/v1/sources/{source['id']}/health")).json()
        assert health["status"] == "ok" and health["last_error"] is None, health
        assert health["last_success_at"] is not None and health["last_latency_ms"] > 0
