"""A local Datadog API (integrations.md §5): metric queries and events v1, as the real one answers.

- ``GET /api/v1/validate`` (API key only), ``GET /api/v1/query`` and ``GET /api/v1/events``
  (API key *and* application key; otherwise 403 ``{"errors": ["Forbidden"]}``).
- Query requests take Unix seconds; every time in a response is milliseconds, ``pointlist``
  pairs are ``[float ms, value | null]``; no match → ``"series": []``. Queries are evaluated for
  real over the stored points: ``aggr:metric{scope} by {tags}`` filters on the scope tags and
  groups by the ``by`` tags (avg/sum/min/max).
- Events: filtered by ``start``/``end`` (required) and ``priority``/``sources``/``tags``,
  newest first, pages of 1000 (``page`` is 0-based).
- Rate limits: with ``rate_limit`` set, the query endpoint answers 429 once that many requests
  were made in the current period, with the ``X-RateLimit-*`` headers on every answer.
- ``delay_s`` slows every answer (to catch a poller mid-request).

    with FakeDatadog() as dd:
        dd.add_series("system.cpu.user", {"host": "web1", "env": "prod"}, [(t, 12.5), ...])
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.serving import ThreadedServer

EVENTS_PAGE = 1000
_QUERY = re.compile(r"^\s*(?:(avg|sum|min|max):)?([A-Za-z0-9_.]+)\s*\{([^}]*)\}\s*(?:by\s*\{([^}]*)\})?\s*$")


@dataclass
class FakeSeries:
    metric: str
    tags: dict[str, str]
    points: list[tuple[float, float | None]] = field(default_factory=list)  # (unix seconds, value)


class FakeDatadog(ThreadedServer):
    def __init__(self, api_key: str = "dd-api-key", app_key: str = "dd-app-key") -> None:
        super().__init__()
        self.api_key, self.app_key = api_key, app_key
        self.series: list[FakeSeries] = []
        self.events: list[dict[str, Any]] = []
        self.rate_limit: int | None = None
        self.rate_period_s = 60
        self.delay_s = 0.0
        self._period_start = time.time()
        self._period_count = 0

    # --- data ----------------------------------------------------------------------------------

    def add_series(self, metric: str, tags: dict[str, str], points: list[tuple[float, float | None]]) -> None:
        self.series.append(FakeSeries(metric, dict(tags), list(points)))

    def add_recent_series(
        self, metric: str, tags: dict[str, str], *, seconds: int = 3600, step: int = 20, value: float = 1.0
    ) -> None:
        """A series with a point every ``step`` s over the last ``seconds`` (and an hour ahead,
        so long tests keep finding fresh points)."""
        now = int(time.time()) // step * step
        points = [(float(t), value + math.sin(t / 300)) for t in range(now - seconds, now + 3600, step)]
        self.add_series(metric, tags, points)

    def add_event(self, title: str, *, date_happened: int | None = None, **extra: Any) -> dict[str, Any]:
        event_id = 1000 + len(self.events)
        event = {
            "id": event_id,
            "id_str": str(event_id),
            "title": title,
            "text": extra.pop("text", ""),
            "date_happened": date_happened or int(time.time()),
            "alert_type": extra.pop("alert_type", "info"),
            "priority": extra.pop("priority", "normal"),
            "host": extra.pop("host", None),
            "device_name": None,
            "source_type_name": extra.pop("source_type_name", "my apps"),
            "tags": extra.pop("tags", []),
            "url": f"/event/event?id={event_id}",
            "payload": "{}",
            **extra,
        }
        self.events.append(event)
        return event

    def query_calls(self, query: str | None = None) -> list[Any]:
        return [r for r in self.calls("/api/v1/query") if query is None or r.params.get("query") == query]

    # --- the app -------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/validate", self._validate, methods=["GET"]),
                Route("/api/v1/query", self._query, methods=["GET"]),
                Route("/api/v1/events", self._events, methods=["GET"]),
            ]
        )

    @staticmethod
    def _error(status: int, *errors: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"errors": list(errors)}, status_code=status, headers=headers)

    async def _prelude(self, request: Request, app_key: bool = True) -> JSONResponse | None:
        self.record(request)
        if self.delay_s:
            await anyio.sleep(self.delay_s)
        if request.headers.get("dd-api-key") != self.api_key:
            return self._error(403, "Forbidden")
        if app_key and request.headers.get("dd-application-key") != self.app_key:
            return self._error(403, "Forbidden")
        return None

    def _rate_headers(self) -> tuple[dict[str, str], bool]:
        if self.rate_limit is None:
            return {}, False
        now = time.time()
        if now - self._period_start >= self.rate_period_s:
            self._period_start, self._period_count = now, 0
        self._period_count += 1
        reset = max(0, math.ceil(self._period_start + self.rate_period_s - now))
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Period": str(self.rate_period_s),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - self._period_count)),
            "X-RateLimit-Reset": str(reset),
            "X-RateLimit-Name": "query",
        }
        return headers, self._period_count > self.rate_limit

    async def _validate(self, request: Request) -> JSONResponse:
        refused = await self._prelude(request, app_key=False)
        return refused or JSONResponse({"valid": True})

    async def _query(self, request: Request) -> JSONResponse:
        refused = await self._prelude(request)
        if refused:
            return refused
        headers, limited = self._rate_headers()
        if limited:
            return self._error(429, "Rate limit of 300 requests in 3600 seconds reached.", headers=headers)
        params = request.query_params
        missing = [p for p in ("from", "to", "query") if not params.get(p)]
        if missing:
            return self._error(400, f"The following parameters are required: {', '.join(missing)}")
        try:
            start, end = int(params["from"]), int(params["to"])
        except ValueError:
            return self._error(400, "from and to must be integers (Unix seconds)")
        match = _QUERY.match(params["query"])
        if not match:
            return self._error(400, f"Error parsing query: {params['query']}")
        aggr, metric, scope, by = match.groups()
        aggr = aggr or "avg"
        filters = [t.strip() for t in scope.split(",") if t.strip() and t.strip() != "*"]
        group_keys = [t.strip() for t in (by or "").split(",") if t.strip()]
        groups: dict[tuple[str, ...], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for series in self.series:
            if series.metric != metric:
                continue
            if not all(_tag_matches(series.tags, f) for f in filters):
                continue
            key = tuple(f"{k}:{series.tags.get(k, 'N/A')}" for k in group_keys)
            for ts, value in series.points:
                if not start <= ts <= end:
                    continue
                bucket = groups[key][ts]  # a null value still yields the timestamp, as null
                if value is not None:
                    bucket.append(value)
        out = []
        for key, by_time in sorted(groups.items()):
            pointlist = []
            for ts in sorted(by_time):
                values = by_time[ts]
                pointlist.append([ts * 1000.0, _aggregate(aggr, values)])
            scope_tags = filters + list(key)
            out.append(
                {
                    "metric": metric,
                    "display_name": metric,
                    "scope": ",".join(scope_tags) or "*",
                    "tag_set": list(key),
                    "expression": f"{aggr}:{metric}{{{','.join(scope_tags) or '*'}}}",
                    "aggr": aggr,
                    "pointlist": pointlist,
                    "start": int(pointlist[0][0]) if pointlist else start * 1000,
                    "end": int(pointlist[-1][0]) if pointlist else end * 1000,
                    "interval": 20,
                    "length": len(pointlist),
                    "query_index": 0,
                    "unit": None,
                }
            )
        body = {
            "status": "ok",
            "res_type": "time_series",
            "resp_version": 1,
            "query": params["query"],
            "from_date": start * 1000,
            "to_date": end * 1000,
            "group_by": group_keys,
            "message": "",
            "series": out,
        }
        return JSONResponse(body, headers=headers)

    async def _events(self, request: Request) -> JSONResponse:
        refused = await self._prelude(request)
        if refused:
            return refused
        params = request.query_params
        if not params.get("start") or not params.get("end"):
            return self._error(400, "The following parameters are required: start, end")
        try:
            start, end, page = int(params["start"]), int(params["end"]), int(params.get("page", "0"))
        except ValueError:
            return self._error(400, "start, end and page must be integers")
        tags = [t for t in params.get("tags", "").split(",") if t]
        sources = [s.strip().lower() for s in params.get("sources", "").split(",") if s.strip()]
        selected = [
            e
            for e in self.events
            if start <= e["date_happened"] <= end
            and (not params.get("priority") or e["priority"] == params["priority"])
            and (not sources or str(e["source_type_name"]).lower() in sources)
            and all(t in e["tags"] for t in tags)
        ]
        selected.sort(key=lambda e: (e["date_happened"], e["id"]), reverse=True)
        chunk = selected[page * EVENTS_PAGE : (page + 1) * EVENTS_PAGE]
        return JSONResponse({"status": "ok", "events": chunk})


def _tag_matches(tags: dict[str, str], condition: str) -> bool:
    key, sep, value = condition.partition(":")
    if condition.startswith("!"):
        return not _tag_matches(tags, condition[1:])
    return tags.get(key) == value if sep else key in tags


def _aggregate(aggr: str, values: list[float]) -> float | None:
    if not values:
        return None
    if aggr == "sum":
        return float(sum(values))
    if aggr == "min":
        return float(min(values))
    if aggr == "max":
        return float(max(values))
    return float(sum(values) / len(values))
