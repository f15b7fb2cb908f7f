"""The log API on both profiles: search (filters, pagination, highlights), line and context,
streamed export, clusters (series, parameters, label correction), semantic search."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import orjson
import pytest

from tests.integration.conftest import Api
from tests.integration.logs.conftest import BASE_NS, RunningWorker, index_templates, publish, sample_records
from vigil.domain.logs import LogRecord


@pytest.fixture
async def loaded(api: Api, log_worker: RunningWorker) -> Api:
    await publish(api.backends, sample_records(60))
    await log_worker.drain()
    return api


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


async def test_search_text_filters_and_highlight(loaded: Api) -> None:
    api = loaded.client
    page = (await api.get("/api/v1/logs", params={"q": "space device", "host": "web-1"})).json()
    assert page["items"] and all(
        i["host"] == "web-1" and "No space left" in i["message"] for i in page["items"]
    )
    item = page["items"][0]
    assert "<mark>space</mark>" in item["highlight"].lower() and "<mark>device</mark>" in item["highlight"]
    assert item["template"] == "write error on <*>: No space left on device"
    assert item["failure_type"] == "disk_space" and item["params"]
    times = [i["time_ns"] for i in page["items"]]
    assert times == sorted(times, reverse=True)

    phrase = (await api.get("/api/v1/logs", params={"q": '"failed password"'})).json()["items"]
    assert len(phrase) == 20
    excluded = (await api.get("/api/v1/logs", params={"q": "password -user0"})).json()["items"]
    assert len(excluded) == 16 and all("user0 " not in i["message"] for i in excluded)
    either = (await api.get("/api/v1/logs", params={"q": "password OR space", "limit": 500})).json()["items"]
    assert len(either) == 40

    by_level = (await api.get("/api/v1/logs", params=[("level", "error"), ("level", "info")])).json()["items"]
    assert {i["level"] for i in by_level} == {"error", "info"} and len(by_level) == 40
    by_failure = (await api.get("/api/v1/logs", params={"failure_type": "auth_failure"})).json()["items"]
    assert len(by_failure) == 20 and all(i["service"] == "sshd" for i in by_failure)
    by_severity = (await api.get("/api/v1/logs", params={"severity": "high"})).json()["items"]
    assert len(by_severity) == 20 and all(i["failure_type"] == "disk_space" for i in by_severity)
    other = await api.get("/api/v1/logs", params={"service": "nginx", "os": "linux", "source": "app"})
    assert len(other.json()["items"]) == 20
    window = await api.get(
        "/api/v1/logs",
        params={"start": _iso(BASE_NS + 10_000_000_000), "end": _iso(BASE_NS + 20_000_000_000)},
    )
    assert len(window.json()["items"]) == 10
    template_id = item["template_id"]
    by_template = (await api.get("/api/v1/logs", params={"template_id": template_id})).json()["items"]
    assert len(by_template) == 20 and {i["template_id"] for i in by_template} == {template_id}


async def test_search_pagination_walks_everything_once(loaded: Api) -> None:
    api = loaded.client
    seen: list[int] = []
    cursor = None
    for _ in range(20):
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/v1/logs", params=params)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 60 == len(set(seen))


async def test_search_rejects_bad_input(loaded: Api) -> None:
    api = loaded.client
    bad_cursor = await api.get("/api/v1/logs", params={"cursor": "nonsense!"})
    assert bad_cursor.status_code == 400 and "cursor" in bad_cursor.json()["detail"]
    only_negative = await api.get("/api/v1/logs", params={"q": "-password"})
    assert only_negative.status_code == 422 and only_negative.json()["detail"].startswith("q:")
    bad_level = await api.get("/api/v1/logs", params={"level": "loud"})
    assert bad_level.status_code == 422 and "level" in bad_level.json()["detail"]
    # Punctuation and FTS operators in the text are just text.
    odd = await api.get("/api/v1/logs", params={"q": 'NEAR( "unclosed * AND /dev/sda1:'})
    assert odd.status_code == 200
    assert (await api.get("/api/v1/logs/999999")).status_code == 404
    assert (await loaded.anonymous().get("/api/v1/logs")).status_code == 401
    viewer = loaded.as_token(await loaded.token("viewer"))
    assert (await viewer.get("/api/v1/logs")).status_code == 200
    assert (
        await viewer.put("/api/v1/log-clusters/1/classification", json={"severity": "low"})
    ).status_code == 403


async def test_line_and_context(loaded: Api) -> None:
    api = loaded.client
    lines = (await api.get("/api/v1/logs", params={"host": "web-1", "limit": 500})).json()["items"]
    middle = lines[len(lines) // 2]
    line = (await api.get(f"/api/v1/logs/{middle['id']}")).json()
    assert line["message"] == middle["message"]
    context = (await api.get(f"/api/v1/logs/{middle['id']}/context", params={"before": 3, "after": 2})).json()
    assert context["by"] == "host" and context["line"]["id"] == middle["id"]
    assert len(context["before"]) == 3 and len(context["after"]) == 2
    assert all(i["host"] == "web-1" for i in context["before"] + context["after"])
    before_times = [i["time_ns"] for i in context["before"]]
    assert before_times == sorted(before_times) and before_times[-1] <= middle["time_ns"]
    assert context["after"][0]["time_ns"] >= middle["time_ns"]
    by_source = (
        await api.get(f"/api/v1/logs/{middle['id']}/context", params={"by": "source", "before": 5})
    ).json()
    assert {i["host"] for i in by_source["before"]} != {"web-1"}


async def test_export_csv_and_ndjson(loaded: Api) -> None:
    api = loaded.client
    async with api.stream(
        "GET", "/api/v1/logs/export", params={"format": "ndjson", "service": "sshd"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        assert "attachment" in response.headers["content-disposition"]
        body = b"".join([chunk async for chunk in response.aiter_bytes()])
    rows = [orjson.loads(line) for line in body.splitlines()]
    assert len(rows) == 20 and all(r["service"] == "sshd" for r in rows)

    response = await api.get("/api/v1/logs/export", params={"format": "csv", "q": "space"})
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert len(table) == 20 and all("No space left" in r["message"] for r in table)
    assert set(table[0]) >= {"id", "time", "host", "message", "template_id"}
    capped = await api.get("/api/v1/logs/export", params={"format": "ndjson", "max_rows": 5})
    assert len(capped.text.splitlines()) == 5
    bad = await api.get("/api/v1/logs/export", params={"format": "xml"})
    assert bad.status_code == 422


async def test_clusters_list_detail_series(loaded: Api) -> None:
    api = loaded.client
    page = (await api.get("/api/v1/log-clusters")).json()
    clusters = page["items"]
    assert len(clusters) == 3 and [c["count"] for c in clusters] == [20, 20, 20]
    ssh = next(c for c in clusters if c["template"].startswith("Failed password"))
    assert ssh["classification"]["failure_type"] == "auth_failure"
    assert ssh["classification"]["method"] == "rule" and ssh["examples"]
    assert ssh["first_seen_ns"] == BASE_NS and ssh["last_seen_ns"] == BASE_NS + 57_000_000_000

    detail = (await api.get(f"/api/v1/log-clusters/{ssh['id']}")).json()
    params = detail["parameters"]
    assert len(params) == detail["template"].count("<*>")
    users = next(p for p in params if any(v["value"].startswith("user") for v in p["top"]))
    # Lines stored before a position was learned as a variable have fewer parameters: skipped.
    assert users["distinct"] == 5 and 15 <= users["sampled"] <= 20
    assert sum(v["count"] for v in users["top"]) == users["sampled"]

    series = (
        await api.get(
            f"/api/v1/log-clusters/{ssh['id']}/series",
            params={"start": _iso(BASE_NS), "end": _iso(BASE_NS + 60_000_000_000), "interval": 30},
        )
    ).json()
    assert [p["count"] for p in series["points"]] == [10, 10]

    errors = (await api.get("/api/v1/log-clusters", params={"errors_only": True})).json()["items"]
    assert {c["classification"]["failure_type"] for c in errors} == {"auth_failure", "disk_space"}
    by_text = (await api.get("/api/v1/log-clusters", params={"q": "no space"})).json()["items"]
    assert len(by_text) == 1
    first = (await api.get("/api/v1/log-clusters", params={"limit": 2})).json()
    second = (
        await api.get("/api/v1/log-clusters", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    ids = [c["id"] for c in first["items"] + second["items"]]
    assert len(ids) == 3 == len(set(ids)) and second["next_cursor"] is None
    assert (await api.get("/api/v1/log-clusters/999999")).status_code == 404


async def test_label_correction_sticks(loaded: Api, log_worker: RunningWorker) -> None:
    api = loaded.client
    clusters = (await api.get("/api/v1/log-clusters")).json()["items"]
    nginx = next(c for c in clusters if c["template"].startswith("GET"))
    assert nginx["classification"]["failure_type"] == "none"
    response = await api.put(
        f"/api/v1/log-clusters/{nginx['id']}/classification",
        json={"failure_type": "timeout", "severity": "high", "component": "web"},
    )
    assert response.status_code == 200, response.text
    label = response.json()["classification"]
    assert label["failure_type"] == "timeout" and label["method"] == "operator" and label["confidence"] == 1.0
    assert label["labelled_by"] == "token:test"  # the actor, as in the audit log
    bad = await api.put(
        f"/api/v1/log-clusters/{nginx['id']}/classification", json={"failure_type": "gremlins"}
    )
    assert bad.status_code == 422 and "failure_type" in bad.json()["detail"]

    # More lines that change the template's text: the rules must not take the label back.
    more = [
        LogRecord(
            BASE_NS + 100_000_000_000 + i,
            f"GET /api/items/{i} HTTP/1.1 500 {i} bytes in {i} ms",
            host="web-9",
        )
        for i in range(10)
    ]
    await publish(loaded.backends, more)
    await log_worker.drain()
    after = (await api.get(f"/api/v1/log-clusters/{nginx['id']}")).json()
    assert after["classification"]["failure_type"] == "timeout"
    assert after["classification"]["method"] == "operator"
    audit = (await api.get("/api/v1/audit", params={"action": "log_cluster.classify"})).json()["items"]
    assert audit and audit[0]["after"]["failure_type"] == "timeout"
    # Search by failure type follows the corrected label.
    timeouts = (await api.get("/api/v1/logs", params={"failure_type": "timeout", "limit": 500})).json()[
        "items"
    ]
    assert len(timeouts) >= 20


async def test_semantic_search_disk_errors(api: Api, log_worker: RunningWorker) -> None:
    records = [
        LogRecord(BASE_NS + i, message, host="db-1")
        for i, message in enumerate(
            [
                "No space left on device",
                "Failed password for root from 10.0.0.1 port 22 ssh2",
                "Accepted publickey for deploy from 10.0.0.2 port 22 ssh2",
                "GET /index.html HTTP/1.1 200 512",
                "Started Session 42 of user deploy.",
                "CPU temperature above threshold, cpu clock throttled",
            ]
        )
    ]
    await publish(api.backends, records)
    await log_worker.drain()
    await index_templates(api.backends)

    result = (await api.client.get("/api/v1/logs/semantic", params={"q": "disk errors", "lines": 2})).json()
    assert result["embedder"] == "lexical-v1"
    top = result["templates"][0]
    assert top["template"] == "No space left on device", result
    assert top["lines"][0]["message"] == "No space left on device"
    assert 0 < top["similarity"] <= 1

    login = (await api.client.get("/api/v1/logs/semantic", params={"q": "login failures"})).json()
    assert login["templates"][0]["template"].startswith("Failed password")

    # "Find logs like this" for a line: nearest other templates.
    line = (await api.client.get("/api/v1/logs", params={"q": "Accepted"})).json()["items"][0]
    similar = (await api.client.get(f"/api/v1/logs/{line['id']}/similar", params={"limit": 2})).json()
    assert similar["line"]["id"] == line["id"]
    assert all(t["template_id"] != line["template_id"] for t in similar["templates"])
    assert similar["templates"][0]["template"].startswith("Failed password")


async def test_windowed_text_search_matches_a_plain_scan(
    loaded: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text search widens time windows from the newest lines; with tiny windows every page must
    still be exactly the newest matches, as a plain scan finds them."""
    from vigil.logs import search as logsearch

    monkeypatch.setattr(logsearch, "FIRST_WINDOW_ROWS", 4)
    db = loaded.backends.db
    everything, _ = await logsearch.search(db, logsearch.LogFilters(), limit=500, highlight=False)
    for q, expect in (
        ("password", lambda m: "password" in m),
        ("space", lambda m: "space" in m),
        ("user3", lambda m: "user3 " in m),
        ("password -user3", lambda m: "password" in m and "user3 " not in m),
    ):
        wanted = [i["id"] for i in everything if expect(i["message"])]
        got: list[int] = []
        after = None
        while True:
            items, after = await logsearch.search(db, logsearch.LogFilters(q=q), limit=3, after=after)
            got += [i["id"] for i in items]
            if after is None:
                break
        assert got == wanted, q
