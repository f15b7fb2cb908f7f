"""Log search: full text with filters and highlights, one line, context, export, semantic search.

Search language (``q``): words (all must appear), ``"quoted phrases"``, ``-excluded``, ``a OR b``,
``prefix*`` (SQLite). Results are newest first; pass ``next_cursor`` back as ``cursor``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from vigil.analytics.logclassify import FAILURE_TYPES, SEVERITIES
from vigil.api.auth import Reader, backends_of
from vigil.api.pagination import decode_cursor, encode_cursor
from vigil.api.problems import Problem
from vigil.llm.embedder_factory import build_embedder
from vigil.llm.embeddings import Embedder
from vigil.logs import search as logsearch
from vigil.logs.search import LogFilters, QueryError
from vigil.logs.semantic import similar_lines

router = APIRouter(prefix="/api/v1/logs", tags=["logs"])

Level = Literal["debug", "info", "notice", "warning", "error", "critical"]
FailureType = Literal[
    "disk_space", "out_of_memory", "service_crash", "auth_failure", "network", "timeout",
    "config_error", "hardware", "dependency_down", "none",
]  # fmt: skip
Severity = Literal["critical", "high", "medium", "low"]
assert set(FailureType.__args__) == set(FAILURE_TYPES)  # type: ignore[attr-defined]
assert set(Severity.__args__) == set(SEVERITIES)  # type: ignore[attr-defined]

EXPORT_COLUMNS = ("id", "time", "source", "host", "service", "os", "level", "template_id", "message")


def _ns(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000) * 1000


def log_filters(
    q: str | None = Query(None, max_length=1000, description='Words, "phrases", -excluded, a OR b'),
    host: list[str] | None = Query(None),
    service: list[str] | None = Query(None),
    source: list[str] | None = Query(None),
    os: list[str] | None = Query(None),
    level: list[Level] | None = Query(None),
    severity: list[Severity] | None = Query(None, description="Severity of the line's template"),
    failure_type: list[FailureType] | None = Query(None),
    template_id: int | None = Query(None, description="A cluster (merged templates included)"),
    start: datetime | None = Query(None, description="From (inclusive), ISO 8601"),
    end: datetime | None = Query(None, description="To (exclusive), ISO 8601"),
) -> LogFilters:
    start_ns, end_ns = _ns(start), _ns(end)
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise Problem(422, "end: must be after start")
    return LogFilters(
        q=q,
        hosts=tuple(host or ()),
        services=tuple(service or ()),
        sources=tuple(source or ()),
        oses=tuple(os or ()),
        levels=tuple(level or ()),
        severities=tuple(severity or ()),
        failure_types=tuple(failure_type or ()),
        template_id=template_id,
        start_ns=start_ns,
        end_ns=end_ns,
    )


Filters = Annotated[LogFilters, Depends(log_filters)]


def _after(cursor: str | None) -> tuple[int, int] | None:
    values = decode_cursor(cursor)
    if values is None:
        return None
    try:
        time_ns, line_id = (int(v) for v in values)
    except (TypeError, ValueError):
        raise Problem(400, "cursor: not a cursor returned by this API") from None
    return time_ns, line_id


def embedder_of(request: Request) -> Embedder:
    """The configured embedder, built once per app (a local model loads on first use)."""
    embedder: Embedder | None = getattr(request.app.state, "log_embedder", None)
    if embedder is None:
        embedder = build_embedder(backends_of(request).settings)
        request.app.state.log_embedder = embedder
    return embedder


@router.get("", summary="Search log lines (full text + filters), newest first")
async def search_logs(
    request: Request,
    _: Reader,
    filters: Filters,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
    highlight: bool = Query(True, description="Add 'highlight': the message HTML-escaped, matches in <mark>"),
) -> dict[str, Any]:
    try:
        items, next_key = await logsearch.search(
            backends_of(request).db, filters, limit=limit, after=_after(cursor), highlight=highlight
        )
    except QueryError as exc:
        raise Problem(422, str(exc)) from None
    return {"items": items, "next_cursor": encode_cursor(list(next_key)) if next_key else None}


@router.get("/export", summary="Export a search as CSV or NDJSON (streamed)")
async def export_logs(
    request: Request,
    _: Reader,
    filters: Filters,
    format: Literal["csv", "ndjson"] = Query("ndjson"),
    max_rows: int | None = Query(None, ge=1, description="Stop after this many lines"),
) -> StreamingResponse:
    db = backends_of(request).db
    if filters.q:
        try:
            logsearch.fts5_query(filters.q)  # reject a bad query before the 200 goes out
        except QueryError as exc:
            raise Problem(422, str(exc)) from None

    async def ndjson() -> AsyncIterator[bytes]:
        async for chunk in logsearch.iter_lines(db, filters, max_rows=max_rows):
            yield b"".join(orjson.dumps(item) + b"\n" for item in chunk)

    async def as_csv() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        yield buffer.getvalue().encode()
        async for chunk in logsearch.iter_lines(db, filters, max_rows=max_rows):
            buffer.seek(0)
            buffer.truncate()
            for item in chunk:
                writer.writerow([item.get(column) for column in EXPORT_COLUMNS])
            yield buffer.getvalue().encode()

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if format == "csv":
        body, media_type = as_csv(), "text/csv; charset=utf-8"
    else:
        body, media_type = ndjson(), "application/x-ndjson"
    return StreamingResponse(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="vigil-logs-{stamp}.{format}"'},
    )


@router.get("/semantic", summary="Semantic search: templates nearest in meaning, with their lines")
async def semantic_search(
    request: Request,
    _: Reader,
    q: str = Query(..., min_length=1, max_length=2000),
    limit: int = Query(5, ge=1, le=50, description="How many templates"),
    lines: int = Query(5, ge=0, le=100, description="Recent lines per template"),
) -> dict[str, Any]:
    backends = backends_of(request)
    embedder = embedder_of(request)
    result = await similar_lines(backends, embedder, q, templates=limit, lines_per_template=lines)
    return {"query": q, "embedder": embedder.name, **result}


@router.get("/{line_id}", summary="One log line")
async def get_log_line(request: Request, _: Reader, line_id: int) -> dict[str, Any]:
    line = await logsearch.get_line(backends_of(request).db, line_id)
    if line is None:
        raise Problem(404, f"line_id: no log line {line_id}")
    return line


@router.get("/{line_id}/context", summary="Lines before and after a line, same host (or source)")
async def line_context(
    request: Request,
    _: Reader,
    line_id: int,
    before: int = Query(10, ge=0, le=500),
    after: int = Query(10, ge=0, le=500),
    by: Literal["host", "source"] = Query("host"),
) -> dict[str, Any]:
    result = await logsearch.context(backends_of(request).db, line_id, before, after, by)
    if result is None:
        raise Problem(404, f"line_id: no log line {line_id}")
    return result


@router.get("/{line_id}/similar", summary="Find logs like this: lines of the nearest other templates")
async def similar_to_line(
    request: Request,
    _: Reader,
    line_id: int,
    limit: int = Query(5, ge=1, le=50),
    lines: int = Query(5, ge=0, le=100),
) -> dict[str, Any]:
    backends = backends_of(request)
    line = await logsearch.get_line(backends.db, line_id)
    if line is None:
        raise Problem(404, f"line_id: no log line {line_id}")
    embedder = embedder_of(request)
    result = await similar_lines(
        backends,
        embedder,
        line["message"],
        templates=limit,
        lines_per_template=lines,
        exclude_template=line.get("template_id"),
    )
    return {"line": line, "embedder": embedder.name, **result}
