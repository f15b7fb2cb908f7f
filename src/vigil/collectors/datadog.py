"""Datadog collector: metric queries (``GET /api/v1/query``) and events (``GET /api/v1/events``).

Each poll reads the window since the previous poll, reaching back ``lag_s`` further because
Datadog fills recent points late; re-read points overwrite themselves in the metric store
(same series and timestamp), and re-read events are skipped by id. The first poll reads
``lookback_s``.

Requests take seconds, responses milliseconds (``pointlist`` times are float ms; values may be
null). A 429 is waited out when ``X-RateLimit-Reset`` is short, otherwise the poll ends and the
scheduler returns after the reset.

Monitor notifications among the events ("[Triggered] …", "[Warn] …", "[Recovered] …") become
alert signals keyed by the monitor title; every event also becomes a log record.
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, Field, field_validator

from vigil.collectors import http
from vigil.collectors.base import CollectError, CollectResult, StrictModel, register
from vigil.domain.alerts import AlertSignal, Severity
from vigil.domain.logs import LogRecord
from vigil.domain.metrics import Point

EVENTS_PAGE = 1000  # the API's page size; a shorter page is the last one
MAX_EVENT_PAGES = 50
SITES = {
    "datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com",
    "ap2.datadoghq.com", "uk1.datadoghq.com", "ddog-gov.com", "us2.ddog-gov.com",
}  # fmt: skip
_METRIC_QUERY = re.compile(r"^\s*(?:[a-z0-9_]+:)?[A-Za-z0-9_.]+\s*\{.*\}")
_MONITOR_TITLE = re.compile(r"^\[(Triggered|Re-Triggered|Warn|Recovered|No Data)[^\]]*\]\s*(.+)$")


class DatadogQuery(StrictModel):
    query: str = Field(min_length=1, description="e.g. avg:system.cpu.user{env:prod} by {host}")
    measurement: str | None = Field(None, description="Default: measurement_prefix + the metric name.")

    @field_validator("query")
    @classmethod
    def _shape(cls, v: str) -> str:
        if not _METRIC_QUERY.match(v):
            raise ValueError("must look like [aggregator:]metric.name{scope} [by {tags}]")
        return v


class DatadogConfig(StrictModel):
    queries: list[DatadogQuery] = Field(default_factory=list, max_length=50)
    events: bool = False
    event_priority: str | None = Field(None, pattern="^(normal|low)$")
    event_sources: str | None = None
    event_tags: str | None = Field(None, description="Comma-separated, e.g. env:prod,team:web")
    lookback_s: int = Field(600, ge=60, le=86400, description="Window of the first poll.")
    lag_s: int = Field(120, ge=0, le=3600, description="How far each poll re-reads before the last one.")
    measurement_prefix: str = "datadog."
    timeout_s: float = Field(30.0, gt=0, le=120)

    @field_validator("queries", mode="before")
    @classmethod
    def _strings(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"query": q} if isinstance(q, str) else q for q in v]
        return v


class DatadogCredentials(StrictModel):
    api_key: str | None = None
    app_key: str | None = None


def normalise_target(target: str | None) -> str:
    """A site (``datadoghq.eu``) or an API base URL; default US1."""
    target = (target or "").strip().rstrip("/")
    if not target:
        return "https://api.datadoghq.com"
    if "://" in target:
        if not target.startswith(("http://", "https://")):
            raise ValueError(f"target: {target!r} is not an http(s) URL")
        return target
    site = target.removeprefix("api.")
    if site not in SITES:
        known = ", ".join(sorted(SITES))
        raise ValueError(f"target: unknown Datadog site {target!r}; use one of {known} or a URL")
    return f"https://api.{site}"


def _describe(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e) for e in errors)
    except (ValueError, AttributeError):
        pass
    return http.default_describe(response)


def _retry_after(response: httpx.Response) -> float | None:
    # X-RateLimit-Reset is "seconds until the current period ends".
    reset = response.headers.get("x-ratelimit-reset")
    try:
        return max(0.0, float(reset)) if reset is not None else http.retry_after_header(response)
    except ValueError:
        return http.retry_after_header(response)


def series_points(body: dict[str, Any], measurement: str | None, prefix: str) -> list[Point]:
    """Points of one query answer: one per non-null value, tags from the group's tag_set."""
    points = []
    for series in body.get("series") or []:
        metric = str(series.get("metric") or "unknown")
        name = measurement or f"{prefix}{metric}"
        tags: dict[str, str] = {}
        for tag in series.get("tag_set") or []:
            key, sep, value = str(tag).partition(":")
            if sep and key and value:
                tags[key] = value
        for pair in series.get("pointlist") or []:
            if not isinstance(pair, list | tuple) or len(pair) != 2 or pair[1] is None:
                continue
            points.append(Point(name, {"value": float(pair[1])}, dict(tags), int(float(pair[0]) * 1_000_000)))
    return points


def event_records(
    events: list[dict[str, Any]], host_default: str | None = None
) -> tuple[list[LogRecord], list[AlertSignal]]:
    logs, signals = [], []
    levels = {"error": "error", "warning": "warning", "success": "info", "info": "info"}
    for event in events:
        when = int(event.get("date_happened") or time.time()) * 1_000_000_000
        title = str(event.get("title") or "")
        text = str(event.get("text") or "")
        host = event.get("host") or host_default
        logs.append(
            LogRecord(
                time_ns=when,
                message=f"{title}\n{text}".strip(),
                host=host,
                service=event.get("source_type_name"),
                level=levels.get(str(event.get("alert_type")), "info"),
                attributes={
                    "datadog_event_id": event.get("id_str") or str(event.get("id")),
                    "alert_type": event.get("alert_type"),
                    "priority": event.get("priority"),
                    "tags": event.get("tags") or [],
                    "url": event.get("url"),
                },
            )
        )
        match = _MONITOR_TITLE.match(title)
        if match:
            status, monitor = match.groups()
            if status == "No Data":
                continue
            severity: Severity = "medium" if status == "Warn" else "high"
            signals.append(
                AlertSignal(
                    origin="external",
                    title=monitor,
                    severity=severity,
                    time_ns=when,
                    host=host,
                    description=text or None,
                    labels={"vendor": "datadog", "monitor_status": status},
                    annotations={"datadog_event_id": event.get("id_str") or str(event.get("id"))},
                    fingerprint=f"datadog:monitor:{monitor}" + (f":{host}" if host else ""),
                    resolved=status == "Recovered",
                )
            )
    return logs, signals


class DatadogCollector:
    name: ClassVar[str] = "datadog"
    config_model: ClassVar[type[BaseModel]] = DatadogConfig
    credentials_model: ClassVar[type[BaseModel]] = DatadogCredentials

    def check(self, target: str | None, config: DatadogConfig, credentials: DatadogCredentials) -> str:
        base = normalise_target(target)
        if not credentials.api_key:
            raise ValueError("credentials.api_key: required")
        if not credentials.app_key:
            raise ValueError("credentials.app_key: required (reading metrics and events needs it)")
        if not config.queries and not config.events:
            raise ValueError("config.queries: give at least one query, or set config.events")
        return base

    async def collect(
        self, target: str, config: DatadogConfig, credentials: DatadogCredentials, state: dict[str, Any]
    ) -> CollectResult:
        now = int(time.time())
        result = CollectResult()
        headers = {"DD-API-KEY": credentials.api_key or "", "DD-APPLICATION-KEY": credentials.app_key or ""}
        async with http.client(
            target, timeout_s=config.timeout_s, headers={"Accept": "application/json", **headers}
        ) as client:
            start = _window_start(state.get("metrics_to"), now, config)
            for query in config.queries:
                response = await http.send(
                    client,
                    "GET",
                    "/api/v1/query",
                    params={"from": start, "to": now, "query": query.query},
                    describe=_describe,
                    retry_after=_retry_after,
                )
                body = http.json_body(response)
                if not isinstance(body, dict):
                    raise CollectError("/api/v1/query did not answer a JSON object")
                if body.get("status") not in (None, "ok"):
                    reason = body.get("error") or body.get("status")
                    raise CollectError(f"query {query.query!r} failed: {reason}")
                result.points.extend(series_points(body, query.measurement, config.measurement_prefix))
            new_state: dict[str, Any] = {"metrics_to": now}
            if config.events:
                events_start = _window_start(state.get("events_to"), now, config)
                events = await self._events(client, config, events_start, now)
                seen = set(state.get("event_ids") or [])
                fresh = [e for e in events if (e.get("id_str") or str(e.get("id"))) not in seen]
                result.logs, result.alert_signals = event_records(fresh)
                # Ids inside the re-read window are all that can come back next time.
                keep_after = now - config.lag_s
                new_state["event_ids"] = sorted(
                    {
                        e.get("id_str") or str(e.get("id"))
                        for e in events
                        if int(e.get("date_happened") or 0) >= keep_after
                    }
                )
                new_state["events_to"] = now
        result.new_state = new_state
        return result

    async def _events(
        self, client: httpx.AsyncClient, config: DatadogConfig, start: int, end: int
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"start": start, "end": end}
        for key, value in (
            ("priority", config.event_priority),
            ("sources", config.event_sources),
            ("tags", config.event_tags),
        ):
            if value:
                params[key] = value
        events: list[dict[str, Any]] = []
        for page in range(MAX_EVENT_PAGES):
            response = await http.send(
                client,
                "GET",
                "/api/v1/events",
                params={**params, "page": page},
                describe=_describe,
                retry_after=_retry_after,
            )
            body = http.json_body(response)
            batch = body.get("events") if isinstance(body, dict) else None
            if not isinstance(batch, list):
                raise CollectError("/api/v1/events answered without an events list")
            events.extend(e for e in batch if isinstance(e, dict))
            if len(batch) < EVENTS_PAGE:
                break
        return events


def _window_start(previous_end: Any, now: int, config: DatadogConfig) -> int:
    if isinstance(previous_end, int):
        return max(previous_end - config.lag_s, now - config.lookback_s * 4)
    return now - config.lookback_s


register(DatadogCollector(), "Datadog metric queries and events (API and application key)")
