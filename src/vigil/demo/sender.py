"""Delivering the fleet's telemetry to Vigil over HTTP, the way real agents do.

- metrics: ``POST /webhooks/telegraf`` as Telegraf's ``outputs.http`` (line protocol as
  ``text/plain``, or its JSON serializer), gzip-compressed when large;
- logs: ``POST /webhooks/logs`` as NDJSON, as a log shipper would;
- alerts: ``POST /webhooks/alertmanager`` with Alertmanager's webhook payload;
- application errors: the unmodified ``sentry-sdk`` with a DSN pointing at Vigil.

Like Telegraf, a refused request is retried rather than dropped: 429 and 503 after the
``Retry-After`` the server asked for, connection errors and other 5xx with backoff. A 400 is
counted and reported (the server names the bad lines; retrying would not help), and refused
credentials stop the demo with a message saying which token was refused.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from vigil.demo import apps
from vigil.demo.telemetry import ErrorReport
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)

MetricFormat = Literal["influx", "json"]

GZIP_FROM_BYTES = 4096
MAX_LOGS_PER_REQUEST = 5000
MAX_RETRY_AFTER_S = 60.0
MAX_SERVER_ERROR_RETRIES = 5
UNREACHABLE_GIVE_UP_S = 120.0
SENTRY_FLUSH_EVERY = 50  # the SDK's queue holds 100 events; flush before it drops any


class DemoError(Exception):
    """The demo cannot go on (credentials refused, not a Vigil at that URL...)."""


class Stopped(Exception):
    """Stopping was requested while a request waited to be retried."""


@dataclass(frozen=True, slots=True)
class DemoTokens:
    """Ingest tokens, one per kind of source (they may all be the same token)."""

    telegraf: str
    logs: str
    sentry: str
    alertmanager: str
    sentry_project: str = "1"

    @classmethod
    def single(cls, token: str, sentry_project: str = "1") -> DemoTokens:
        return cls(token, token, token, token, sentry_project)


@dataclass(slots=True)
class SendStats:
    points: int = 0
    logs: int = 0
    errors: int = 0
    alerts: int = 0
    requests: int = 0
    retries: int = 0
    rejected: int = 0  # 400 answers: some data was refused
    failed: int = 0  # gave up after retries

    def summary(self) -> str:
        return (
            f"{self.points:,} points, {self.logs:,} log lines, {self.errors:,} errors, {self.alerts:,} alert "
            f"notifications in {self.requests:,} requests ({self.retries} retried, {self.rejected} partly "
            f"refused, {self.failed} failed)"
        )


class Sink(Protocol):
    """Where the runner delivers telemetry."""

    stats: SendStats

    async def metrics(self, body: bytes, fmt: MetricFormat, count: int) -> None: ...

    async def logs(self, records: list[dict[str, Any]]) -> None: ...

    async def alerts(self, payload: dict[str, Any]) -> None: ...

    async def errors(self, reports: list[ErrorReport]) -> None: ...

    async def close(self) -> None: ...


def retry_after_s(value: str | None, default: float) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return default
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return default
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


class HttpSink:
    """Posts to a Vigil API; ``stopping`` interrupts retry waits."""

    def __init__(
        self,
        url: str,
        tokens: DemoTokens,
        stopping: asyncio.Event | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sentry_transport: Any = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.tokens = tokens
        self.stopping = stopping or asyncio.Event()
        self.stats = SendStats()
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, transport=transport)
        self._sentry = SentryReporter(
            sentry_dsn(self.url, tokens.sentry, tokens.sentry_project), sentry_transport
        )
        self._warned: set[str] = set()

    async def metrics(self, body: bytes, fmt: MetricFormat, count: int) -> None:
        if not body:
            return
        headers = {
            "Content-Type": "application/json" if fmt == "json" else "text/plain; charset=utf-8",
            "User-Agent": "Telegraf/1.30.2 Go/1.22.2",
        }
        if await self._post("/webhooks/telegraf", body, headers, self.tokens.telegraf, "metrics"):
            self.stats.points += count

    async def logs(self, records: list[dict[str, Any]]) -> None:
        for i in range(0, len(records), MAX_LOGS_PER_REQUEST):
            chunk = records[i : i + MAX_LOGS_PER_REQUEST]
            body = b"\n".join(orjson.dumps(r) for r in chunk) + b"\n"
            headers = {
                "Content-Type": "application/x-ndjson",
                "User-Agent": "Vector/0.39.0 (x86_64-unknown-linux-gnu)",
            }
            if await self._post("/webhooks/logs", body, headers, self.tokens.logs, "logs"):
                self.stats.logs += len(chunk)

    async def alerts(self, payload: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.27.0"}
        if await self._post(
            "/webhooks/alertmanager", orjson.dumps(payload), headers, self.tokens.alertmanager, "alerts"
        ):
            self.stats.alerts += 1

    async def errors(self, reports: list[ErrorReport]) -> None:
        if reports:
            self.stats.errors += await asyncio.to_thread(self._sentry.report, reports)

    async def close(self) -> None:
        await self._client.aclose()
        await asyncio.to_thread(self._sentry.close)

    async def _post(self, path: str, body: bytes, headers: dict[str, str], token: str, what: str) -> bool:
        """True once accepted (2xx, or 400 with the rest stored); retries what is worth it."""
        headers = {**headers, "Authorization": f"Bearer {token}"}
        if len(body) >= GZIP_FROM_BYTES:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        backoff = 0.5
        unreachable_since: float | None = None
        server_errors = 0
        while True:
            if self.stopping.is_set():
                raise Stopped
            try:
                response = await self._client.post(path, content=body, headers=headers)
            except httpx.TransportError as exc:
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > UNREACHABLE_GIVE_UP_S:
                    raise DemoError(f"cannot reach Vigil at {self.url}: {exc!r}") from exc
                self._warn_once(
                    f"unreachable:{what}", f"{what}: Vigil at {self.url} unreachable ({exc!r}); retrying"
                )
                await self._wait(backoff)
                backoff = min(backoff * 2, 30.0)
                self.stats.retries += 1
                continue
            self.stats.requests += 1
            status = response.status_code
            if status < 300:
                return True
            detail = _detail(response)
            if status in (429, 503):
                delay = retry_after_s(response.headers.get("retry-after"), 5.0)
                log.info("demo %s: Vigil answered %d, retrying in %.1f s", what, status, delay)
                self.stats.retries += 1
                await self._wait(delay)
                continue
            if status >= 500:
                server_errors += 1
                if server_errors > MAX_SERVER_ERROR_RETRIES:
                    self.stats.failed += 1
                    log.warning(
                        "demo %s: giving up after %d answers %d: %s", what, server_errors, status, detail
                    )
                    return False
                self.stats.retries += 1
                await self._wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if status == 400:
                self.stats.rejected += 1
                self._warn_once(f"400:{what}", f"demo {what}: Vigil refused part of a batch: {detail}")
                return True
            if status in (401, 403):
                raise DemoError(f"{what}: the ingest token was refused ({status}): {detail}")
            if status == 404:
                raise DemoError(f"{what}: {self.url}{path} does not exist; is {self.url} a Vigil API?")
            raise DemoError(f"{what}: Vigil answered {status}: {detail}")

    async def _wait(self, seconds: float) -> None:
        if await sleep_unless(self.stopping, seconds):
            raise Stopped

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)


def _detail(response: httpx.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(document, dict):
        return str(document.get("detail") or document.get("error") or document)[:300]
    return str(document)[:300]


def sentry_dsn(url: str, token: str, project: str) -> str:
    """``http://<token>@<host:port>/<project>``: the DSN of a Sentry project that is Vigil."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{token}@{parts.netloc}{path}/{project}"


class SentryReporter:
    """Reports ErrorReports through the real ``sentry-sdk`` client (blocking: run in a thread).

    The client is private to the demo (never installed globally, no default integrations), so
    an in-process demo does not capture Vigil's own logs or exceptions. ``before_send`` gives
    each event the simulated time, host, release and service of its report, and drops the
    demo's own frames so the stack trace is the application's.
    """

    def __init__(self, dsn: str, transport: Any = None) -> None:
        self.dsn = dsn
        self._transport = transport
        self._client: Any = None
        self._current: ErrorReport | None = None
        self._lock = threading.Lock()

    def _ensure_client(self) -> Any:
        if self._client is None:
            import sentry_sdk

            options: dict[str, Any] = {
                "dsn": self.dsn,
                "default_integrations": False,
                "auto_enabling_integrations": False,
                "integrations": [],
                "send_client_reports": False,
                "auto_session_tracking": False,
                "in_app_include": list(apps.IN_APP),
                "before_send": self._before_send,
                "environment": "production",
                "max_breadcrumbs": 0,
            }
            if self._transport is not None:
                options["transport"] = self._transport
            self._client = sentry_sdk.Client(**options)
        return self._client

    def report(self, reports: list[ErrorReport]) -> int:
        """Capture each report; returns how many the SDK accepted."""
        import sentry_sdk

        with self._lock:
            client = self._ensure_client()
            sent = 0
            for number, report in enumerate(reports, 1):
                error = apps.raise_problem(report.problem)
                self._current = report
                try:
                    with sentry_sdk.new_scope() as scope:
                        scope.set_client(client)
                        scope.set_tag("service", report.service)
                        scope.set_transaction_name(report.transaction)
                        scope.set_user({"id": report.user_id})
                        if scope.capture_exception(error) is not None:
                            sent += 1
                finally:
                    self._current = None
                if number % SENTRY_FLUSH_EVERY == 0:
                    client.flush(timeout=10)
            client.flush(timeout=10)
            return sent

    def _before_send(self, event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        report = self._current
        if report is None:
            return event
        event["timestamp"] = report.t
        event["server_name"] = report.host
        event["release"] = f"{report.service}@{report.release}"
        event["environment"] = "production"
        for value in (event.get("exception") or {}).get("values") or []:
            stacktrace = value.get("stacktrace") or {}
            frames = stacktrace.get("frames")
            if frames:
                stacktrace["frames"] = [f for f in frames if f.get("abs_path") in apps.PATHS] or frames
        return event

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close(timeout=5)
                self._client = None
