"""Splunk collector: saved searches run over the REST API, results as logs or metrics.

Two ways to run a search, per search:
- ``job`` (default): ``POST /services/search/jobs`` → sid; poll the job until ``isDone``
  (``dispatchState`` DONE, or FAILED → error); page ``/results`` with ``offset``/``count``;
  delete the job.
- ``export``: ``POST /services/search/jobs/export``, newline-delimited JSON streamed back; only
  final rows (``preview: false``) are kept.

Windows do not overlap (Splunk events carry no id to de-duplicate by): each poll searches
``[end of last window, now - lag_s)``, so events indexed more than ``lag_s`` late are missed —
raise ``lag_s`` for slow indexers. Auth: a bearer token, or basic auth with a user and password.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import BaseModel, Field, field_validator

from vigil.collectors import http
from vigil.collectors.base import CollectError, CollectResult, StrictModel, register
from vigil.domain.logs import LogRecord, normalise_level
from vigil.domain.metrics import FieldValue, Point

INTERNAL_FIELDS = frozenset(
    {"_raw", "_time", "_cd", "_bkt", "_si", "_serial", "_indextime", "_sourcetype", "_subsecond",
     "splunk_server", "linecount", "punct", "timestartpos", "timeendpos", "date_hour", "date_mday",
     "date_minute", "date_month", "date_second", "date_wday", "date_year", "date_zone", "eventtype"}
)  # fmt: skip


class SplunkSearch(StrictModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    search: str = Field(min_length=1, description="Starts with 'search ' or a generating command '| …'.")
    mode: Literal["job", "export"] = "job"
    output: Literal["logs", "metrics"] = "logs"
    measurement: str | None = Field(None, description="Metrics output; default splunk_<name>.")
    tag_fields: list[str] | None = Field(
        None, description="Metrics output: fields that become tags (default: every non-numeric field)."
    )
    message_field: str = "_raw"
    host_field: str = "host"
    service_field: str = "sourcetype"
    level_field: str | None = None

    @field_validator("search")
    @classmethod
    def _starts(cls, v: str) -> str:
        text = v.strip()
        if not (text.startswith("search ") or text.startswith("|")):
            raise ValueError("must start with 'search ' or a generating command such as '| tstats'")
        return text


class SplunkConfig(StrictModel):
    searches: list[SplunkSearch] = Field(min_length=1, max_length=20)
    verify_tls: bool = True
    timeout_s: float = Field(60.0, gt=0, le=600, description="Whole search, per search.")
    lookback_s: int = Field(600, ge=10, le=86400, description="Window of the first poll.")
    lag_s: int = Field(60, ge=0, le=3600, description="Leave this much recent time for late indexing.")
    page_size: int = Field(1000, ge=1, le=50000)
    max_results: int = Field(50000, ge=1, le=500000)
    job_poll_s: float = Field(0.5, gt=0, le=30)


class SplunkCredentials(StrictModel):
    token: str | None = Field(None, description="Splunk authentication token (JWT).")
    username: str | None = None
    password: str | None = None


def normalise_target(target: str | None) -> str:
    target = (target or "").strip().rstrip("/")
    if not target:
        raise ValueError("target: the Splunk management URL is required, e.g. https://splunk:8089")
    if "://" not in target:
        target = f"https://{target}"
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"target: {target!r} is not an http(s) URL")
    return target.removesuffix("/services")


def _describe(response: httpx.Response) -> str:
    try:
        messages = response.json().get("messages")
        if isinstance(messages, list) and messages:
            return "; ".join(f"{m.get('type')}: {m.get('text')}" for m in messages if isinstance(m, dict))
    except (ValueError, AttributeError):
        pass
    return http.default_describe(response)


def parse_time(value: Any) -> int | None:
    """Splunk's ``_time``: ISO 8601 with offset (JSON output) or epoch seconds."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return int(float(text) * 1e9)
    except ValueError:
        pass
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)


def to_logs(rows: list[dict[str, Any]], search: SplunkSearch, now_ns: int) -> list[LogRecord]:
    out = []
    for row in rows:
        message = row.get(search.message_field)
        if message is None:
            continue
        level = row.get(search.level_field) if search.level_field else None
        mapped = (search.message_field, search.host_field, search.service_field)
        attributes = {k: v for k, v in row.items() if k not in INTERNAL_FIELDS and k not in mapped}
        attributes["splunk_search"] = search.name
        out.append(
            LogRecord(
                time_ns=parse_time(row.get("_time")) or now_ns,
                message=_text(message),
                host=_text(row[search.host_field]) if row.get(search.host_field) else None,
                service=_text(row[search.service_field]) if row.get(search.service_field) else None,
                level=normalise_level(_text(level)) if level else None,
                attributes=attributes,
            )
        )
    return out


def to_points(rows: list[dict[str, Any]], search: SplunkSearch, now_ns: int) -> list[Point]:
    measurement = search.measurement or f"splunk_{search.name}"
    out = []
    for row in rows:
        fields: dict[str, FieldValue] = {}
        tags: dict[str, str] = {}
        for key, value in row.items():
            if key in INTERNAL_FIELDS or key.startswith("__"):
                continue
            number = _number(value)
            as_tag = key in search.tag_fields if search.tag_fields is not None else number is None
            if as_tag:
                tags[key] = _text(value)
            elif number is not None:
                fields[key] = number
        if fields:
            out.append(Point(measurement, fields, tags, parse_time(row.get("_time")) or now_ns))
    return out


class SplunkCollector:
    name: ClassVar[str] = "splunk"
    config_model: ClassVar[type[BaseModel]] = SplunkConfig
    credentials_model: ClassVar[type[BaseModel]] = SplunkCredentials

    def check(self, target: str | None, config: SplunkConfig, credentials: SplunkCredentials) -> str:
        base = normalise_target(target)
        if not credentials.token and not (credentials.username and credentials.password):
            raise ValueError("credentials.token: give a token, or credentials.username and password")
        names = [s.name for s in config.searches]
        if len(set(names)) != len(names):
            raise ValueError("config.searches: names must be unique")
        return base

    async def collect(
        self, target: str, config: SplunkConfig, credentials: SplunkCredentials, state: dict[str, Any]
    ) -> CollectResult:
        now = time.time()
        latest = int(now - config.lag_s)
        windows: dict[str, int] = dict(state.get("latest") or {})
        headers = {"Accept": "application/json"}
        auth: tuple[str, str] | None = None
        if credentials.token:
            headers["Authorization"] = f"Bearer {credentials.token}"
        else:
            auth = (credentials.username or "", credentials.password or "")
        result = CollectResult()
        now_ns = int(now * 1e9)
        async with http.client(
            target, timeout_s=config.timeout_s, verify_tls=config.verify_tls, headers=headers, auth=auth
        ) as client:
            for search in config.searches:
                earliest = windows.get(search.name, latest - config.lookback_s)
                if earliest >= latest:
                    continue
                runner = self._export if search.mode == "export" else self._job
                try:
                    rows = await asyncio.wait_for(
                        runner(client, config, search, earliest, latest), timeout=config.timeout_s
                    )
                except TimeoutError:
                    raise CollectError(
                        f"search {search.name!r} did not finish within {config.timeout_s:.0f}s"
                    ) from None
                if search.output == "logs":
                    result.logs.extend(to_logs(rows, search, now_ns))
                else:
                    result.points.extend(to_points(rows, search, now_ns))
                windows[search.name] = latest
        result.new_state = {"latest": windows}
        return result

    async def _job(
        self,
        client: httpx.AsyncClient,
        config: SplunkConfig,
        search: SplunkSearch,
        earliest: int,
        latest: int,
    ) -> list[dict[str, Any]]:
        created = await http.send(
            client,
            "POST",
            "/services/search/jobs",
            data={
                "search": search.search,
                "earliest_time": str(earliest),
                "latest_time": str(latest),
                "exec_mode": "normal",
                "output_mode": "json",
                "max_count": str(config.max_results),
            },
            describe=_describe,
            ok=(200, 201),
        )
        sid = http.json_body(created).get("sid")
        if not isinstance(sid, str) or not sid:
            raise CollectError("POST /services/search/jobs answered without a sid")
        try:
            while True:
                job = http.json_body(
                    await http.send(
                        client,
                        "GET",
                        f"/services/search/jobs/{sid}",
                        params={"output_mode": "json"},
                        describe=_describe,
                    )
                )
                content = ((job.get("entry") or [{}])[0]).get("content") or {}
                if content.get("dispatchState") == "FAILED" or content.get("isFailed"):
                    messages = content.get("messages") or []
                    raise CollectError(f"search {search.name!r} failed: {messages or 'dispatchState FAILED'}")
                if content.get("isDone"):
                    break
                await asyncio.sleep(config.job_poll_s)
            rows: list[dict[str, Any]] = []
            while len(rows) < config.max_results:
                response = await http.send(
                    client,
                    "GET",
                    f"/services/search/jobs/{sid}/results",
                    params={"output_mode": "json", "offset": len(rows), "count": config.page_size},
                    describe=_describe,
                    ok=(200, 204),
                )
                if response.status_code == 204:  # not ready after all; the job said done, so wait
                    await asyncio.sleep(config.job_poll_s)
                    continue
                page = http.json_body(response).get("results") or []
                rows.extend(r for r in page if isinstance(r, dict))
                if len(page) < config.page_size:
                    break
            return rows[: config.max_results]
        finally:
            # Free the job's disk and search slot on the search head (best effort).
            with contextlib.suppress(httpx.HTTPError):
                await client.delete(f"/services/search/jobs/{sid}", params={"output_mode": "json"})

    async def _export(
        self,
        client: httpx.AsyncClient,
        config: SplunkConfig,
        search: SplunkSearch,
        earliest: int,
        latest: int,
    ) -> list[dict[str, Any]]:
        form = {
            "search": search.search,
            "earliest_time": str(earliest),
            "latest_time": str(latest),
            "output_mode": "json",
        }
        rows: list[dict[str, Any]] = []
        try:
            async with client.stream("POST", "/services/search/jobs/export", data=form) as response:
                if response.status_code != 200:
                    await response.aread()
                    if response.status_code == 429:
                        raise CollectError(
                            f"rate limited by Splunk: {_describe(response)}",
                            retry_after_s=http.retry_after_header(response) or 60.0,
                        )
                    raise CollectError(
                        f"{response.status_code} from {client.base_url.host}/services/search/jobs/export: "
                        f"{_describe(response)}"
                    )
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        item = orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        raise CollectError(f"export stream line is not JSON: {line[:120]!r}") from exc
                    if item.get("preview") or not isinstance(item.get("result"), dict):
                        for message in item.get("messages") or []:
                            if isinstance(message, dict) and message.get("type") in ("ERROR", "FATAL"):
                                raise CollectError(f"search {search.name!r} failed: {message.get('text')}")
                        continue
                    rows.append(item["result"])
                    if len(rows) >= config.max_results:
                        break
        except httpx.TimeoutException as exc:
            raise CollectError(f"export of {search.name!r} timed out") from exc
        except httpx.HTTPError as exc:
            raise CollectError(f"cannot reach {client.base_url.host}: {exc}") from exc
        return rows


register(SplunkCollector(), "Splunk searches (search jobs or export) as logs or metrics")
