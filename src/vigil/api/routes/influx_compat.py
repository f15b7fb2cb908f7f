"""InfluxDB-compatible write endpoints, so an agent configured for InfluxDB works unchanged:
``POST /write`` (1.x), ``POST /api/v2/write`` (2.x, also what 1.8+ and 3.x serve), ``/ping``,
and ``/query`` for the ``CREATE DATABASE`` that Telegraf's ``outputs.influxdb`` sends on start.

Auth, as InfluxDB clients send it: ``Authorization: Token <token>`` (or ``Token user:<token>``),
``Bearer``, HTTP Basic with the token as password, ``?u=...&p=<token>``, or ``?token=``. The
``db``/``bucket`` must be given (as InfluxDB requires) but does not pick a database: points go
to Vigil's metric store, attributed to the token's source.

Answers follow InfluxDB: 204 when written; a partial write is 400 ``{"error": "partial write:
..."}`` naming each bad line while the good lines are stored; v2 errors are
``{"code": ..., "message": ...}``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from vigil.api.routes.ingest_common import (
    IngestCaller,
    IngestError,
    authorize,
    header_text,
    note_success,
    publish,
    read_body,
    rejected,
    safe_text,
    token_from_request,
)
from vigil.ingest.metric_bodies import PreparedMetrics, prepare_line_protocol
from vigil.observability import INGESTED
from vigil.pipeline import topology

router = APIRouter(tags=["ingest: InfluxDB compatible"])

# The InfluxDB version whose HTTP API this imitates (1.x API plus /api/v2/write, as 1.8 serves).
INFLUX_VERSION = "1.8.10"
_HEADERS = {"X-Influxdb-Version": INFLUX_VERSION, "X-Influxdb-Build": "OSS"}
_CREATE_DATABASE = re.compile(r"^\s*CREATE\s+DATABASE\s+\S", re.IGNORECASE)
_V1_PRECISIONS = {"n", "ns", "u", "us", "µ", "ms", "s", "m", "h"}
_V2_PRECISIONS = {"ns", "us", "ms", "s"}


def _v1_error(exc: IngestError) -> JSONResponse:
    headers = {**_HEADERS, **exc.headers, "X-Influxdb-Error": header_text(exc.message)}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="InfluxDB"'
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)


def _v2_error(exc: IngestError) -> JSONResponse:
    return JSONResponse(
        {"code": exc.kind, "message": exc.message},
        status_code=exc.status,
        headers={**_HEADERS, **exc.headers},
    )


@router.get("/ping", summary="InfluxDB /ping: 204 while the API is up")
@router.head("/ping", include_in_schema=False)
async def ping(request: Request) -> Response:
    if request.query_params.get("verbose", "").lower() in ("true", "1"):
        return JSONResponse({"version": INFLUX_VERSION}, headers=_HEADERS)
    return Response(status_code=204, headers=_HEADERS)


async def _write(request: Request, caller: IngestCaller, precision: str) -> PreparedMetrics | None:
    body = await read_body(request)
    if not body.strip():
        return None
    try:
        prepared = prepare_line_protocol(body, precision, time.time_ns())
    except ValueError as exc:
        raise IngestError(400, f"precision: {exc}") from None
    await publish(request, topology.METRICS, prepared.messages(caller.source_name))
    INGESTED.labels("points", "influx").inc(prepared.accepted)
    if prepared.accepted:
        await note_success(request, caller)
    return prepared


def _parse_failure(prepared: PreparedMetrics) -> IngestError | None:
    """InfluxDB's wording: ``partial write: <reasons> dropped=N`` when some lines were stored,
    just the reasons when none was. Each reason names its line."""
    if not prepared.errors:
        return None
    reasons = "\n".join(safe_text(str(error)) for error in prepared.errors[:100])
    if len(prepared.errors) > 100:
        reasons += f"\n... and {len(prepared.errors) - 100} more"
    if prepared.accepted:
        return IngestError(400, f"partial write: {reasons} dropped={len(prepared.errors)}")
    return IngestError(400, reasons)


@router.post("/write", status_code=204, summary="InfluxDB 1.x write (?db=&precision=)")
async def write_v1(request: Request) -> Response:
    try:
        caller = await authorize(request, token_from_request(request))
        params = request.query_params
        if not params.get("db"):
            raise IngestError(400, "database is required")
        precision = params.get("precision") or "ns"
        if precision not in _V1_PRECISIONS:
            raise IngestError(400, f"precision: {precision!r} is not one of n, u, ms, s, m, h")
        prepared = await _write(request, caller, precision)
        failure = _parse_failure(prepared) if prepared else None
        if failure:
            raise failure
        return Response(status_code=204, headers=_HEADERS)
    except IngestError as exc:
        rejected("influx", exc.status)
        return _v1_error(exc)


@router.post("/api/v2/write", status_code=204, summary="InfluxDB 2.x write (?bucket=&org=&precision=)")
async def write_v2(request: Request) -> Response:
    try:
        caller = await authorize(request, token_from_request(request))
        params = request.query_params
        if not params.get("bucket"):
            raise IngestError(400, "bucket is required")
        precision = params.get("precision") or "ns"
        if precision not in _V2_PRECISIONS:
            raise IngestError(400, f"precision: {precision!r} is not one of ns, us, ms, s")
        prepared = await _write(request, caller, precision)
        failure = _parse_failure(prepared) if prepared else None
        if failure:
            raise failure
        return Response(status_code=204, headers=_HEADERS)
    except IngestError as exc:
        rejected("influx", exc.status)
        return _v2_error(exc)


@router.get("/query", summary="InfluxDB 1.x query: CREATE DATABASE only")
@router.post("/query", summary="InfluxDB 1.x query: CREATE DATABASE only", operation_id="query_v1_post")
async def query_v1(request: Request) -> Response:
    """Agents create their database before writing; Vigil has one store, so that succeeds and
    does nothing. Reading goes through ``/api/v1`` instead."""
    try:
        await authorize(request, token_from_request(request))
        statement = request.query_params.get("q")
        if statement is None and request.method == "POST":
            form = await request.form()
            value = form.get("q")
            statement = value if isinstance(value, str) else None
        if not statement:
            raise IngestError(400, 'missing required parameter "q"')
        statements = [s for s in statement.split(";") if s.strip()]
        if not statements or not all(_CREATE_DATABASE.match(s) for s in statements):
            raise IngestError(
                400,
                "error parsing query: Vigil's InfluxDB-compatible API accepts writes and "
                "CREATE DATABASE only; query metrics through /api/v1",
            )
        results: list[dict[str, Any]] = [{"statement_id": i} for i in range(len(statements))]
        return JSONResponse({"results": results}, headers=_HEADERS)
    except IngestError as exc:
        rejected("influx", exc.status)
        return _v1_error(exc)
