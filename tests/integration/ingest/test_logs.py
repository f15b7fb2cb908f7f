"""POST /webhooks/logs: NDJSON and plain lines to the logs topic, per-line errors."""

from __future__ import annotations

import gzip

import orjson

from tests.integration.ingest.helpers import Ingest
from vigil.domain.logs import LogRecord
from vigil.pipeline import topology


async def test_ndjson_and_plain_lines_reach_the_logs_topic(ingest: Ingest) -> None:
    source = await ingest.source("logs", name="app-logs")
    token = await ingest.token(source)
    auth = {"Authorization": f"Bearer {token}"}
    ndjson = b"\n".join(
        orjson.dumps(r)
        for r in [
            {
                "timestamp": "2024-05-01T10:00:00Z",
                "host": "web1",
                "service": "api",
                "level": "ERROR",
                "message": "upstream timed out",
                "request_id": "r-1",
            },
            {"time": 1714557600123, "host": "web2", "msg": "GET /health 200", "severity": "info"},
        ]
    )
    response = await ingest.client.post(
        "/webhooks/logs",
        content=gzip.compress(ndjson),
        headers={**auth, "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 204, response.text
    plain = await ingest.client.post(
        "/webhooks/logs?host=db1&service=postgres&level=warning",
        content=b"checkpoint starting\ncheckpoint complete\n",
        headers={**auth, "Content-Type": "text/plain"},
    )
    assert plain.status_code == 204
    messages = await ingest.published(topology.LOGS)
    assert {m["kind"] for m in messages} == {"logs"} and {m["source"] for m in messages} == {"app-logs"}
    records = [LogRecord.from_dict(item) for m in messages for item in m["items"]]
    assert [(r.host, r.service, r.level, r.message) for r in records] == [
        ("web1", "api", "error", "upstream timed out"),
        ("web2", None, "info", "GET /health 200"),
        ("db1", "postgres", "warning", "checkpoint starting"),
        ("db1", "postgres", "warning", "checkpoint complete"),
    ]
    assert records[0].time_ns == 1_714_557_600 * 10**9 and records[0].attributes == {"request_id": "r-1"}
    assert all(r.source == "app-logs" for r in records)


async def test_bad_records_are_named_and_good_ones_kept(ingest: Ingest) -> None:
    token = await ingest.token()
    body = b'{"message": "fine"}\n{"message": \n{"level": "info"}\n'
    response = await ingest.client.post(
        "/webhooks/logs",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 400
    problem = response.json()
    assert [e["line"] for e in problem["errors"]] == [2, 3]
    assert "message" in problem["errors"][1]["reason"]
    [message] = await ingest.published(topology.LOGS)
    assert [item["message"] for item in message["items"]] == ["fine"]


async def test_refusals(ingest: Ingest) -> None:
    token = await ingest.token()
    auth = {"Authorization": f"Bearer {token}"}
    assert (await ingest.client.post("/webhooks/logs", content=b"x")).status_code == 401
    wrong_type = await ingest.client.post(
        "/webhooks/logs", content=b"x", headers={**auth, "Content-Type": "image/png"}
    )
    assert wrong_type.status_code == 415
    empty = await ingest.client.post(
        "/webhooks/logs", content=b"\n", headers={**auth, "Content-Type": "text/plain"}
    )
    assert empty.status_code == 400
    garbage = await ingest.client.post(
        "/webhooks/logs", content=b"\x00\x01{]", headers={**auth, "Content-Type": "application/json"}
    )
    assert garbage.status_code == 400
    assert await ingest.published(topology.LOGS) == []


async def test_big_bodies_are_split_into_bounded_messages(ingest: Ingest) -> None:
    token = await ingest.token()
    lines = b"".join(b"log line number %d with some padding to make it longer\n" % i for i in range(2_500))
    response = await ingest.client.post(
        "/webhooks/logs?host=h",
        content=lines,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
    )
    assert response.status_code == 204
    messages = await ingest.published(topology.LOGS)
    assert [len(m["items"]) for m in messages] == [1000, 1000, 500]
