"""The InfluxDB-compatible endpoints, as InfluxDB clients call them: /write, /api/v2/write,
/ping and /query (CREATE DATABASE), with InfluxDB's auth forms, statuses and error shapes."""

from __future__ import annotations

import base64
import gzip
import time

from tests.integration.ingest.helpers import Ingest
from vigil.domain.metrics import MetricQuery
from vigil.pipeline import topology

NOW_S = int(time.time()) - 60


async def _count(ingest: Ingest, measurement: str) -> int:
    query = MetricQuery(measurement, "v", (NOW_S - 60) * 10**9, (NOW_S + 60) * 10**9, aggregation="count")
    series = await ingest.backends.metrics.query(query)
    return int(sum(s.values[0] or 0 for s in series))


async def test_v1_write_with_every_auth_form(ingest: Ingest) -> None:
    token = await ingest.token()
    basic = base64.b64encode(f"telegraf:{token}".encode()).decode()
    forms = [
        ({"db": "telegraf", "u": "telegraf", "p": token}, {}),
        ({"db": "telegraf"}, {"Authorization": f"Basic {basic}"}),
        ({"db": "telegraf"}, {"Authorization": f"Token {token}"}),
        ({"db": "telegraf"}, {"Authorization": f"Token telegraf:{token}"}),  # 1.8 clients
        ({"db": "telegraf", "token": token}, {}),
    ]
    for i, (params, headers) in enumerate(forms):
        body = f"v1w,host=h{i} v={i} {NOW_S}000000000".encode()
        response = await ingest.client.post("/write", params=params, content=body, headers=headers)
        assert response.status_code == 204, (params, headers, response.text)
        assert response.headers["X-Influxdb-Version"]
    gz = await ingest.client.post(
        "/write",
        params={"db": "telegraf", "precision": "s", "p": token},
        content=gzip.compress(f"v1w,host=gz v=9 {NOW_S}".encode()),
        headers={"Content-Encoding": "gzip"},
    )
    assert gz.status_code == 204
    await ingest.drain()
    assert await _count(ingest, "v1w") == len(forms) + 1


async def test_v1_errors_have_influxdb_shapes(ingest: Ingest) -> None:
    token = await ingest.token()
    no_db = await ingest.client.post("/write", params={"p": token}, content=b"m v=1 1")
    assert no_db.status_code == 400 and no_db.json() == {"error": "database is required"}
    assert no_db.headers["X-Influxdb-Error"] == "database is required"
    denied = await ingest.client.post(
        "/write", params={"db": "x", "u": "a", "p": "wrong"}, content=b"m v=1 1"
    )
    assert denied.status_code == 401 and "error" in denied.json()
    assert denied.headers["WWW-Authenticate"] == 'Basic realm="InfluxDB"'
    partial = await ingest.client.post(
        "/write",
        params={"db": "x", "p": token},
        content=f"pw,host=a v=1 {NOW_S}000000000\npw,host=b v=\npw,host=c v=3 {NOW_S}000000000\n".encode(),
    )
    assert partial.status_code == 400
    message = partial.json()["error"]
    assert message.startswith("partial write: line 2: unable to parse 'pw,host=b v=': missing field value")
    assert message.endswith("dropped=1")
    assert "\n" not in partial.headers["X-Influxdb-Error"]
    nothing = await ingest.client.post("/write", params={"db": "x", "p": token}, content=b"pw v=\n")
    assert nothing.status_code == 400 and not nothing.json()["error"].startswith("partial")
    empty = await ingest.client.post("/write", params={"db": "x", "p": token}, content=b"")
    assert empty.status_code == 204
    await ingest.drain()
    assert await _count(ingest, "pw") == 2


async def test_v2_write_and_its_error_shapes(ingest: Ingest) -> None:
    token = await ingest.token()
    headers = {"Authorization": f"Token {token}", "Content-Type": "text/plain; charset=utf-8"}
    ok = await ingest.client.post(
        "/api/v2/write",
        params={"org": "acme", "bucket": "telegraf", "precision": "ms"},
        content=f"v2w,host=a v=1.5 {NOW_S}000".encode(),
        headers=headers,
    )
    assert ok.status_code == 204, ok.text
    no_bucket = await ingest.client.post(
        "/api/v2/write", params={"org": "acme"}, content=b"m v=1", headers=headers
    )
    assert no_bucket.status_code == 400 and no_bucket.json() == {
        "code": "invalid",
        "message": "bucket is required",
    }
    bad = await ingest.client.post(
        "/api/v2/write", params={"bucket": "b"}, content=b"m v=x 1", headers=headers
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"
    assert "line 1" in bad.json()["message"]
    unauthorized = await ingest.client.post(
        "/api/v2/write", params={"bucket": "b"}, content=b"m v=1 1", headers={"Authorization": "Token nope"}
    )
    assert unauthorized.status_code == 401 and unauthorized.json()["code"] == "unauthorized"
    wrong_precision = await ingest.client.post(
        "/api/v2/write", params={"bucket": "b", "precision": "h"}, content=b"m v=1 1", headers=headers
    )
    assert wrong_precision.status_code == 400
    await ingest.drain()
    assert await _count(ingest, "v2w") == 1


async def test_saturated_bus_on_v2_is_429_too_many_requests(ingest: Ingest) -> None:
    token = await ingest.token()
    bus = ingest.backends.bus
    bus.options.max_backlog = 1
    await bus.publish(topology.METRICS, b'{"source": null, "points": []}')
    response = await ingest.client.post(
        "/api/v2/write",
        params={"bucket": "b"},
        content=b"m v=1 1",
        headers={"Authorization": f"Token {token}"},
    )
    assert response.status_code == 429 and response.json()["code"] == "too many requests"
    assert response.headers["Retry-After"]


async def test_ping_and_create_database(ingest: Ingest) -> None:
    ping = await ingest.client.get("/ping")
    assert ping.status_code == 204 and ping.headers["X-Influxdb-Version"].startswith("1.")
    assert (await ingest.client.head("/ping")).status_code == 204
    assert (await ingest.client.get("/ping", params={"verbose": "true"})).json()["version"]
    token = await ingest.token()
    created = await ingest.client.post(
        "/query", data={"q": 'CREATE DATABASE "telegraf"'}, headers={"Authorization": f"Token {token}"}
    )
    assert created.status_code == 200 and created.json() == {"results": [{"statement_id": 0}]}
    select = await ingest.client.get("/query", params={"q": "SELECT * FROM cpu", "p": token})
    assert select.status_code == 400 and "CREATE DATABASE" in select.json()["error"]
    anonymous = await ingest.client.post("/query", data={"q": "CREATE DATABASE x"})
    assert anonymous.status_code == 401
