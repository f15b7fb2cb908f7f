"""Sentry SDK ingestion: point a DSN at Vigil and the unmodified ``sentry-sdk`` reports here.

DSN: ``http://<ingest token>@<vigil host>:<port>/<project id>``. The SDK posts envelopes to
``/api/<project id>/envelope/`` (older SDKs: events to ``/api/<project id>/store/``),
authenticated by ``X-Sentry-Auth: Sentry sentry_key=<token>``, ``?sentry_key=`` or the
envelope header's ``dsn``. Bodies may be gzip or deflate compressed.

Error events go to the errors topic for grouping; events, transactions, sessions and other
items are counted as points of the ``sentry`` measurement. Answers follow Sentry: 200
``{"id": <event id>}``; errors are ``{"detail": ..., "causes": [...]}`` with ``X-Sentry-Error``,
and a saturated bus is 429 with ``Retry-After`` and ``X-Sentry-Rate-Limits`` so the SDK backs off.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from vigil.api.auth import backends_of
from vigil.api.routes.ingest_common import (
    IngestCaller,
    IngestError,
    authorize,
    header_text,
    media_type,
    note_success,
    publish,
    read_body,
    rejected,
    token_from_request,
)
from vigil.api.routes.webhooks import encode_chunks
from vigil.domain import codec
from vigil.domain.errors import ErrorEvent
from vigil.ingest.body import BodyError, legacy_sentry_body
from vigil.ingest.sentry import (
    COUNTED_ITEMS,
    Envelope,
    SentryError,
    Usage,
    normalise_event_id,
    parse_envelope,
    parse_event_json,
    sentry_keys,
)
from vigil.observability import INGESTED
from vigil.pipeline import topology

router = APIRouter(tags=["ingest: Sentry"])

_PROJECT_ID = re.compile(r"^[\w.-]{1,64}$")
_ENVELOPE_TYPES = {"", "application/x-sentry-envelope", "text/plain", "application/octet-stream"}
_STORE_TYPES = {"", "application/json", "text/plain", "application/octet-stream"}


def _sentry_error(exc: IngestError) -> JSONResponse:
    headers = {**exc.headers, "X-Sentry-Error": header_text(exc.message)}
    if exc.status == 429:
        # Sentry's header: all categories, organisation-wide, for Retry-After seconds.
        headers["X-Sentry-Rate-Limits"] = f"{exc.headers.get('Retry-After', '60')}::organization"
    return JSONResponse(
        {"detail": exc.message, "causes": [exc.message]}, status_code=exc.status, headers=headers
    )


def _check_project(project_id: str) -> None:
    if not _PROJECT_ID.match(project_id):
        raise IngestError(400, f"project id {project_id[:70]!r} is not valid")


async def _caller(request: Request, envelope_dsn: str | None = None) -> IngestCaller:
    keys = sentry_keys(
        request.headers.get("x-sentry-auth"), request.query_params.get("sentry_key"), envelope_dsn
    )
    if len(keys) > 1:
        raise IngestError(401, "the request presents different sentry_key values; send one")
    key = next(iter(keys), None) or token_from_request(request)
    return await authorize(request, key)


async def _publish(
    request: Request, caller: IngestCaller, project: str, events: list[ErrorEvent], usage: Usage
) -> None:
    source = caller.source_name
    if events:
        await publish(
            request, topology.ERRORS, encode_chunks("errors", [e.to_dict() for e in events], source)
        )
    points = usage.points(project, time.time_ns())
    if points:
        await publish(request, topology.METRICS, [codec.encode_points(points, source)])
    INGESTED.labels("events", "sentry").inc(len(events))
    await note_success(request, caller)


def _type(request: Request, allowed: set[str]) -> None:
    kind = media_type(request)
    if kind not in allowed:
        raise IngestError(415, f"Content-Type: {kind!r} is not accepted here")


@router.post("/api/{project_id}/envelope/", summary="Sentry envelope endpoint (sentry-sdk)")
@router.post("/api/{project_id}/envelope", include_in_schema=False)
async def envelope(project_id: str, request: Request) -> Response:
    try:
        _check_project(project_id)
        _type(request, _ENVELOPE_TYPES)
        body = await read_body(request)
        parsed = _parse_envelope(body)
        dsn = parsed.headers.get("dsn")
        caller = await _caller(request, dsn if isinstance(dsn, str) else None)
        now = time.time_ns()
        header_id = normalise_event_id(parsed.headers.get("event_id"))
        events: list[ErrorEvent] = []
        usage = Usage()
        for number, item in enumerate(parsed.items, 1):
            kind = item.type
            if kind == "event":
                try:
                    events.append(parse_event_json(item.payload, project_id, now, header_id))
                except SentryError as exc:
                    raise IngestError(exc.status, f"item {number} (event): {exc}") from None
                usage.add("event")
            elif kind in ("session", "sessions"):
                usage.add_sessions(item.payload, aggregated=kind == "sessions")
            elif kind in COUNTED_ITEMS:
                usage.add(kind)
            # Unknown item types (client reports and whatever comes next) are skipped.
        await _publish(request, caller, project_id, events, usage)
        event_id = events[0].event_id if events else header_id
        return JSONResponse({"id": event_id} if event_id else {})
    except IngestError as exc:
        rejected("sentry", exc.status)
        return _sentry_error(exc)


def _parse_envelope(body: bytes) -> Envelope:
    try:
        return parse_envelope(body)
    except SentryError as exc:
        raise IngestError(exc.status, str(exc)) from None


@router.post("/api/{project_id}/store/", summary="Sentry legacy store endpoint (one event)")
@router.post("/api/{project_id}/store", include_in_schema=False)
async def store(project_id: str, request: Request) -> Response:
    try:
        _check_project(project_id)
        _type(request, _STORE_TYPES)
        caller = await _caller(request)
        body = await read_body(request)
        try:
            body = legacy_sentry_body(body, backends_of(request).settings.max_body_bytes)
        except BodyError as exc:
            raise IngestError(exc.status, exc.message) from None
        if not body.strip():
            raise IngestError(400, "body: empty; expected a Sentry event (JSON)")
        try:
            event = parse_event_json(body, project_id, time.time_ns())
        except SentryError as exc:
            raise IngestError(exc.status, str(exc)) from None
        usage = Usage()
        raw: Any = event.raw or {}
        if raw.get("type") == "transaction":
            usage.add("transaction")
            events = []
        else:
            usage.add("event")
            events = [event]
        await _publish(request, caller, project_id, events, usage)
        return JSONResponse({"id": event.event_id})
    except IngestError as exc:
        rejected("sentry", exc.status)
        return _sentry_error(exc)
