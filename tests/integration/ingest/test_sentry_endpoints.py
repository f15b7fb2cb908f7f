"""Sentry's ingestion endpoints driven by hand (envelopes, legacy store) and its integration
webhooks with signature verification."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import time
import uuid

import orjson

from tests.integration.conftest import Api
from tests.integration.ingest.helpers import Ingest
from vigil.domain.metrics import MetricQuery
from vigil.pipeline import topology


def _event(event_id: str, value: str = "division by zero") -> dict[str, object]:
    return {
        "event_id": event_id,
        "timestamp": time.time(),
        "level": "error",
        "platform": "python",
        "server_name": "worker-3",
        "release": "shop@1.4.0",
        "environment": "production",
        "exception": {
            "values": [
                {
                    "type": "ZeroDivisionError",
                    "value": value,
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": "app/main.py",
                                "module": "app.main",
                                "function": "run",
                                "lineno": 10,
                                "in_app": True,
                            },
                            {
                                "filename": "app/math.py",
                                "module": "app.math",
                                "function": "ratio",
                                "lineno": 3,
                                "in_app": True,
                                "context_line": "    return a / b",
                            },
                        ]
                    },
                }
            ]
        },
    }


def _envelope(event: dict[str, object], *extra: tuple[dict[str, object], bytes]) -> bytes:
    payload = orjson.dumps(event)
    parts = [
        orjson.dumps({"event_id": event["event_id"], "sent_at": "2024-05-01T10:00:00Z"}),
        orjson.dumps({"type": "event", "length": len(payload)}),
        payload,
    ]
    for headers, body in extra:
        parts += [orjson.dumps({**headers, "length": len(body)}), body]
    return b"\n".join(parts) + b"\n"


async def test_envelope_events_are_grouped_and_items_counted(ingest: Ingest, api: Api) -> None:
    source = await ingest.source("sentry", name="shop-sentry")
    token = await ingest.token(source)
    transaction = orjson.dumps({"type": "transaction", "transaction": "GET /cart", "spans": []})
    session = orjson.dumps({"sid": uuid.uuid4().hex, "status": "crashed", "attrs": {"release": "shop@1.4.0"}})
    ids = [uuid.uuid4().hex for _ in range(2)]
    for n, event_id in enumerate(ids):
        body = _envelope(
            _event(event_id, value=f"division by zero #{n}"),
            ({"type": "transaction"}, transaction),
            ({"type": "session"}, session),
            ({"type": "client_report"}, b"{}"),
            ({"type": "future_item_type"}, b"ignored"),
        )
        response = await ingest.client.post(
            "/api/4505/envelope/",
            content=gzip.compress(body),
            headers={
                "Content-Type": "application/x-sentry-envelope",
                "Content-Encoding": "gzip",
                "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=test/1.0, sentry_key={token}",
            },
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"id": event_id}
    errors = await ingest.published(topology.ERRORS)
    assert [m["source"] for m in errors] == ["shop-sentry", "shop-sentry"]
    await ingest.drain()
    groups = (await api.client.get("/api/v1/errors")).json()["items"]
    assert len(groups) == 1
    group = groups[0]
    assert (group["count"], group["project"], group["source"]) == (2, "4505", "shop-sentry")
    assert group["title"].startswith("ZeroDivisionError: division by zero")
    assert group["culprit"] == "app.math in ratio"
    assert (group["last_release"], group["environments"], group["last_host"]) == (
        "shop@1.4.0",
        ["production"],
        "worker-3",
    )
    detail = (await api.client.get(f"/api/v1/errors/{group['id']}")).json()
    assert [e["event_id"] for e in detail["events"]] == ids[::-1]
    assert [f["function"] for f in detail["events"][0]["frames"]] == ["run", "ratio"]
    query = MetricQuery(
        "sentry",
        "count",
        (int(time.time()) - 600) * 10**9,
        (int(time.time()) + 600) * 10**9,
        aggregation="sum",
        group_by=("item",),
    )
    counted = {s.tags["item"]: s.values[0] for s in await ingest.backends.metrics.query(query)}
    assert counted == {"event": 2, "transaction": 2, "session": 2}


async def test_auth_forms_and_refusals(ingest: Ingest) -> None:
    token = await ingest.token()
    event_id = uuid.uuid4().hex
    body = _envelope(_event(event_id))
    by_query = await ingest.client.post(f"/api/1/envelope/?sentry_key={token}&sentry_version=7", content=body)
    assert by_query.status_code == 200
    dsn_header = orjson.dumps({"event_id": event_id, "dsn": f"http://{token}@vigil.test/1"})
    by_dsn = await ingest.client.post("/api/1/envelope/", content=dsn_header + body[body.index(b"\n") :])
    assert by_dsn.status_code == 200
    missing = await ingest.client.post("/api/1/envelope/", content=body)
    assert missing.status_code == 401 and missing.headers["X-Sentry-Error"]
    assert "detail" in missing.json()
    conflicting = await ingest.client.post(
        f"/api/1/envelope/?sentry_key={token}",
        content=body,
        headers={"X-Sentry-Auth": "Sentry sentry_key=other"},
    )
    assert conflicting.status_code == 401
    bad_project = await ingest.client.post(f"/api/a%20b/envelope/?sentry_key={token}", content=body)
    assert bad_project.status_code == 400
    truncated = await ingest.client.post(f"/api/1/envelope/?sentry_key={token}", content=body[:-40])
    assert truncated.status_code == 400 and "length" in truncated.json()["detail"]
    wrong_type = await ingest.client.post(
        f"/api/1/envelope/?sentry_key={token}", content=body, headers={"Content-Type": "image/gif"}
    )
    assert wrong_type.status_code == 415


async def test_legacy_store_endpoint(ingest: Ingest, api: Api) -> None:
    token = await ingest.token()
    event_id = uuid.uuid4().hex
    response = await ingest.client.post(
        "/api/7/store/", json=_event(event_id), headers={"X-Sentry-Auth": f"Sentry sentry_key={token}"}
    )
    assert response.status_code == 200 and response.json() == {"id": event_id}
    transaction = await ingest.client.post(
        f"/api/7/store/?sentry_key={token}", json={"type": "transaction", "transaction": "GET /"}
    )
    assert transaction.status_code == 200
    await ingest.drain()
    groups = (await api.client.get("/api/v1/errors", params={"project": "7"})).json()["items"]
    assert [g["count"] for g in groups] == [1]


def _signed(secret: str, document: dict[str, object]) -> tuple[bytes, str]:
    body = orjson.dumps(document)
    return body, hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_integration_webhooks_are_verified(ingest: Ingest) -> None:
    source = await ingest.source("sentry", name="sentry-io", credentials={"client_secret": "s3cret"})
    token = await ingest.token(source)
    issue = {"id": "42", "title": "TypeError: x is undefined", "level": "error", "project": {"slug": "web"}}
    body, signature = _signed("s3cret", {"action": "created", "data": {"issue": issue}})
    headers = {
        "Sentry-Hook-Resource": "issue",
        "Sentry-Hook-Signature": signature,
        "Content-Type": "application/json",
    }
    ok = await ingest.client.post(f"/webhooks/sentry?token={token}", content=body, headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"resource": "issue", "alerts": 1, "events": 0}
    [message] = await ingest.published(topology.EXTERNAL_ALERTS)
    assert message["items"][0]["fingerprint"] == "sentry-issue:42"
    assert message["source"] == "sentry-io"

    forged = await ingest.client.post(f"/webhooks/sentry?token={token}", content=body + b" ", headers=headers)
    assert forged.status_code == 401 and "Sentry-Hook-Signature" in forged.json()["detail"]
    unsigned = await ingest.client.post(
        f"/webhooks/sentry?token={token}", content=body, headers={"Sentry-Hook-Resource": "issue"}
    )
    assert unsigned.status_code == 401
    no_secret = await ingest.token(await ingest.source("sentry"))
    refused = await ingest.client.post(f"/webhooks/sentry?token={no_secret}", content=body, headers=headers)
    assert refused.status_code == 403 and "client_secret" in refused.json()["detail"]
    assert await ingest.published(topology.EXTERNAL_ALERTS) == []

    event = {
        "event_id": uuid.uuid4().hex,
        "project": 9,
        "exception": {"values": [{"type": "E", "value": "v"}]},
    }
    body, signature = _signed("s3cret", {"action": "created", "data": {"error": event}})
    carried = await ingest.client.post(
        f"/webhooks/sentry?token={token}",
        content=body,
        headers={"Sentry-Hook-Resource": "error", "Sentry-Hook-Signature": signature},
    )
    assert carried.json()["events"] == 1
    [errors] = await ingest.published(topology.ERRORS)
    assert errors["items"][0]["exception_type"] == "E"
