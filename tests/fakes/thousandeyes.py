"""A local ThousandEyes API v7 (integrations.md §7): tests, test results and alerts.

- ``Authorization: Bearer <token>``; a wrong token → 401
  ``{"error":"invalid_token","error_description":"Invalid access token"}``.
- ``GET /v7/tests``; ``GET /v7/test-results/{id}/network`` and ``/http-server`` filtered by
  ``startDate``/``endDate`` (ISO 8601 UTC; ``window`` together with them → 400), on rounds
  (``roundId``, epoch seconds); ``GET /v7/alerts`` by ``state`` (trigger, the default, or clear).
- Pages of ``page_size`` items, linked by ``_links.next.href`` (an absolute URL carrying every
  parameter and an opaque ``cursor``), until absent.
- Errors are ``application/problem+json``; unknown test → 404.
- Rate limit: with ``rate_limit`` set, requests beyond it in the current minute answer 429 with
  ``X-Organization-Rate-Limit-Reset`` (epoch of the next minute) and no Retry-After;
  ``limit_after(n)`` refuses the request after the next ``n``, with the reset ``reset_in_s`` away.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.serving import ThreadedServer


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class FakeThousandEyes(ThreadedServer):
    def __init__(self, token: str = "te-token") -> None:
        super().__init__()
        self.token = token
        self.tests: list[dict[str, Any]] = []
        self.results: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (test id, layer) -> rows
        self.alerts: list[dict[str, Any]] = []
        self.page_size = 2
        self.rate_limit: int | None = None
        self.reset_in_s = 2.0  # how far away the next "minute" is when limited
        self._window_start = time.time()
        self._window_count = 0
        self._refuse: tuple[int, int] | None = None  # (requests still allowed, then refused)

    # --- data ----------------------------------------------------------------------------------

    def add_test(self, test_id: str, name: str, kind: str, *, enabled: bool = True) -> dict[str, Any]:
        test = {
            "testId": test_id,
            "testName": name,
            "type": kind,
            "interval": 60,
            "enabled": enabled,
            "alertsEnabled": True,
            "createdDate": "2024-01-10T09:00:00Z",
            "modifiedDate": "2024-01-10T09:00:00Z",
            "description": "",
            "liveShare": False,
            "savedEvent": False,
            "_links": {"self": {"href": f"{self.url}/v7/tests/{kind}/{test_id}"}},
        }
        self.tests.append(test)
        return test

    def add_network_round(self, test_id: str, round_id: int, agent: tuple[str, str], **values: float) -> None:
        self.results.setdefault((test_id, "network"), []).append(
            {
                "date": iso(round_id),
                "roundId": round_id,
                "startTime": round_id,
                "endTime": round_id + 60,
                "agent": {"agentId": agent[0], "agentName": agent[1], "countryId": "DE", "location": "x"},
                "serverIp": "203.0.113.10",
                "server": "api.example.com:443",
                "avgLatency": values.get("avgLatency", 21.3),
                "minLatency": values.get("minLatency", 20.9),
                "maxLatency": values.get("maxLatency", 23.0),
                "loss": values.get("loss", 0.0),
                "jitter": values.get("jitter", 0.4),
                "healthScore": values.get("healthScore", 0.98),
                "direction": "to-target",
            }
        )

    def add_http_round(self, test_id: str, round_id: int, agent: tuple[str, str], **values: Any) -> None:
        self.results.setdefault((test_id, "http-server"), []).append(
            {
                "date": iso(round_id),
                "roundId": round_id,
                "startTime": round_id,
                "endTime": round_id + 60,
                "agent": {"agentId": agent[0], "agentName": agent[1]},
                "serverIp": "203.0.113.10",
                "server": "api.example.com:443",
                "responseCode": values.get("responseCode", 200),
                "numRedirects": 0,
                "redirectTime": 0,
                "dnsTime": values.get("dnsTime", 3),
                "sslTime": values.get("sslTime", 12),
                "connectTime": values.get("connectTime", 9),
                "waitTime": values.get("waitTime", 40),
                "receiveTime": values.get("receiveTime", 2),
                "responseTime": values.get("responseTime", 66),
                "totalTime": values.get("totalTime", 70),
                "wireSize": 5120,
                "throughput": 73000,
                "errorType": values.get("errorType", "None"),
                "errorDetails": values.get("errorDetails", ""),
                "sslCipher": "TLS_AES_128_GCM_SHA256",
                "sslVersion": "TLSv1.3",
                "healthScore": 0.97,
                "headers": {},
            }
        )

    def add_alert(self, alert_id: str, *, state: str, start: float, end: float | None = None,
                  severity: str = "major", alert_type: str = "http-server") -> dict[str, Any]:  # fmt: skip
        alert = {
            "id": alert_id,
            "alertType": alert_type,
            "startDate": iso(start),
            "endDate": iso(end) if end is not None else None,
            "violationCount": 2,
            "duration": 300,
            "suppressed": False,
            "alertRuleId": "127094",
            "alertState": state,
            "alertSeverity": severity,
            "meta": {"version": 1},
            "_links": {"appLink": {"href": f"https://app.thousandeyes.com/alerts/{alert_id}"}},
            # Legacy duplicates some accounts still get: clients must ignore them.
            "alertId": alert_id,
            "state": "ACTIVE" if state == "trigger" else "CLEARED",
        }
        self.alerts.append(alert)
        return alert

    def limit_after(self, allowed: int, count: int = 1) -> None:
        """Let ``allowed`` more requests through, then answer the next ``count`` with 429."""
        self._refuse = (allowed, count)

    # --- the app -------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v7/tests", self._tests, methods=["GET"]),
                Route("/v7/test-results/{test_id}/{layer}", self._results, methods=["GET"]),
                Route("/v7/alerts", self._alerts, methods=["GET"]),
            ]
        )

    @staticmethod
    def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
        body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": "/v7"}
        return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)

    def _prelude(self, request: Request) -> JSONResponse | None:
        self.record(request)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                {"error": "invalid_token", "error_description": "Invalid access token"}, status_code=401
            )
        if self._refuse is not None:
            allowed, count = self._refuse
            if allowed > 0:
                self._refuse = (allowed - 1, count)
            else:
                self._refuse = (0, count - 1) if count > 1 else None
                reset = {"X-Organization-Rate-Limit-Reset": str(int(time.time() + self.reset_in_s))}
                return self._problem(429, "Too Many Requests", "Organization rate limit exceeded", reset)
        if self.rate_limit is not None:
            now = time.time()
            if now - self._window_start >= 60:
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            reset = int(now + self.reset_in_s)
            headers = {
                "X-Organization-Rate-Limit-Limit": str(self.rate_limit),
                "X-Organization-Rate-Limit-Remaining": str(max(0, self.rate_limit - self._window_count)),
                "X-Organization-Rate-Limit-Reset": str(reset),
            }
            if self._window_count > self.rate_limit:
                return self._problem(429, "Too Many Requests", "Organization rate limit exceeded", headers)
        return None

    def _window(self, request: Request) -> tuple[float, float] | JSONResponse:
        params = request.query_params
        if params.get("window") and (params.get("startDate") or params.get("endDate")):
            return self._problem(400, "Bad Request", "Use either window or startDate/endDate, not both")
        try:
            start = _parse(params["startDate"]) if params.get("startDate") else time.time() - 3600
            end = _parse(params["endDate"]) if params.get("endDate") else time.time()
        except ValueError:
            return self._problem(400, "Bad Request", "startDate/endDate must be ISO 8601 date-times")
        return start, end

    def _page(
        self, request: Request, key: str, items: list[dict[str, Any]], extra: dict[str, Any]
    ) -> JSONResponse:
        cursor = request.query_params.get("cursor")
        offset = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        chunk = items[offset : offset + self.page_size]
        links: dict[str, Any] = {"self": {"href": str(request.url)}}
        if offset + self.page_size < len(items):
            params = {k: v for k, v in request.query_params.items() if k != "cursor"}
            params["cursor"] = base64.urlsafe_b64encode(str(offset + self.page_size).encode()).decode()
            links["next"] = {"href": f"{self.url}{request.url.path}?{urlencode(params)}"}
        return JSONResponse({**extra, key: chunk, "_links": links})

    async def _tests(self, request: Request) -> JSONResponse:
        refused = self._prelude(request)
        if refused:
            return refused
        return self._page(request, "tests", self.tests, {})

    async def _results(self, request: Request) -> JSONResponse:
        refused = self._prelude(request)
        if refused:
            return refused
        test_id, layer = request.path_params["test_id"], request.path_params["layer"]
        test = next((t for t in self.tests if t["testId"] == test_id), None)
        if test is None:
            return self._problem(404, "Not Found", f"Test {test_id} not found")
        window = self._window(request)
        if isinstance(window, JSONResponse):
            return window
        start, end = window
        rows = [r for r in self.results.get((test_id, layer), []) if start <= r["roundId"] < end]
        extra = {
            "test": {"testId": test_id, "testName": test["testName"], "type": test["type"]},
            "startDate": iso(start),
            "endDate": iso(end),
        }
        return self._page(request, "results", rows, extra)

    async def _alerts(self, request: Request) -> JSONResponse:
        refused = self._prelude(request)
        if refused:
            return refused
        window = self._window(request)
        if isinstance(window, JSONResponse):
            return window
        start, end = window
        state = request.query_params.get("state", "trigger")
        if state not in ("trigger", "clear"):
            return self._problem(400, "Bad Request", "state must be trigger or clear")
        selected = []
        for alert in self.alerts:
            if alert["alertState"] != state:
                continue
            began = _parse(alert["startDate"])
            ended = _parse(alert["endDate"]) if alert["endDate"] else None
            if (state == "trigger" and began < end) or (
                state == "clear" and ended is not None and start <= ended < end
            ):
                selected.append(alert)
        return self._page(request, "alerts", selected, {})
