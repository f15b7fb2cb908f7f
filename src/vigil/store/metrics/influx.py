"""The metric store on InfluxDB, over its v1 HTTP API: line protocol in, InfluxQL out.

Works with InfluxDB 1.x, and with 2.x/3.x through their v1-compatible ``/write`` and ``/query``
endpoints (pass ``token``, and ``create_database=False`` where databases are made otherwise).
Every identifier and string literal in the InfluxQL we send is quoted and escaped, so names and
tag values from the outside cannot change a query's meaning.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from vigil.domain.metrics import MetricQuery, Point, Series
from vigil.ingest.line_protocol import LineProtocolError, format_point, parse_series_key
from vigil.store.metrics.base import MetricStoreError, MetricStoreUnavailable, check_bucket_count

_FUNCTIONS = {
    "mean": "MEAN",
    "min": "MIN",
    "max": "MAX",
    "last": "LAST",
    "count": "COUNT",
    "sum": "SUM",
    "percentile": "PERCENTILE",
}


def quote_identifier(name: str) -> str:
    """An InfluxQL identifier in double quotes (InfluxQL's string scanner knows the escapes
    ``\\\\``, ``\\"``, ``\\'`` and ``\\n``; a raw newline would end the string)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def quote_literal(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def influxql_for(query: MetricQuery, retention_policy: str | None = None) -> str:
    """The SELECT statement that answers a MetricQuery."""
    function = _FUNCTIONS.get(query.aggregation)
    if function is None:
        raise MetricStoreError(f"unknown aggregation {query.aggregation!r}")
    field = quote_identifier(query.field) + "::field"
    if query.aggregation == "percentile":
        if query.percentile is None:
            raise MetricStoreError("a percentile query needs `percentile`")
        rank = f"{float(query.percentile):.12f}".rstrip("0").rstrip(".")  # InfluxQL has no 1e-05
        expression = f"{function}({field}, {rank})"
    else:
        expression = f"{function}({field})"
    source = quote_identifier(query.measurement)
    if retention_policy:
        source = f"{quote_identifier(retention_policy)}.{source}"
    conditions = [f"time >= {int(query.start_ns)} AND time < {int(query.end_ns)}"]
    for key, values in query.where:
        if not values:
            raise MetricStoreError(f"where filter on {key!r} lists no values")
        tag = quote_identifier(key) + "::tag"
        conditions.append("(" + " OR ".join(f"{tag} = {quote_literal(v)}" for v in values) + ")")
    statement = f"SELECT {expression} FROM {source} WHERE {' AND '.join(conditions)}"
    groups = [quote_identifier(key) for key in query.group_by]
    if query.interval_s is not None:
        check_bucket_count(query)
        groups.insert(0, f"time({int(query.interval_s)}s)")
    if groups:
        statement += " GROUP BY " + ", ".join(groups)
    if query.interval_s is not None:
        statement += " fill(null)"
    return statement


class InfluxMetricStore:
    """MetricStore on InfluxDB's v1 HTTP API."""

    def __init__(
        self,
        url: str,
        database: str,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        *,
        retention_policy: str | None = None,
        create_database: bool = True,
        batch_size: int = 5000,
        gzip_min_bytes: int = 1 << 20,
        timeout_s: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        self.create_database = create_database
        self.batch_size = batch_size
        self.gzip_min_bytes = gzip_min_bytes
        headers = {"Accept": "application/json"}
        auth: httpx.BasicAuth | None = None
        if token:
            headers["Authorization"] = f"Token {token}"  # 2.x/3.x v1 compatibility, 1.8+
        elif username is not None:
            auth = httpx.BasicAuth(username, password or "")
        self._client = httpx.AsyncClient(base_url=self.url, headers=headers, auth=auth, timeout=timeout_s)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.ping()
        if self.create_database:
            try:
                await self._query(f"CREATE DATABASE {quote_identifier(self.database)}")
            except MetricStoreError as exc:
                if "HTTP 401" in str(exc) or "HTTP 403" in str(exc):
                    raise
                raise MetricStoreError(
                    f"{exc}; if databases are managed elsewhere (InfluxDB 2.x/3.x), use create_database=False"
                ) from exc

    async def close(self) -> None:
        await self._client.aclose()

    async def ping(self) -> None:
        response = await self._send("GET", "/ping")
        if response.status_code not in (200, 204):
            raise MetricStoreUnavailable(
                f"InfluxDB at {self.url} answered /ping with HTTP {response.status_code}"
            )

    # --- writes ----------------------------------------------------------------------------

    async def write(self, points: Sequence[Point]) -> None:
        """Write in batches of ``batch_size`` lines. Points that line protocol cannot carry and
        points InfluxDB refuses are reported together in one MetricStoreError after everything
        else has been written (InfluxDB keeps the good points of a partial write)."""
        problems: list[str] = []
        lines: list[str] = []
        for point in points:
            try:
                lines.append(format_point(point))
            except LineProtocolError as exc:
                problems.append(str(exc))
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        for start in range(0, len(lines), self.batch_size):
            body = "\n".join(lines[start : start + self.batch_size]).encode()
            headers = {"Content-Type": "text/plain; charset=utf-8"}
            if len(body) >= self.gzip_min_bytes:
                body = gzip.compress(body, compresslevel=1)
                headers["Content-Encoding"] = "gzip"
            response = await self._send("POST", "/write", params=params, content=body, headers=headers)
            if response.status_code != 204:
                problems.append(_error_message(response))
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise MetricStoreError(f"InfluxDB write to {self.database!r} incomplete: {shown}")

    async def write_line_protocol(self, body: str) -> None:
        """Write a line-protocol body as it is: nanosecond timestamps, already validated (the
        ingest API's fast path, see ``vigil.domain.codec``), so nothing is parsed or formatted
        here. Raises MetricStoreError with InfluxDB's answer when it refuses any of it (a
        partial write keeps the good points)."""
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        data = body.encode()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if len(data) >= self.gzip_min_bytes:
            data = gzip.compress(data, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        response = await self._send("POST", "/write", params=params, content=data, headers=headers)
        if response.status_code != 204:
            raise MetricStoreError(
                f"InfluxDB write to {self.database!r} incomplete: {_error_message(response)}"
            )

    async def delete_before(self, time_ns: int) -> None:
        await self._query(f"DELETE WHERE time < {int(time_ns)}")

    # --- queries ---------------------------------------------------------------------------

    async def query(self, query: MetricQuery) -> list[Series]:
        statement = influxql_for(query, self.retention_policy)
        out: list[Series] = []
        for raw in await self._query(statement):
            tags = {key: raw.get("tags", {}).get(key, "") for key in query.group_by}
            rows = raw.get("values", ())
            times: list[int] = [row[0] for row in rows]
            values: list[Any] = [row[1] for row in rows]
            kinds = set(map(type, values))
            if not kinds <= _FLOAT_OR_NONE:  # JSON has no float/int distinction: 5.0 arrives as 5
                values = [_number(value, query) for value in values]
            if query.interval_s is None:
                times = [query.start_ns] * len(times)  # selectors report the chosen point's time
            out.append(Series(query.measurement, query.field, tags, times, values))
        return out

    async def measurements(self) -> list[str]:
        rows = await self._rows("SHOW MEASUREMENTS")
        return sorted(row[0] for row in rows)

    async def field_keys(self, measurement: str) -> list[str]:
        rows = await self._rows(f"SHOW FIELD KEYS FROM {self._source(measurement)}")
        return sorted(row[0] for row in rows)

    async def tag_keys(self, measurement: str) -> list[str]:
        rows = await self._rows(f"SHOW TAG KEYS FROM {self._source(measurement)}")
        return sorted(row[0] for row in rows)

    async def tag_values(self, measurement: str, key: str) -> list[str]:
        rows = await self._rows(
            f"SHOW TAG VALUES FROM {self._source(measurement)} WITH KEY = {quote_identifier(key)}"
        )
        return sorted(row[1] for row in rows)

    async def series(self, measurement: str) -> list[dict[str, str]]:
        rows = await self._rows(f"SHOW SERIES FROM {self._source(measurement)}")
        found = []
        for row in rows:
            name, tags = parse_series_key(row[0])
            if name == measurement:
                found.append(tags)
        return sorted(found, key=lambda tags: sorted(tags.items()))

    # --- HTTP ------------------------------------------------------------------------------

    def _source(self, measurement: str) -> str:
        source = quote_identifier(measurement)
        if self.retention_policy:
            source = f"{quote_identifier(self.retention_policy)}.{source}"
        return source

    async def _rows(self, statement: str) -> list[list[Any]]:
        rows: list[list[Any]] = []
        for raw in await self._query(statement):
            rows.extend(raw.get("values", ()))
        return rows

    async def _query(self, statement: str) -> list[dict[str, Any]]:
        """Run one statement; return its series, chunks merged. POST, so that long statements
        fit (GET cannot run CREATE or DELETE anyway); chunked, so that no row limit truncates a
        result. Statement errors come back inside HTTP 200 bodies and are raised here."""
        params = {
            "db": self.database,
            "q": statement,
            "epoch": "ns",
            "chunked": "true",
            "chunk_size": "50000",
        }
        response = await self._send("POST", "/query", data=params)
        if response.status_code != 200:
            raise MetricStoreError(f"InfluxDB query failed: {_error_message(response)}")
        series: list[dict[str, Any]] = []
        by_key: dict[tuple[str, bytes], dict[str, Any]] = {}
        for document in response.content.splitlines():
            if not document.strip():
                continue
            try:
                decoded = orjson.loads(document)
            except orjson.JSONDecodeError as exc:
                raise MetricStoreError(f"InfluxDB answered with invalid JSON: {exc}") from None
            if "error" in decoded:
                raise MetricStoreError(f"InfluxDB query failed: {decoded['error']}")
            for result in decoded.get("results", ()):
                if "error" in result:
                    raise MetricStoreError(f"InfluxDB query failed: {result['error']} (in: {statement})")
                for raw in result.get("series", ()):
                    # A chunked series continues in the next document under the same name and tags.
                    key = (raw.get("name", ""), orjson.dumps(raw.get("tags"), option=orjson.OPT_SORT_KEYS))
                    previous = by_key.get(key)
                    if previous is not None:
                        previous["values"].extend(raw.get("values", ()))
                    else:
                        raw.setdefault("values", [])
                        by_key[key] = raw
                        series.append(raw)
        return series

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise MetricStoreUnavailable(
                f"InfluxDB at {self.url} is unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code == 503:
            raise MetricStoreUnavailable(f"InfluxDB at {self.url} is unavailable: {_error_message(response)}")
        return response


def _error_message(response: httpx.Response) -> str:
    """InfluxDB's ``{"error": ...}`` (v1) or ``{"message": ...}`` (v2) body, or the raw text."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        message = body.get("error") or body.get("message")
        if message:
            return f"HTTP {response.status_code}: {message}"
    text = response.text.strip()[:300]
    return f"HTTP {response.status_code}: {text or response.reason_phrase}"


_FLOAT_OR_NONE = {float, type(None)}


def _number(value: Any, query: MetricQuery) -> float | None:
    if value is None or type(value) is float:
        return value
    if isinstance(value, bool | int):
        return float(value)
    raise MetricStoreError(
        f"field {query.field!r} of {query.measurement!r} holds {type(value).__name__} values; "
        "only numeric and boolean fields can be queried"
    )
