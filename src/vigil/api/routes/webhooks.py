"""Push ingestion: ``/webhooks/telegraf``, ``/webhooks/logs``, ``/webhooks/alertmanager`` and
``/webhooks/sentry`` (Sentry integration-platform webhooks).

Authenticated by an ingest token (``Authorization: Bearer <token>`` or ``?token=``); data is
attributed to the token's source. Answers: 204 once the data is durable on the bus; 400 with a
problem document naming each bad line (the good lines are kept, as InfluxDB does); 401/403 for
tokens; 413 over ``VIGIL_MAX_BODY_BYTES`` (also once decompressed); 415 for content types the
endpoint does not read; 429/503 with ``Retry-After`` when the bus is saturated or down.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from vigil.api.auth import backends_of
from vigil.api.problems import problem_response
from vigil.api.routes.ingest_common import (
    IngestCaller,
    IngestError,
    authorize,
    decode_body,
    line_errors,
    media_type,
    note_success,
    partial_message,
    publish,
    read_body,
    rejected,
    safe_text,
    token_from_request,
)
from vigil.domain import codec
from vigil.domain.logs import normalise_level
from vigil.ingest.alertmanager import AlertmanagerError, parse_alertmanager
from vigil.ingest.line_protocol import LineError
from vigil.ingest.logs import LogBodyError, LogDefaults, parse_json_logs, parse_plain_logs
from vigil.ingest.metric_bodies import PreparedMetrics, prepare_line_protocol, prepare_points
from vigil.ingest.sentry import SentryError, verify_signature, webhook_to_telemetry
from vigil.ingest.telegraf_json import TelegrafJsonError, looks_like_json, parse_telegraf_json
from vigil.observability import INGESTED
from vigil.pipeline import topology

router = APIRouter(prefix="/webhooks", tags=["ingest"])

MAX_ITEMS_PER_MESSAGE = 1_000
MAX_MESSAGE_BYTES = 1 << 20

_TELEGRAF_TYPES = {"", "text/plain", "application/json", "application/octet-stream"}
_JSON_LOG_TYPES = {
    "application/json",
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonlines",
    "application/x-jsonlines",
    "application/jsonl",
    "application/json-seq",
}
_LOG_TYPES = _JSON_LOG_TYPES | {"", "text/plain", "application/octet-stream"}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    204: {"description": "Accepted: durable on the bus"},
    400: {"description": "Malformed body; bad lines are listed and the good ones were accepted"},
    401: {"description": "Missing or unknown ingest token"},
    403: {"description": "Token without the ingest scope, or its source is disabled"},
    413: {"description": "Body over VIGIL_MAX_BODY_BYTES (on the wire or decompressed)"},
    415: {"description": "Content type or encoding this endpoint does not read"},
    429: {"description": "Bus saturated; retry after Retry-After seconds"},
    503: {"description": "Bus unavailable; retry after Retry-After seconds"},
}

Handler = Callable[[Request, IngestCaller], Awaitable[Response]]


async def _serve(request: Request, source_type: str, handler: Handler) -> Response:
    try:
        caller = await authorize(request, token_from_request(request))
        return await handler(request, caller)
    except IngestError as exc:
        rejected(source_type, exc.status)
        extra: dict[str, Any] = {"errors": exc.errors} if exc.errors else {}
        return problem_response(
            exc.status, safe_text(exc.message), instance=request.url.path, headers=exc.headers, **extra
        )


def _require_type(request: Request, allowed: set[str], hint: str) -> str:
    kind = media_type(request)
    if kind not in allowed:
        raise IngestError(415, f"Content-Type: {kind!r} is not accepted here; {hint}")
    return kind


def _require_content(body: bytes, hint: str) -> None:
    if not body.strip():
        raise IngestError(400, f"body: empty; {hint}")


def encode_chunks(kind: str, items: list[dict[str, Any]], source: str | None) -> list[bytes]:
    """Bus payloads of at most MAX_ITEMS_PER_MESSAGE items and about MAX_MESSAGE_BYTES each."""
    out: list[bytes] = []
    pending = [items[i : i + MAX_ITEMS_PER_MESSAGE] for i in range(0, len(items), MAX_ITEMS_PER_MESSAGE)]
    while pending:
        chunk = pending.pop(0)
        payload = codec.encode_dicts(kind, chunk, source)
        if len(payload) > MAX_MESSAGE_BYTES and len(chunk) > 1:
            half = len(chunk) // 2
            pending[:0] = [chunk[:half], chunk[half:]]
            continue
        out.append(payload)
    return out


async def _accept_metrics(
    request: Request, caller: IngestCaller, prepared: PreparedMetrics, source_type: str, unit: str
) -> Response:
    """Publish the good points; 204, or 400 naming the bad lines (the good ones are kept)."""
    await publish(request, topology.METRICS, prepared.messages(caller.source_name))
    INGESTED.labels("points", source_type).inc(prepared.accepted)
    if prepared.accepted:
        await note_success(request, caller)
    if prepared.errors:
        raise IngestError(
            400,
            partial_message(prepared.errors, prepared.accepted, unit),
            errors=line_errors(prepared.errors, unit),
        )
    return Response(status_code=204)


# --- Telegraf ----------------------------------------------------------------------------------


_TELEGRAF_SUMMARY = "Telegraf outputs.http: line protocol or Telegraf JSON (?precision=)"


# Telegraf's outputs.http can be set to PUT or PATCH; one route per method keeps operation ids unique.
@router.post("/telegraf", status_code=204, responses=_RESPONSES, summary=_TELEGRAF_SUMMARY)
@router.put(
    "/telegraf",
    status_code=204,
    responses=_RESPONSES,
    summary=_TELEGRAF_SUMMARY,
    operation_id="telegraf_put",
)
@router.patch(
    "/telegraf",
    status_code=204,
    responses=_RESPONSES,
    summary=_TELEGRAF_SUMMARY,
    operation_id="telegraf_patch",
)
async def telegraf(request: Request) -> Response:
    return await _serve(request, "telegraf", _telegraf)


async def _telegraf(request: Request, caller: IngestCaller) -> Response:
    kind = _require_type(
        request, _TELEGRAF_TYPES, "send line protocol as text/plain or Telegraf JSON as application/json"
    )
    body = await read_body(request)
    _require_content(body, "expected InfluxDB line protocol or Telegraf JSON")
    precision = request.query_params.get("precision") or None
    now = time.time_ns()
    # Telegraf labels JSON text/plain unless told otherwise, so the body decides.
    if kind == "application/json" or looks_like_json(body):
        try:
            points, errors = parse_telegraf_json(body, precision, now)
        except TelegrafJsonError as exc:
            raise IngestError(400, str(exc)) from None
        return await _accept_metrics(request, caller, prepare_points(points, errors), "telegraf", "metric")
    try:
        prepared = prepare_line_protocol(body, precision or "ns", now)
    except ValueError as exc:
        raise IngestError(400, f"precision: {exc}") from None
    return await _accept_metrics(request, caller, prepared, "telegraf", "line")


# --- logs --------------------------------------------------------------------------------------


@router.post(
    "/logs",
    status_code=204,
    responses=_RESPONSES,
    summary="Logs: NDJSON / JSON records, or plain text lines (?host=&service=&level=)",
)
async def logs(request: Request) -> Response:
    return await _serve(request, "logs", _logs)


async def _logs(request: Request, caller: IngestCaller) -> Response:
    kind = _require_type(
        request, _LOG_TYPES, "send NDJSON as application/x-ndjson or plain lines as text/plain"
    )
    body = await read_body(request)
    _require_content(body, "expected NDJSON records or text lines")
    params = request.query_params
    level = params.get("level")
    defaults = LogDefaults(
        host=params.get("host") or None,
        service=params.get("service") or None,
        level=normalise_level(level) if level else None,
        source=caller.source_name,
        os=params.get("os") or None,
    )
    now = time.time_ns()
    errors: list[LineError] = []
    try:
        if kind in _JSON_LOG_TYPES or (kind != "text/plain" and looks_like_json(body)):
            records, errors = parse_json_logs(body, defaults, now)
        else:
            records = parse_plain_logs(body, defaults, now)
    except LogBodyError as exc:
        raise IngestError(400, str(exc)) from None
    await publish(
        request,
        topology.LOGS,
        encode_chunks("logs", [record.to_dict() for record in records], caller.source_name),
    )
    INGESTED.labels("logs", "logs").inc(len(records))
    if records:
        await note_success(request, caller)
    if errors:
        raise IngestError(400, partial_message(errors, len(records)), errors=line_errors(errors))
    return Response(status_code=204)


# --- Alertmanager ------------------------------------------------------------------------------


@router.post(
    "/alertmanager",
    status_code=204,
    responses=_RESPONSES,
    summary="Prometheus Alertmanager webhook (payload version 4)",
)
async def alertmanager(request: Request) -> Response:
    return await _serve(request, "alertmanager", _alertmanager)


async def _alertmanager(request: Request, caller: IngestCaller) -> Response:
    _require_type(request, {"", "application/json"}, "Alertmanager sends application/json")
    body = await read_body(request)
    _require_content(body, "expected an Alertmanager webhook payload")
    try:
        signals = parse_alertmanager(body, caller.source_name)
    except AlertmanagerError as exc:
        raise IngestError(400, str(exc)) from None
    await publish(
        request,
        topology.EXTERNAL_ALERTS,
        encode_chunks("alerts", [s.to_dict() for s in signals], caller.source_name),
    )
    INGESTED.labels("alerts", "alertmanager").inc(len(signals))
    await note_success(request, caller)
    return Response(status_code=204)


# --- Sentry integration webhooks ---------------------------------------------------------------


@router.post(
    "/sentry",
    responses={
        **_RESPONSES,
        200: {"description": "Accepted: what the webhook carried, durable on the bus"},
        401: {"description": "Bad token or bad Sentry-Hook-Signature"},
    },
    summary="Sentry integration-platform webhooks (Sentry-Hook-Signature verified)",
)
async def sentry_webhook(request: Request) -> Response:
    return await _serve(request, "sentry_webhook", _sentry_webhook)


def _client_secret(request: Request, caller: IngestCaller) -> str:
    source = caller.source
    if source is None:
        raise IngestError(
            403,
            "this token belongs to no source; mint the token for a 'sentry' source whose credentials "
            "hold the integration's client_secret",
        )
    secret: Any = None
    if source.credentials_encrypted:
        try:
            credentials = orjson.loads(backends_of(request).secrets.decrypt(source.credentials_encrypted))
        except (ValueError, orjson.JSONDecodeError):
            credentials = {}
        secret = credentials.get("client_secret") if isinstance(credentials, dict) else None
    if not isinstance(secret, str) or not secret:
        raise IngestError(
            403,
            f"source {source.name!r} has no client_secret in its credentials, so Sentry's "
            "signature cannot be verified",
        )
    return secret


async def _sentry_webhook(request: Request, caller: IngestCaller) -> Response:
    _require_type(request, {"", "application/json"}, "Sentry sends application/json")
    secret = _client_secret(request, caller)
    raw = await read_body(request, decode=False)
    if not verify_signature(secret, raw, request.headers.get("sentry-hook-signature")):
        raise IngestError(
            401,
            "Sentry-Hook-Signature: missing or not the HMAC-SHA256 of the body under the client secret",
        )
    body = decode_body(request, raw)
    resource = request.headers.get("sentry-hook-resource", "")
    try:
        document = orjson.loads(body)
        signals, events = webhook_to_telemetry(resource, document, caller.source_name, time.time_ns())
    except orjson.JSONDecodeError as exc:
        raise IngestError(400, f"body: not valid JSON ({exc})") from None
    except SentryError as exc:
        raise IngestError(exc.status, str(exc)) from None
    await publish(
        request,
        topology.ERRORS,
        encode_chunks("errors", [e.to_dict() for e in events], caller.source_name),
    )
    await publish(
        request,
        topology.EXTERNAL_ALERTS,
        encode_chunks("alerts", [s.to_dict() for s in signals], caller.source_name),
    )
    INGESTED.labels("events", "sentry_webhook").inc(len(events))
    INGESTED.labels("alerts", "sentry_webhook").inc(len(signals))
    await note_success(request, caller)
    return JSONResponse({"resource": resource, "alerts": len(signals), "events": len(events)})
