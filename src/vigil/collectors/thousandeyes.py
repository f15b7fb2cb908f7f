"""ThousandEyes collector (API v7): test results as metrics, alerts as alert signals.

Per poll: the test list (``GET /v7/tests``; the configured ``test_ids``, or every enabled test),
then for each test its network results (loss, latency, jitter per agent per round) and, for
HTTP server tests, its HTTP timings, over ``[end of last window, now - lag_s)`` with
``startDate``/``endDate``; then alerts triggered or cleared in that window. Pages are followed
through ``_links.next.href`` until absent (cursors are opaque; never built by hand).

Rate limits: a 429 carries no Retry-After; ``X-Organization-Rate-Limit-Reset`` (a UTC epoch)
says when the next minute starts, and that is when we come back.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field

from vigil.collectors import http
from vigil.collectors.base import CollectError, CollectResult, StrictModel, register
from vigil.domain.alerts import AlertSignal, Severity
from vigil.domain.metrics import FieldValue, Point

MAX_PAGES = 100
NETWORK_TYPES = frozenset(
    {"agent-to-server", "agent-to-agent", "http-server", "page-load", "web-transactions", "ftp-server",
     "sip-server", "api"}
)  # fmt: skip
SEVERITY: dict[str, Severity] = {"critical": "critical", "major": "high", "minor": "medium", "info": "low"}

NETWORK_FIELDS = {
    "avgLatency": "avg_latency_ms", "minLatency": "min_latency_ms", "maxLatency": "max_latency_ms",
    "loss": "loss_pct", "jitter": "jitter_ms", "healthScore": "health_score",
}  # fmt: skip
HTTP_FIELDS = {
    "responseCode": "response_code", "numRedirects": "redirects", "redirectTime": "redirect_ms",
    "dnsTime": "dns_ms", "sslTime": "ssl_ms", "connectTime": "connect_ms", "waitTime": "wait_ms",
    "receiveTime": "receive_ms", "responseTime": "response_ms", "totalTime": "total_ms",
    "wireSize": "wire_size_bytes", "throughput": "throughput", "healthScore": "health_score",
}  # fmt: skip


Layer = Literal["network", "http-server"]
LAYERS: tuple[Layer, ...] = ("network", "http-server")


class ThousandEyesConfig(StrictModel):
    test_ids: list[str] = Field(default_factory=list, description="Default: every enabled test.")
    layers: list[Layer] = Field(default_factory=lambda: list(LAYERS))
    alerts: bool = True
    account_group_id: str | None = Field(None, description="Sent as `aid` on every call.")
    lookback_s: int = Field(900, ge=60, le=7 * 86400, description="Window of the first poll.")
    lag_s: int = Field(120, ge=0, le=3600, description="Leave this much recent time for late rounds.")
    timeout_s: float = Field(30.0, gt=0, le=120)


class ThousandEyesCredentials(StrictModel):
    token: str | None = Field(None, description="OAuth bearer token.")


def normalise_target(target: str | None) -> str:
    target = (target or "").strip().rstrip("/") or "https://api.thousandeyes.com/v7"
    if "://" not in target:
        target = f"https://{target}"
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"target: {target!r} is not an http(s) URL")
    return target if parts.path.endswith("/v7") else f"{target}/v7"


def _describe(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict):
            return str(body.get("detail") or body.get("error_description") or body.get("title") or body)
    except ValueError:
        pass
    return http.default_describe(response)


def _retry_after(response: httpx.Response) -> float | None:
    reset = response.headers.get("x-organization-rate-limit-reset")
    try:
        return max(0.0, float(reset) - time.time()) if reset else http.retry_after_header(response)
    except ValueError:
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(int(epoch_s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(item: dict[str, Any]) -> int:
    for key in ("roundId", "startTime"):
        if isinstance(item.get(key), int | float):
            return int(item[key]) * 1_000_000_000
    date = item.get("date")
    if isinstance(date, str):
        return int(datetime.fromisoformat(date.replace("Z", "+00:00")).timestamp() * 1e9)
    return time.time_ns()


def result_points(
    measurement: str, mapping: dict[str, str], test: dict[str, Any], results: list[dict[str, Any]]
) -> list[Point]:
    points = []
    for item in results:
        fields: dict[str, FieldValue] = {}
        for key, name in mapping.items():
            value = item.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                fields[name] = float(value)
        error = item.get("errorType")
        if measurement == "thousandeyes_http" and isinstance(error, str):
            fields["error"] = int(error.lower() not in ("none", ""))
            if error.lower() not in ("none", ""):
                fields["error_type"] = error
        if not fields:
            continue
        agent = _dict(item.get("agent"))
        tags = {
            "test_id": str(test.get("testId")),
            "test_name": str(test.get("testName") or test.get("testId")),
            "agent_id": str(agent.get("agentId") or ""),
            "agent_name": str(agent.get("agentName") or ""),
        }
        if item.get("server"):
            tags["server"] = str(item["server"])
        points.append(Point(measurement, fields, {k: v for k, v in tags.items() if v}, _when(item)))
    return points


def alert_signal(alert: dict[str, Any], resolved: bool) -> AlertSignal:
    alert_id = str(alert.get("id") or alert.get("alertId"))
    kind = str(alert.get("alertType") or "test")
    severity = SEVERITY.get(str(alert.get("alertSeverity") or "").lower(), "medium")
    app_link = _dict(_dict(alert.get("_links")).get("appLink")).get("href")
    start = alert.get("startDate")
    when = time.time_ns()
    if isinstance(start, str):
        when = int(datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() * 1e9)
    if resolved and isinstance(alert.get("endDate"), str):
        when = int(datetime.fromisoformat(str(alert["endDate"]).replace("Z", "+00:00")).timestamp() * 1e9)
    return AlertSignal(
        origin="external",
        title=f"ThousandEyes {kind} alert (rule {alert.get('alertRuleId')})",
        severity=severity,
        time_ns=when,
        description=f"{alert.get('violationCount', '?')} violation(s) since {start}",
        labels={"vendor": "thousandeyes", "alert_type": kind, "rule_id": str(alert.get("alertRuleId"))},
        annotations={"url": app_link} if app_link else {},
        fingerprint=f"thousandeyes:{alert_id}",
        resolved=resolved,
    )


class ThousandEyesCollector:
    name: ClassVar[str] = "thousandeyes"
    config_model: ClassVar[type[BaseModel]] = ThousandEyesConfig
    credentials_model: ClassVar[type[BaseModel]] = ThousandEyesCredentials

    def check(
        self, target: str | None, config: ThousandEyesConfig, credentials: ThousandEyesCredentials
    ) -> str:
        if not credentials.token:
            raise ValueError("credentials.token: required (an OAuth bearer token)")
        return normalise_target(target)

    async def collect(
        self,
        target: str,
        config: ThousandEyesConfig,
        credentials: ThousandEyesCredentials,
        state: dict[str, Any],
    ) -> CollectResult:
        end = int(time.time()) - config.lag_s
        previous_end = state.get("end")
        start = previous_end if isinstance(previous_end, int) else end - config.lookback_s
        start = max(start, end - 7 * 86400)  # the API keeps a limited history
        result = CollectResult(new_state={**state, "end": end})
        if start >= end:
            return result
        window = {"startDate": iso(start), "endDate": iso(end)}
        base_params = {"aid": config.account_group_id} if config.account_group_id else {}
        async with http.client(
            target + "/",
            timeout_s=config.timeout_s,
            headers={"Authorization": f"Bearer {credentials.token}", "Accept": "application/json"},
        ) as client:
            tests = await self._tests(client, config, base_params)
            for test in tests:
                test_id = str(test.get("testId"))
                kind = str(test.get("type") or "")
                if "network" in config.layers and kind in NETWORK_TYPES:
                    rows = await self._pages(
                        client, f"test-results/{test_id}/network", {**base_params, **window}
                    )
                    result.points.extend(result_points("thousandeyes_network", NETWORK_FIELDS, test, rows))
                if "http-server" in config.layers and kind == "http-server":
                    rows = await self._pages(
                        client, f"test-results/{test_id}/http-server", {**base_params, **window}
                    )
                    result.points.extend(result_points("thousandeyes_http", HTTP_FIELDS, test, rows))
            if config.alerts:
                active: set[str] = set(state.get("active_alerts") or [])
                triggered = await self._pages(
                    client, "alerts", {**base_params, **window, "state": "trigger"}, "alerts"
                )
                cleared = await self._pages(
                    client, "alerts", {**base_params, **window, "state": "clear"}, "alerts"
                )
                cleared_ids = {str(a.get("id")) for a in cleared}
                for alert in triggered:
                    alert_id = str(alert.get("id"))
                    if alert_id not in active and alert_id not in cleared_ids:
                        result.alert_signals.append(alert_signal(alert, resolved=False))
                        active.add(alert_id)
                for alert in cleared:
                    result.alert_signals.append(alert_signal(alert, resolved=True))
                    active.discard(str(alert.get("id")))
                result.new_state["active_alerts"] = sorted(active)
        return result

    async def _tests(
        self, client: httpx.AsyncClient, config: ThousandEyesConfig, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        tests = await self._pages(client, "tests", params, "tests")
        if config.test_ids:
            wanted = set(config.test_ids)
            found = [t for t in tests if str(t.get("testId")) in wanted]
            missing = wanted - {str(t.get("testId")) for t in found}
            if missing:
                raise CollectError(f"config.test_ids: no such test {', '.join(sorted(missing))}")
            return found
        return [t for t in tests if t.get("enabled", True)]

    async def _pages(
        self, client: httpx.AsyncClient, path: str, params: dict[str, Any], key: str = "results"
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = path
        request_params: dict[str, Any] | None = params
        for _ in range(MAX_PAGES):
            if url is None:
                break
            response = await http.send(
                client, "GET", url, params=request_params, describe=_describe, retry_after=_retry_after
            )
            body = http.json_body(response)
            if not isinstance(body, dict):
                raise CollectError(f"GET {path} did not answer a JSON object")
            items.extend(i for i in body.get(key) or [] if isinstance(i, dict))
            following = _dict(_dict(body.get("_links")).get("next")).get("href")
            url = following if isinstance(following, str) and following else None
            request_params = None  # the next link carries every parameter, cursor included
        return items


register(ThousandEyesCollector(), "ThousandEyes API v7: network and HTTP test results, alerts")
