"""Root-cause analysis end to end on both profiles: evidence from the stores, ranking, the API,
with and without the scripted LLM (valid answers, bad citations, an unavailable model), similar
past incidents, and the enrich stage fed by alert changes."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes.llm_server import FakeLLMServer, Flavour, Reply, Scripted, server_error
from tests.integration.conftest import Api
from vigil.backends import Backends
from vigil.store.models import Alert, ErrorEventRecord, ErrorGroup, Incident, TimelineEntry

T = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def minutes(m: float) -> datetime:
    return T + timedelta(minutes=m)


def finding(kind: str, key: str, score: float, **extra: Any) -> list[dict[str, Any]]:
    return [{"type": "finding", "kind": kind, "key": key, "score": score, **extra}]


async def add_incident(
    backends: Backends,
    title: str,
    start: datetime,
    hosts: list[str],
    services: list[str],
    alerts: list[dict[str, Any]],
    resolved: datetime | None = None,
) -> int:
    async with backends.db.session() as session:
        incident = Incident(
            title=title,
            severity="high",
            status="resolved" if resolved else "new",
            started_at=start,
            detected_at=start,
            resolved_at=resolved,
            hosts=hosts,
            services=services,
            alert_count=len(alerts),
            open_alert_count=0 if resolved else len(alerts),
        )
        session.add(incident)
        await session.flush()
        for spec in alerts:
            first = spec.pop("first_seen")
            session.add(
                Alert(
                    fingerprint=uuid.uuid4().hex,
                    status="resolved" if resolved else "new",
                    severity="high",
                    first_seen=first,
                    last_seen=first,
                    incident_id=incident.id,
                    resolved_at=resolved,
                    resolve_reason="manual" if resolved else None,
                    **spec,
                )
            )
        return incident.id


async def bad_deploy(backends: Backends) -> int:
    """checkout 2.4.1 ships at T-6m, a new KeyError follows, then payment failures and latency;
    an unrelated CPU anomaly on batch-01 started earlier."""
    async with backends.db.session() as session:
        group = ErrorGroup(
            project="1",
            fingerprint="f" * 32,
            title="KeyError: 'currency'",
            culprit="checkout.pricing",
            exception_type="KeyError",
            level="error",
            count=120,
            first_seen=minutes(-5),
            last_seen=minutes(3),
            first_release="checkout@2.4.1",
            last_release="checkout@2.4.1",
            last_service="checkout",
            last_host="app-01",
        )
        old = ErrorGroup(
            project="1",
            fingerprint="e" * 32,
            title="TimeoutError: upstream",
            level="warning",
            count=3,
            first_seen=minutes(-600),
            last_seen=minutes(-180),
            last_release="checkout@2.4.0",
            last_service="checkout",
        )
        session.add_all([group, old])
        await session.flush()
        events = [
            (old.id, "a1", minutes(-180), "checkout@2.4.0"),
            (group.id, "b1", minutes(-6), "checkout@2.4.1"),
            (group.id, "b2", minutes(-5), "checkout@2.4.1"),
        ]
        for group_id, event_id, at, release in events:
            session.add(
                ErrorEventRecord(
                    group_id=group_id,
                    project="1",
                    event_id=event_id,
                    time=at,
                    level="error",
                    release=release,
                    service="checkout",
                    host="app-01",
                )
            )
    other = await add_incident(
        backends,
        "batch-01 CPU",
        minutes(-30),
        ["batch-01"],
        [],
        [
            {
                "origin": "anomaly",
                "title": "cpu usage_user on batch-01",
                "host": "batch-01",
                "first_seen": minutes(-30),
                "evidence": finding(
                    "anomaly", "cpu,host=batch-01:usage_user", 0.97, measurement="cpu", field="usage_user"
                ),
            }
        ],
    )
    assert other
    return await add_incident(
        backends,
        "checkout errors and latency",
        T,
        ["app-01"],
        ["checkout"],
        [
            {
                "origin": "log",
                "title": "Burst of 'payment failed: <*>' on checkout",
                "service": "checkout",
                "host": "app-01",
                "first_seen": minutes(-2),
                "evidence": finding("log_burst", "log_template:41", 0.8, template_id=41),
            },
            {
                "origin": "anomaly",
                "title": "http latency_p99 on checkout",
                "service": "checkout",
                "first_seen": T,
                "evidence": finding(
                    "anomaly",
                    "http,service=checkout:latency_p99",
                    0.9,
                    measurement="http",
                    field="latency_p99",
                ),
            },
        ],
    )


def enable_llm(api: Api, server: FakeLLMServer, retries: int = 1) -> None:
    settings = api.backends.settings
    settings.llm_provider = "openai"
    settings.llm_base_url = server.openai_url
    settings.llm_model = "fake-model"
    settings.llm_max_retries = retries
    settings.llm_timeout_s = 10


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


SHOWN = re.compile(r"^\[(E\d+)\]", re.MULTILINE)


def citing_answer(cite: list[str] | None = None) -> Any:
    """A model that reads the prompt and blames H1, citing what it was shown (or ``cite``)."""

    def answer(_: Flavour, body: dict[str, Any]) -> Scripted:
        prompt = "\n".join(str(m.get("content")) for m in body["messages"])
        shown = SHOWN.findall(prompt)
        ids = cite if cite is not None else shown[:2]
        refs = "".join(f"[{i}]" for i in ids)
        return Reply(
            content=json.dumps(
                {
                    "hypothesis": 1,
                    "summary": f"The checkout 2.4.1 release introduced a KeyError {refs}.",
                    "explanation": f"Errors began right after the release {refs}; latency followed.",
                    "evidence_ids": ids,
                    "next_steps": [{"action": "Roll back checkout to 2.4.0.", "evidence_ids": ids[:1]}],
                    "confidence": 0.8,
                }
            ),
            prompt_tokens=900,
            completion_tokens=120,
        )

    return answer


async def test_rca_without_a_model_ranks_the_release_first(api: Api) -> None:
    incident_id = await bad_deploy(api.backends)
    missing = await api.client.get(f"/api/v1/incidents/{incident_id}/rca")
    assert missing.status_code == 404 and "POST" in missing.json()["detail"]

    response = await api.client.post(f"/api/v1/incidents/{incident_id}/rca")
    assert response.status_code == 200, response.text
    rca = response.json()
    assert rca["generated_by"] == "rules" and rca["model_used"] is False and rca["fallback_reason"] is None
    top = rca["hypotheses"][0]
    assert top["key"] == "release:checkout:checkout@2.4.1"
    assert top["title"] == "Release checkout@2.4.1 of checkout, followed by 1 new error group"
    evidence = {e["id"]: e for e in rca["evidence"]}
    assert [evidence[i]["kind"] for i in top["evidence_ids"]] == ["release", "error_group"]
    assert evidence[top["evidence_ids"][0]]["details"]["previous"] == "checkout@2.4.0"
    # E1 is the first thing that went wrong: the unrelated CPU anomaly, ranked below the release.
    assert evidence["E1"]["title"] == "cpu usage_user on batch-01" and evidence["E1"]["lead_s"] == 1800.0
    assert any(h["key"] == "cpu@batch-01" and h["rank"] > 1 for h in rca["hypotheses"])
    assert rca["summary"].startswith("Most likely cause: Release checkout@2.4.1 of checkout")
    assert set(rca["citations"]) <= set(evidence)
    assert rca["next_steps"][0]["action"] == (
        "Roll back checkout from checkout@2.4.1 to checkout@2.4.0 and confirm the errors stop."
    )
    assert any("no change source" in n for n in rca["notices"])

    again = await api.client.get(f"/api/v1/incidents/{incident_id}/rca")
    assert again.json()["id"] == rca["id"]
    history = (await api.client.get(f"/api/v1/incidents/{incident_id}/rca/history")).json()
    assert [h["id"] for h in history["items"]] == [rca["id"]]

    viewer = api.as_token(await api.token("viewer"))
    async with viewer:
        assert (await viewer.get(f"/api/v1/incidents/{incident_id}/rca")).status_code == 200
        assert (await viewer.post(f"/api/v1/incidents/{incident_id}/rca")).status_code == 403
    assert (await api.client.post("/api/v1/incidents/999999/rca")).json()["detail"].startswith("incident_id:")
    audit = (await api.client.get("/api/v1/audit", params={"action": "incident.rca"})).json()["items"]
    assert audit[0]["target_id"] == str(incident_id)

    status = (await api.client.get("/api/v1/llm/status")).json()
    assert status["configured"] is False and status["generated_by"] == "rules"
    assert status["features"]["rca"] == "rules"


async def test_rca_with_the_scripted_model_cites_supplied_evidence(
    api: Api, llm_server: FakeLLMServer
) -> None:
    enable_llm(api, llm_server)
    llm_server.responder = citing_answer()
    incident_id = await bad_deploy(api.backends)

    rca = (await api.client.post(f"/api/v1/incidents/{incident_id}/rca")).json()
    assert rca["generated_by"] == "model:fake-model" and rca["model_used"] is True
    assert rca["fallback_reason"] is None
    assert rca["summary"].startswith("The checkout 2.4.1 release introduced a KeyError [E")
    assert rca["citations"] and set(rca["citations"]) <= {e["id"] for e in rca["evidence"]}
    assert rca["hypotheses"][0]["chosen"] is True
    assert rca["next_steps"] == [
        {"action": "Roll back checkout to 2.4.0.", "evidence_ids": rca["citations"][:1]}
    ]
    sent = llm_server.chat_requests()[0].body
    assert sent["response_format"]["json_schema"]["name"] == "root_cause"
    assert "H1: Release checkout@2.4.1 of checkout" in sent["messages"][1]["content"]

    # A rules-only re-run on request, even with a model configured.
    rules = (await api.client.post(f"/api/v1/incidents/{incident_id}/rca", json={"use_llm": False})).json()
    assert rules["generated_by"] == "rules" and len(llm_server.chat_requests()) == 1

    usage = (await api.client.get("/api/v1/llm/usage")).json()
    assert usage["groups"]["rca"]["calls"] == 1
    assert usage["groups"]["rca"]["prompt_tokens"] == 900 and usage["totals"]["completion_tokens"] == 120
    by_day = (await api.client.get("/api/v1/llm/usage", params={"group_by": "day"})).json()
    assert sum(g["calls"] for g in by_day["groups"].values()) == 1
    status = (await api.client.get("/api/v1/llm/status", params={"check": "true"})).json()
    assert status["generated_by"] == "model:fake-model" and status["reachable"] is True
    assert status["models"] == ["fake-model"]


async def test_invented_citations_are_rejected_then_the_rules_rca_is_recorded(
    api: Api, llm_server: FakeLLMServer
) -> None:
    enable_llm(api, llm_server)
    llm_server.responder = citing_answer(cite=["E1", "E99"])
    incident_id = await bad_deploy(api.backends)

    rca = (await api.client.post(f"/api/v1/incidents/{incident_id}/rca")).json()
    assert rca["generated_by"] == "rules"
    assert "rejected twice" in rca["fallback_reason"] and "E99" in rca["fallback_reason"]
    assert rca["summary"].startswith("Most likely cause: Release checkout@2.4.1")
    _, second = llm_server.chat_requests()
    assert "not supplied: E99" in second.messages[-1]["content"]
    usage = (await api.client.get("/api/v1/llm/usage")).json()["groups"]["rca"]
    assert usage["invalid_outputs"] == 2 and usage["calls"] == 2


async def test_an_unavailable_model_falls_back_to_rules(api: Api, llm_server: FakeLLMServer) -> None:
    enable_llm(api, llm_server, retries=0)
    llm_server.push(server_error())
    incident_id = await bad_deploy(api.backends)
    rca = (await api.client.post(f"/api/v1/incidents/{incident_id}/rca")).json()
    assert rca["generated_by"] == "rules"
    assert rca["fallback_reason"].startswith("the model could not be used (LLMUnavailable: HTTP 500")


async def test_similar_past_incidents_show_what_fixed_them(api: Api) -> None:
    from vigil.rca.wiring import rca_service_for

    backends = api.backends
    disk = [
        {
            "origin": "anomaly",
            "title": "disk used_percent on web-01 /var",
            "host": "web-01",
            "first_seen": minutes(-2000),
            "evidence": finding(
                "anomaly", "disk,host=web-01:used_percent", 0.9, measurement="disk", field="used_percent"
            ),
        }
    ]
    past = await add_incident(
        backends, "Disk /var full on web-01", minutes(-2000), ["web-01"], [], disk, resolved=minutes(-1900)
    )
    unrelated = await add_incident(
        backends,
        "TLS certificate expired on api gateway",
        minutes(-3000),
        [],
        ["gateway"],
        [
            {
                "origin": "alertmanager",
                "title": "CertificateExpired gateway",
                "service": "gateway",
                "first_seen": minutes(-3000),
            }
        ],
        resolved=minutes(-2900),
    )
    async with backends.db.session() as session:
        session.add(
            TimelineEntry(
                incident_id=past,
                kind="status",
                actor="alice",
                message="new → resolved",
                data={"from": "new", "to": "resolved", "note": "rotated nginx logs, added logrotate"},
            )
        )
    service = rca_service_for(backends)
    assert await service.remember(past) and await service.remember(unrelated)
    current = await add_incident(
        backends,
        "Disk /var full on web-03",
        T,
        ["web-03"],
        [],
        [
            {
                "origin": "anomaly",
                "title": "disk used_percent on web-03 /var",
                "host": "web-03",
                "first_seen": T,
                "evidence": finding(
                    "anomaly", "disk,host=web-03:used_percent", 0.9, measurement="disk", field="used_percent"
                ),
            }
        ],
    )
    similar = (await api.client.get(f"/api/v1/incidents/{current}/similar")).json()
    assert similar[0]["incident_id"] == past
    assert similar[0]["resolution"] == "rotated nginx logs, added logrotate (alice)"
    assert all(s["incident_id"] != current for s in similar)
    if len(similar) > 1:
        assert similar[1]["similarity"] < similar[0]["similarity"]
    rca = (await api.client.post(f"/api/v1/incidents/{current}/rca")).json()
    assert rca["similar_incidents"][0]["incident_id"] == past


async def test_enrich_stage_analyses_new_incidents_and_remembers_resolved_ones(api: Api) -> None:
    from vigil.domain import codec
    from vigil.pipeline import topology
    from vigil.pipeline.runner import Runner
    from vigil.pipeline.stages.enrich import enrich_stage

    backends = api.backends
    incident_id = await bad_deploy(api.backends)
    stage = enrich_stage(backends)
    runner = Runner(backends.bus, [stage])
    await backends.bus.ensure_group(stage.topic, stage.group)

    async def deliver(*events: dict[str, Any]) -> None:
        await backends.bus.publish_many(topology.ALERT_CHANGES, [codec.encode(e) for e in events])
        messages = await backends.bus.consume(stage.topic, stage.group, "t", count=100, block_ms=1000)
        assert len(messages) == len(events)
        await runner.process(stage, messages)

    created = {"type": "incident.created", "alert_id": None, "incident_id": incident_id, "time_ns": 1}
    joined = {"type": "alert.created", "alert_id": 1, "incident_id": incident_id, "time_ns": 2}
    await deliver(
        created, joined, {"type": "alert.updated", "alert_id": 9, "incident_id": None, "time_ns": 3}
    )
    history = (await api.client.get(f"/api/v1/incidents/{incident_id}/rca/history")).json()["items"]
    assert [h["trigger"] for h in history] == ["incident.created"]  # one analysis for the batch

    await deliver({**joined, "type": "alert.updated"})  # nothing joined since: no re-run
    assert len((await api.client.get(f"/api/v1/incidents/{incident_id}/rca/history")).json()["items"]) == 1

    async with backends.db.session() as session:
        incident = await session.get(Incident, incident_id)
        assert incident is not None
        incident.status, incident.resolved_at = "resolved", minutes(30)
    await deliver({"type": "incident.resolved", "alert_id": None, "incident_id": incident_id, "time_ns": 4})
    from vigil.store.models import IncidentMemory

    async with backends.db.session() as session:
        memory = await session.get(IncidentMemory, incident_id)
    assert memory is not None and "KeyError" in memory.document
    assert await backends.bus.list_dead_letters() == []


async def test_poison_alert_change_is_dead_lettered(backends: Backends) -> None:
    from vigil.pipeline import topology
    from vigil.pipeline.runner import Runner
    from vigil.pipeline.stages.enrich import enrich_stage

    stage = enrich_stage(backends)
    await backends.bus.ensure_group(stage.topic, stage.group)
    await backends.bus.publish_many(topology.ALERT_CHANGES, [b"not json"])
    messages = await backends.bus.consume(stage.topic, stage.group, "t", count=10, block_ms=1000)
    await Runner(backends.bus, [stage]).process(stage, messages)
    [letter] = await backends.bus.list_dead_letters()
    assert "undecodable alert change" in letter.reason


async def test_from_alert_signals_to_a_model_rca_and_summary(api: Api, llm_server: FakeLLMServer) -> None:
    """The real alerting service raises alerts and an incident from findings; the enrich stage,
    fed by its ALERT_CHANGES events, writes the RCA and the incident summary with the model."""
    from vigil.alerting.service import AlertService
    from vigil.domain.alerts import AlertSignal
    from vigil.pipeline.runner import Runner
    from vigil.pipeline.stages.enrich import enrich_stage

    enable_llm(api, llm_server)
    summary_text = "The /var filesystem on web-03 filled up; requests now fail with 500."

    def model(flavour: Flavour, body: dict[str, Any]) -> Scripted:
        if "response_format" in body:  # the RCA asks for JSON; the summary for plain text
            return citing_answer()(flavour, body)
        return Reply(content=summary_text)

    llm_server.responder = model
    backends = api.backends
    now = datetime.now(UTC)
    ns = int(now.timestamp() * 1e9)
    signals = [
        AlertSignal(
            origin="anomaly",
            title="disk used_percent on web-03 /var",
            severity="high",
            time_ns=ns - 600 * 10**9,
            host="web-03",
            fingerprint="anomaly:disk,host=web-03:used_percent",
            evidence=finding(
                "anomaly", "disk,host=web-03:used_percent", 0.9, measurement="disk", field="used_percent"
            ),
        ),
        AlertSignal(
            origin="log",
            title="New error log pattern (disk_space): write <*> failed: No space left on device",
            severity="high",
            time_ns=ns - 60 * 10**9,
            host="web-03",
            fingerprint="new_error_template:log_template:5",
            evidence=finding(
                "new_error_template", "log_template:5", 0.95, template_id=5, failure_type="disk_space"
            ),
        ),
    ]
    stage = enrich_stage(backends)
    await backends.bus.ensure_group(stage.topic, stage.group)
    await AlertService(backends.db, backends.bus).ingest(signals)
    messages = await backends.bus.consume(stage.topic, stage.group, "t", count=100, block_ms=1000)
    assert any(b'"incident.created"' in m.payload for m in messages)
    await Runner(backends.bus, [stage]).process(stage, messages)

    incidents = (await api.client.get("/api/v1/incidents")).json()["items"]
    assert len(incidents) == 1
    incident_id = incidents[0]["id"]
    rca = (await api.client.get(f"/api/v1/incidents/{incident_id}/rca")).json()
    assert rca["generated_by"] == "model:fake-model" and rca["trigger"] == "incident.created"
    assert rca["hypotheses"][0]["key"] == "disk_space@web-03"
    incident = (await api.client.get(f"/api/v1/incidents/{incident_id}")).json()
    assert incident["summary"] == summary_text
    usage = (await api.client.get("/api/v1/llm/usage")).json()["groups"]
    assert usage["rca"]["calls"] == 1 and usage["summary"]["calls"] == 1


async def test_new_log_templates_are_evidence_with_the_hosts_that_logged_them(api: Api) -> None:
    from vigil.store.models import LogLine, LogTemplate

    backends = api.backends
    ns = lambda at: int(at.timestamp() * 1e9)  # noqa: E731
    async with backends.db.session() as session:
        full = LogTemplate(
            source="syslog",
            local_id=1,
            template="write <*> failed: No space left on device",
            count=40,
            first_seen_ns=ns(minutes(-1)),
            last_seen_ns=ns(minutes(2)),
            examples=["write /var/log/x failed: No space left on device"],
            failure_type="disk_space",
            severity="high",
            label_method="rule",
            label_confidence=0.95,
        )
        routine = LogTemplate(
            source="syslog",
            local_id=2,
            template="GET /api/v2/items/<*> 200",
            count=900,
            first_seen_ns=ns(minutes(-3)),
            last_seen_ns=ns(minutes(2)),
            examples=[],
            failure_type="none",
            severity="low",
            label_method="rule",
            label_confidence=0.9,
        )
        session.add_all([full, routine])
        await session.flush()
        for k in range(3):
            session.add(
                LogLine(
                    time_ns=ns(minutes(-1 + k)),
                    source="syslog",
                    host="web-03",
                    message="x",
                    template_id=full.id,
                    params=[],
                )
            )
    incident_id = await add_incident(
        backends,
        "web-03 disk",
        T,
        ["web-03"],
        [],
        [
            {
                "origin": "anomaly",
                "title": "disk used_percent on web-03 /var",
                "host": "web-03",
                "first_seen": minutes(-15),
                "evidence": finding(
                    "anomaly", "disk,host=web-03:used_percent", 0.9, measurement="disk", field="used_percent"
                ),
            }
        ],
    )
    rca = (await api.client.post(f"/api/v1/incidents/{incident_id}/rca")).json()
    templates = [e for e in rca["evidence"] if e["kind"] == "new_log_template"]
    assert len(templates) == 1  # the routine template is not evidence
    assert templates[0]["host"] == "web-03" and templates[0]["category"] == "disk_space"
    top = rca["hypotheses"][0]
    assert top["key"] == "disk_space@web-03" and templates[0]["id"] in top["evidence_ids"]
