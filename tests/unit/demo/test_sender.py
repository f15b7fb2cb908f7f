"""Delivery: retries as agents do (Retry-After honoured), clear failures, real Sentry events."""

from __future__ import annotations

import asyncio
import gzip
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import orjson
import pytest
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from vigil.demo import apps
from vigil.demo.sender import (
    DemoError,
    DemoTokens,
    HttpSink,
    SentryReporter,
    Stopped,
    retry_after_s,
    sentry_dsn,
)
from vigil.demo.telemetry import ErrorReport
from vigil.ingest.sentry import parse_envelope, parse_event_json

TOKENS = DemoTokens("tok-telegraf", "tok-logs", "tok-sentry", "tok-am", sentry_project="7")


class Recorder:
    """A scripted HTTP server: answers in order, records what it got."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(time.monotonic())
        return self.answers.pop(0) if self.answers else httpx.Response(204)


def sink_for(recorder: Recorder, stopping: asyncio.Event | None = None) -> HttpSink:
    return HttpSink("http://vigil.test:8080/", TOKENS, stopping, transport=httpx.MockTransport(recorder))


async def test_metrics_go_to_the_telegraf_webhook_with_the_token_and_gzip() -> None:
    recorder = Recorder()
    sink = sink_for(recorder)
    body = b"cpu,host=a usage_user=1.5 1700000000000000000\n" * 200
    await sink.metrics(body, "influx", 200)
    await sink.metrics(b'{"metrics":[]}', "json", 0)
    await sink.close()
    first, second = recorder.requests
    assert first.url.path == "/webhooks/telegraf"
    assert first.headers["authorization"] == "Bearer tok-telegraf"
    assert first.headers["content-type"] == "text/plain; charset=utf-8"
    assert first.headers["content-encoding"] == "gzip" and gzip.decompress(first.content) == body
    assert first.headers["user-agent"].startswith("Telegraf/")
    assert second.headers["content-type"] == "application/json" and "content-encoding" not in second.headers
    assert sink.stats.points == 200 and sink.stats.requests == 2


async def test_logs_are_ndjson_and_alerts_alertmanager_json() -> None:
    recorder = Recorder()
    sink = sink_for(recorder)
    records = [{"timestamp": "2026-01-01T00:00:00.000Z", "host": "h", "service": "s", "level": "info",
                "message": f"line {i}"} for i in range(3)]  # fmt: skip
    await sink.logs(records)
    await sink.alerts({"version": "4", "alerts": []})
    await sink.close()
    logs, alerts = recorder.requests
    assert logs.url.path == "/webhooks/logs" and logs.headers["authorization"] == "Bearer tok-logs"
    assert logs.headers["content-type"] == "application/x-ndjson"
    assert [orjson.loads(line) for line in logs.content.splitlines()] == records
    assert alerts.url.path == "/webhooks/alertmanager" and alerts.headers["authorization"] == "Bearer tok-am"
    assert sink.stats.logs == 3 and sink.stats.alerts == 1


@pytest.mark.parametrize("status", [429, 503])
async def test_saturated_or_unavailable_is_retried_after_retry_after(status: int) -> None:
    recorder = Recorder(httpx.Response(status, headers={"Retry-After": "0.3"}), httpx.Response(204))
    sink = sink_for(recorder)
    await sink.logs([{"message": "x"}])
    await sink.close()
    assert len(recorder.requests) == 2
    assert recorder.requests[0].content == recorder.requests[1].content  # the same batch again
    assert recorder.times[1] - recorder.times[0] >= 0.29
    assert sink.stats.retries == 1 and sink.stats.logs == 1


async def test_connection_errors_and_server_errors_are_retried_with_backoff() -> None:
    calls = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("connection refused")
        if calls == 2:
            return httpx.Response(500, json={"detail": "boom"})
        return httpx.Response(204)

    sink = HttpSink("http://vigil.test", TOKENS, transport=httpx.MockTransport(flaky))
    await sink.alerts({"version": "4", "alerts": []})
    await sink.close()
    assert calls == 3 and sink.stats.alerts == 1 and sink.stats.retries == 2


async def test_a_400_is_counted_not_retried() -> None:
    recorder = Recorder(httpx.Response(400, json={"detail": "1 line(s) rejected, 2 accepted: line 3: bad"}))
    sink = sink_for(recorder)
    await sink.metrics(b"a b=1 1\n", "influx", 3)
    await sink.close()
    assert len(recorder.requests) == 1 and sink.stats.rejected == 1


@pytest.mark.parametrize(("status", "message"), [(401, "token was refused"), (403, "token was refused"),
                                                 (404, "is http://vigil.test a Vigil API")])  # fmt: skip
async def test_refused_credentials_stop_the_demo_with_a_clear_message(status: int, message: str) -> None:
    sink = HttpSink("http://vigil.test", TOKENS, transport=httpx.MockTransport(lambda r: httpx.Response(
        status, json={"detail": "unknown, expired or revoked ingest token"})))  # fmt: skip
    with pytest.raises(DemoError, match=message):
        await sink.logs([{"message": "x"}])
    await sink.close()


async def test_stopping_interrupts_a_retry_wait() -> None:
    stopping = asyncio.Event()
    sink = sink_for(Recorder(httpx.Response(429, headers={"Retry-After": "30"})), stopping)
    task = asyncio.create_task(sink.logs([{"message": "x"}]))
    await asyncio.sleep(0.2)
    stopping.set()
    started = time.monotonic()
    with pytest.raises(Stopped):
        await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 2
    await sink.close()


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s("7", 5.0) == 7.0
    assert retry_after_s(None, 5.0) == 5.0
    assert retry_after_s("soon", 5.0) == 5.0
    assert retry_after_s("100000", 5.0) == 60.0  # capped
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert 8.0 <= retry_after_s(in_ten, 5.0) <= 10.0


def test_sentry_dsn_points_at_vigil() -> None:
    assert sentry_dsn("http://127.0.0.1:8080", "vgl_x", "3") == "http://vgl_x@127.0.0.1:8080/3"
    assert sentry_dsn("https://vigil.example.com/base/", "k", "1") == "https://k@vigil.example.com/base/1"


class Capture(Transport):
    """sentry-sdk's transport seam: keeps the envelopes the real client built."""

    envelopes: list[bytes] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        Capture.envelopes.append(envelope.serialize())


def test_sentry_reports_are_real_sdk_events_at_simulated_times() -> None:
    Capture.envelopes = []
    reporter = SentryReporter("http://tok-sentry@vigil.test/7", Capture)
    reports = [
        ErrorReport(1_780_000_040.25, "app-01", "checkout", "2.15.0", "missing_currency",
                    "POST /api/checkout/orders", "u42"),
        ErrorReport(1_780_000_050.5, "web-03", "storefront", "1.8.2", "disk_full",
                    "POST /api/cart/items", "u7"),
    ]  # fmt: skip
    assert reporter.report(reports) == 2
    reporter.close()
    events = []
    for raw in Capture.envelopes:
        envelope = parse_envelope(raw)
        [item] = [i for i in envelope.items if i.type == "event"]
        events.append(parse_event_json(item.payload, "7", 0))
    checkout, disk = events
    assert checkout.time_ns == 1_780_000_040_250_000_000
    assert (checkout.host, checkout.service, checkout.release) == ("app-01", "checkout", "checkout@2.15.0")
    assert checkout.exception_type == "KeyError" and checkout.exception_value == "'currency'"
    assert checkout.transaction == "POST /api/checkout/orders" and checkout.environment == "production"
    # the application's own frames only, all in-app, innermost last, with source context
    assert [f.function for f in checkout.frames] == ["create_order", "order_total"]
    assert all(f.in_app and f.filename in apps.PATHS for f in checkout.frames)
    assert (checkout.frames[-1].context_line or "").strip() == 'return convert(subtotal, order["currency"])'
    assert disk.exception_type == "OSError" and "No space left on device" in (disk.exception_value or "")


def test_every_scripted_problem_raises_what_it_says() -> None:
    expected: dict[str, Any] = {
        "missing_currency": KeyError, "quantity_none": TypeError, "disk_full": OSError,
        "smtp_refused": ConnectionRefusedError, "bad_page_param": ValueError,
    }  # fmt: skip
    for problem in apps.PROBLEMS:
        error = apps.raise_problem(problem)
        assert error.__traceback__ is not None
        if problem in expected:
            assert isinstance(error, expected[problem])
    assert type(apps.raise_problem("gateway_timeout")).__name__ == "GatewayTimeout"
