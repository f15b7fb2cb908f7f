"""POST /webhooks/telegraf end to end: what Telegraf's outputs.http sends, stored and queryable;
every documented refusal with its status and message, and nothing published for garbage."""

from __future__ import annotations

import gzip
import os
import time

import orjson

from tests.integration.conftest import Api
from tests.integration.ingest.helpers import Ingest
from vigil.bus.base import Message
from vigil.domain import codec
from vigil.domain.metrics import MetricQuery
from vigil.pipeline import topology
from vigil.store.models import Source

NOW_S = int(time.time()) - 60
LP = (
    f"cpu,host=web1,cpu=cpu-total usage_idle=97.5,usage_user=1.25 {NOW_S}000000000\n"
    f"cpu,host=web2,cpu=cpu-total usage_idle=88,usage_user=10.5 {NOW_S}000000000\n"
    f"mem,host=web1 used_percent=41.3,available=8123456i {NOW_S}000000000\n"
).encode()


async def _sum(ingest: Ingest, measurement: str, field: str, **where: str) -> dict[str, float | None]:
    query = MetricQuery(
        measurement,
        field,
        (NOW_S - 3600) * 10**9,
        (NOW_S + 3600) * 10**9,
        aggregation="sum",
        group_by=("host",),
        where=MetricQuery.where_from(dict(where)),
    )
    return {s.tags["host"]: s.values[0] for s in await ingest.backends.metrics.query(query)}


async def test_line_protocol_is_stored_and_attributed_to_the_source(ingest: Ingest) -> None:
    source = await ingest.source("telegraf", name="web-fleet")
    token = await ingest.token(source)
    response = await ingest.client.post(
        "/webhooks/telegraf",
        content=LP,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain; charset=utf-8"},
    )
    assert response.status_code == 204, response.text
    [message] = await ingest.published(topology.METRICS)
    assert message["source"] == "web-fleet"
    assert message["lp"] == LP.decode()  # the fast path forwards the validated text as it came
    assert await ingest.drain() >= 1
    assert await _sum(ingest, "cpu", "usage_user") == {"web1": 1.25, "web2": 10.5}
    assert await _sum(ingest, "mem", "available") == {"web1": 8123456}
    async with ingest.backends.db.session() as session:
        row = await session.get(Source, source.id)
        assert row is not None and row.status == "ok" and row.last_success_at is not None


async def test_telegraf_json_sent_as_text_plain_with_gzip_and_query_token(ingest: Ingest) -> None:
    token = await ingest.token()
    body = orjson.dumps(
        {
            "metrics": [
                {
                    "name": "disk",
                    "tags": {"host": "db1", "path": "/var"},
                    "fields": {"used_percent": 91.5},
                    "timestamp": NOW_S,
                },
                {
                    "name": "disk",
                    "tags": {"host": "db2", "path": "/var"},
                    "fields": {"used_percent": 12.0},
                    "timestamp": NOW_S * 1000,
                },
            ]
        }
    )
    response = await ingest.client.post(
        f"/webhooks/telegraf?token={token}",
        content=gzip.compress(body),
        headers={"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 204, response.text
    await ingest.drain()
    assert await _sum(ingest, "disk", "used_percent") == {"db1": 91.5, "db2": 12.0}


async def test_single_metric_json_and_precision_seconds(ingest: Ingest) -> None:
    token = await ingest.token()
    headers = {"Authorization": f"Bearer {token}"}
    one = {"name": "load", "tags": {"host": "h1"}, "fields": {"load1": 0.5}, "timestamp": NOW_S}
    assert (await ingest.client.post("/webhooks/telegraf", json=one, headers=headers)).status_code == 204
    lp = f"load,host=h2 load1=1.5 {NOW_S}".encode()
    response = await ingest.client.post(
        "/webhooks/telegraf?precision=s", content=lp, headers={**headers, "Content-Type": "text/plain"}
    )
    assert response.status_code == 204
    await ingest.drain()
    assert await _sum(ingest, "load", "load1") == {"h1": 0.5, "h2": 1.5}


async def test_bad_lines_are_named_and_the_good_ones_stored(ingest: Ingest) -> None:
    token = await ingest.token()
    body = (
        f"cpu,host=ok1 usage_user=1 {NOW_S}000000000\n"
        f"cpu,host=bad usage_user= {NOW_S}000000000\n"
        f"cpu,host=ok2 usage_user=2 {NOW_S}000000000\n"
        f"cpu,host=bad2 usage_user=1 12x\n"
    ).encode()
    response = await ingest.client.post(
        "/webhooks/telegraf",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert [(e["line"], e["reason"]) for e in problem["errors"]] == [
        (2, "missing field value"),
        (4, "bad timestamp"),
    ]
    assert "2 line(s) rejected, 2 accepted" in problem["detail"]
    await ingest.drain()
    assert await _sum(ingest, "cpu", "usage_user") == {"ok1": 1.0, "ok2": 2.0}


async def test_bad_metrics_in_telegraf_json_are_numbered(ingest: Ingest) -> None:
    token = await ingest.token()
    body = {"metrics": [{"name": "ok", "fields": {"v": 1}, "timestamp": NOW_S}, {"name": "x", "fields": {}}]}
    response = await ingest.client.post(
        "/webhooks/telegraf", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["metric"] == 2
    assert "fields" in response.json()["errors"][0]["reason"]


# --- refusals ----------------------------------------------------------------------------------


async def test_missing_unknown_and_unscoped_tokens(ingest: Ingest, api: Api) -> None:
    missing = await ingest.client.post("/webhooks/telegraf", content=LP)
    assert missing.status_code == 401 and "token" in missing.json()["detail"]
    unknown = await ingest.client.post("/webhooks/telegraf?token=vgl_nope", content=LP)
    assert unknown.status_code == 401
    reader = await api.token("admin", scopes=("read",))
    forbidden = await ingest.client.post(
        "/webhooks/telegraf", content=LP, headers={"Authorization": f"Bearer {reader}"}
    )
    assert forbidden.status_code == 403 and "ingest" in forbidden.json()["detail"]
    assert await ingest.published(topology.METRICS) == []


async def test_a_disabled_source_is_refused(ingest: Ingest) -> None:
    source = await ingest.source("telegraf", enabled=False)
    token = await ingest.token(source)
    response = await ingest.client.post(
        "/webhooks/telegraf", content=LP, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403 and "disabled" in response.json()["detail"]


async def test_oversize_bodies_on_the_wire_and_decompressed(ingest: Ingest) -> None:
    token = await ingest.token()
    ingest.backends.settings.max_body_bytes = 10_000
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/plain"}
    big = b"cpu v=1 1\n" * 2_000
    response = await ingest.client.post("/webhooks/telegraf", content=big, headers=headers)
    assert response.status_code == 413 and "10000 bytes" in response.json()["detail"]

    async def chunked() -> object:  # no Content-Length: counted while streaming
        for _ in range(20):
            yield b"cpu v=1 1\n" * 100

    streamed = await ingest.client.post("/webhooks/telegraf", content=chunked(), headers=headers)  # type: ignore[arg-type]
    assert streamed.status_code == 413
    bomb = gzip.compress(b"cpu v=1 1\n" * 100_000)
    assert len(bomb) < 10_000
    inflated = await ingest.client.post(
        "/webhooks/telegraf", content=bomb, headers={**headers, "Content-Encoding": "gzip"}
    )
    assert inflated.status_code == 413 and "decompressed" in inflated.json()["detail"]
    assert await ingest.published(topology.METRICS) == []


async def test_unreadable_types_encodings_and_garbage(ingest: Ingest) -> None:
    token = await ingest.token()
    auth = {"Authorization": f"Bearer {token}"}
    for headers, status, words in [
        ({"Content-Type": "application/xml"}, 415, "Content-Type"),
        ({"Content-Type": "text/plain", "Content-Encoding": "br"}, 415, "Content-Encoding"),
        ({"Content-Type": "text/plain", "Content-Encoding": "gzip"}, 400, "gzip"),
    ]:
        response = await ingest.client.post("/webhooks/telegraf", content=LP, headers={**headers, **auth})
        assert response.status_code == status, headers
        assert words in response.json()["detail"]
    for body in [
        os.urandom(2048),
        b"\x00\xff" * 100,
        b"{not json at all",
        b"<html><body>hi</body></html>",
        b"   \n  ",
    ]:
        response = await ingest.client.post(
            "/webhooks/telegraf", content=body, headers={**auth, "Content-Type": "text/plain"}
        )
        assert response.status_code == 400, (body, response.text)
        assert response.json()["detail"]
    assert await ingest.published(topology.METRICS) == []


async def test_unknown_precision_is_400(ingest: Ingest) -> None:
    token = await ingest.token()
    response = await ingest.client.post(
        f"/webhooks/telegraf?precision=fortnight&token={token}",
        content=LP,
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 400 and "precision" in response.json()["detail"]


async def test_saturated_bus_is_429_with_retry_after(ingest: Ingest) -> None:
    token = await ingest.token()
    bus = ingest.backends.bus
    bus.options.max_backlog = 2
    await bus.publish_many(topology.METRICS, [codec.encode_points([]), codec.encode_points([])])
    response = await ingest.client.post(
        "/webhooks/telegraf",
        content=LP,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "retry" in response.json()["detail"]


async def test_unavailable_bus_is_503_with_retry_after(ingest: Ingest) -> None:
    token = await ingest.token()
    await ingest.backends.bus.close()
    response = await ingest.client.post(
        "/webhooks/telegraf",
        content=LP,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
    )
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0


async def test_a_poison_message_is_dead_lettered_not_retried(ingest: Ingest) -> None:
    await ingest.backends.bus.publish(topology.METRICS, b"definitely not a metric batch")
    await ingest.drain()
    letters = await ingest.backends.bus.list_dead_letters()
    assert [letter.topic for letter in letters] == [topology.METRICS]
    assert "not a metric batch" in letters[0].reason
    assert isinstance(letters[0], object) and not isinstance(letters[0], Message)
