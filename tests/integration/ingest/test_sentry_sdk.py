"""Acceptance: the real, unmodified sentry-sdk reporting to a running Vigil creates a grouped
error with its stack trace, and a second identical exception increments its count."""

from __future__ import annotations

import asyncio

import sentry_sdk

from tests.integration.conftest import Api
from tests.integration.ingest.helpers import Ingest
from tests.live_server import LiveServer


def _checkout(cart: list[int]) -> float:
    return sum(cart) / len(cart)  # ZeroDivisionError for an empty cart


def _report_failed_checkout() -> None:
    try:
        _checkout([])
    except ZeroDivisionError as exc:
        sentry_sdk.capture_exception(exc)


async def test_sentry_sdk_reports_a_grouped_error_with_its_stack_trace(
    ingest: Ingest, live: LiveServer, api: Api
) -> None:
    source = await ingest.source("sentry", name="shop")
    token = await ingest.token(source)
    host = live.url.removeprefix("http://")
    client = sentry_sdk.Client(
        dsn=f"http://{token}@{host}/42",
        release="shop@2.0.1",
        environment="staging",
        server_name="checkout-7",
        default_integrations=False,
        auto_enabling_integrations=False,
    )
    scope = sentry_sdk.get_current_scope()
    previous = scope.client
    scope.set_client(client)
    try:
        for _ in range(2):
            _report_failed_checkout()
            # The SDK sends from its own thread; flush waits for it, so not on the event loop
            # that serves Vigil.
            await asyncio.to_thread(client.flush, 10)
            await ingest.drain()
    finally:
        scope.set_client(previous)
        await asyncio.to_thread(client.close, 5)

    groups = (await api.client.get("/api/v1/errors", params={"q": "ZeroDivisionError"})).json()["items"]
    assert len(groups) == 1, groups
    group = groups[0]
    assert group["count"] == 2
    assert group["title"] == "ZeroDivisionError: division by zero"
    assert (
        group["project"],
        group["source"],
        group["last_release"],
        group["environments"],
        group["last_host"],
    ) == (
        "42",
        "shop",
        "shop@2.0.1",
        ["staging"],
        "checkout-7",
    )
    assert group["culprit"].endswith("in _checkout")
    detail = (await api.client.get(f"/api/v1/errors/{group['id']}")).json()
    assert len(detail["events"]) == 2
    frames = detail["events"][0]["frames"]
    assert [f["function"] for f in frames][-2:] == ["_report_failed_checkout", "_checkout"]
    assert "sum(cart) / len(cart)" in frames[-1]["context_line"]
    assert frames[-1]["lineno"] and frames[-1]["filename"].endswith("test_sentry_sdk.py")
