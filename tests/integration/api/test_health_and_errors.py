"""Health, readiness, metrics and the RFC 9457 error format, on both profiles."""

from __future__ import annotations

from tests.integration.conftest import Api


async def test_healthz_and_readyz(api: Api) -> None:
    async with api.anonymous() as client:
        assert (await client.get("/healthz")).json()["status"] == "ok"
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert set(body["backends"]) == {"database", "bus", "metrics", "vectors"}
        assert all(b["ok"] for b in body["backends"].values())
        assert body["profile"] in ("embedded", "distributed")


async def test_readyz_reports_a_broken_backend(api: Api) -> None:
    async def broken() -> None:
        raise ConnectionError("boom")

    api.backends.metrics.ping = broken  # type: ignore[method-assign]
    async with api.anonymous() as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    metrics = ready.json()["backends"]["metrics"]
    assert metrics["ok"] is False and "boom" in metrics["detail"]
    assert ready.json()["backends"]["database"]["ok"] is True


async def test_validation_errors_are_problem_documents_naming_the_field(api: Api) -> None:
    response = await api.client.post("/api/v1/users", json={"username": "ok", "password": "short"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422 and body["title"]
    assert body["errors"][0]["field"] == "password"
    assert "password" in body["detail"]


async def test_unknown_route_is_a_problem_document(api: Api) -> None:
    response = await api.client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_metrics_expose_http_latency_and_bus_backlog(api: Api) -> None:
    await api.client.get("/api/v1/auth/me")
    async with api.anonymous() as client:
        text = (await client.get("/metrics")).text
    assert (
        'vigil_http_request_duration_seconds_count{method="GET",route="/api/v1/auth/me",status="2xx"}' in text
    )
    assert "vigil_bus_lag_messages" in text
    assert "vigil_stage_messages_total" in text


async def test_openapi_docs_are_served(api: Api) -> None:
    async with api.anonymous() as client:
        assert (await client.get("/docs")).status_code == 200
        spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/auth/login" in spec["paths"]
    # client generators need one id per operation (routes serving several methods repeat theirs)
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
