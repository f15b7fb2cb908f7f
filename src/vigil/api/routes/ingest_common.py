"""What every ingest endpoint shares: the ingest token, the body, the bus, the source's health.

Each family of endpoints (Vigil's ``/webhooks/*``, the InfluxDB-compatible ``/write``, Sentry's
``/api/<project>/...``) answers errors in its own wire format, so the pieces here raise
``IngestError`` and each router turns it into the shape its clients expect.

Contract: a request is acknowledged only after ``bus.publish*`` returned (the data is durable);
a saturated bus is 429 and an unreachable one 503, both with ``Retry-After``, so agents retry.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Request
from sqlalchemy import update

from vigil.api.auth import Principal, authenticate, backends_of, bearer_token
from vigil.backends import Backends
from vigil.bus.base import BusSaturated, BusUnavailable
from vigil.ingest.body import BodyError, check_content_length, decompress, read_limited
from vigil.ingest.line_protocol import LineError
from vigil.observability import INGEST_REJECTED
from vigil.store.db import Database
from vigil.store.models import Source
from vigil.store.types import utcnow

log = logging.getLogger(__name__)

RETRY_AFTER_SATURATED_S = 5
RETRY_AFTER_UNAVAILABLE_S = 10
SOURCE_CACHE_S = 5.0  # a renamed or disabled source takes effect within this
HEALTH_WRITE_INTERVAL_S = 5.0  # at most one health update per source per interval
MAX_LISTED_ERRORS = 100


class IngestError(Exception):
    """Refuse the request with ``status``; ``kind`` lets each wire format pick its error code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid",
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.headers = headers or {}
        self.errors = errors or []


@dataclass(frozen=True, slots=True)
class SourceInfo:
    id: int
    name: str
    type: str
    enabled: bool
    credentials_encrypted: str | None


@dataclass(frozen=True, slots=True)
class IngestCaller:
    principal: Principal
    source: SourceInfo | None = None

    @property
    def source_name(self) -> str | None:
        return self.source.name if self.source else None

    @property
    def source_id(self) -> int | None:
        return self.source.id if self.source else None


# --- tokens ------------------------------------------------------------------------------------


def token_from_request(request: Request) -> str | None:
    """The ingest token however an agent sends it: ``Authorization: Bearer``/``Token`` (InfluxDB
    2.x, also ``Token user:password`` from 1.8 clients), HTTP Basic with the token as password
    (or user), ``?token=``, or InfluxDB 1.x's ``?p=``."""
    token = bearer_token(request)
    if token:
        if ":" in token and not token.startswith("vgl_"):
            return token.split(":", 1)[1] or None
        return token
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        user, _, password = decoded.partition(":")
        return password or user or None
    params = request.query_params
    return params.get("token") or params.get("p") or None


@dataclass
class _SourceCache:
    """What the ingest path remembers about sources, per database (ids mean nothing across two)."""

    info: dict[int, tuple[float, SourceInfo | None]] = field(default_factory=dict)
    health_written: dict[int, float] = field(default_factory=dict)


_caches: weakref.WeakKeyDictionary[Database, _SourceCache] = weakref.WeakKeyDictionary()


def _cache(backends: Backends) -> _SourceCache:
    cache = _caches.get(backends.db)
    if cache is None:
        cache = _caches[backends.db] = _SourceCache()
    return cache


async def _source_info(backends: Backends, source_id: int) -> SourceInfo | None:
    sources = _cache(backends).info
    cached = sources.get(source_id)
    now = time.monotonic()
    if cached and now - cached[0] < SOURCE_CACHE_S:
        return cached[1]
    async with backends.db.session() as session:
        row = await session.get(Source, source_id)
        info = (
            None
            if row is None
            else SourceInfo(row.id, row.name, row.type, row.enabled, row.credentials_encrypted)
        )
    if len(sources) > 10_000:
        sources.clear()
    sources[source_id] = (now, info)
    return info


def forget_cached_sources() -> None:
    _caches.clear()


async def authorize(request: Request, token: str | None) -> IngestCaller:
    """401 without a valid token, 403 without the ``ingest`` scope or for a disabled source."""
    if not token:
        raise IngestError(
            401,
            "missing ingest token: send 'Authorization: Bearer <token>' or '?token=<token>'",
            kind="unauthorized",
        )
    backends = backends_of(request)
    try:
        principal = await authenticate(request, token=token)
    except Exception as exc:  # the database is down: the sender should retry, not give up
        log.warning("cannot check an ingest token: %s", exc)
        raise IngestError(
            503,
            "cannot verify the token right now; retry later",
            kind="unavailable",
            headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)},
        ) from exc
    if principal is None:
        raise IngestError(401, "unknown, expired or revoked ingest token", kind="unauthorized")
    if not principal.can("ingest"):
        raise IngestError(
            403,
            f"token {principal.token_name or principal.actor!r} lacks the 'ingest' scope",
            kind="forbidden",
        )
    source = None
    if principal.source_id is not None:
        try:
            source = await _source_info(backends, principal.source_id)
        except Exception as exc:
            raise IngestError(
                503,
                "cannot look up the token's source right now; retry later",
                kind="unavailable",
                headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)},
            ) from exc
        if source is None:
            raise IngestError(403, "the token's source no longer exists", kind="forbidden")
        if not source.enabled:
            raise IngestError(403, f"source {source.name!r} is disabled", kind="forbidden")
    request.state.principal = principal
    return IngestCaller(principal, source)


# --- bodies ------------------------------------------------------------------------------------


async def read_body(request: Request, *, decode: bool = True) -> bytes:
    """The body within ``max_body_bytes`` on the wire and once decompressed (413 beyond)."""
    limit = backends_of(request).settings.max_body_bytes
    try:
        check_content_length(request.headers.get("content-length"), limit)
        raw = await read_limited(request.stream(), limit)
        if not decode:
            return raw
        return decompress(raw, request.headers.get("content-encoding"), limit)
    except BodyError as exc:
        raise IngestError(exc.status, exc.message, kind=_kind(exc.status)) from None


def decode_body(request: Request, raw: bytes) -> bytes:
    limit = backends_of(request).settings.max_body_bytes
    try:
        return decompress(raw, request.headers.get("content-encoding"), limit)
    except BodyError as exc:
        raise IngestError(exc.status, exc.message, kind=_kind(exc.status)) from None


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _kind(status: int) -> str:
    return {400: "invalid", 413: "request too large", 415: "unsupported media type"}.get(status, "invalid")


# --- publishing --------------------------------------------------------------------------------


async def publish(request: Request, topic: str, payloads: list[bytes]) -> None:
    """Publish durably, or refuse with 429/503 and Retry-After."""
    if not payloads:
        return
    bus = backends_of(request).bus
    try:
        if len(payloads) == 1:
            await bus.publish(topic, payloads[0])
        else:
            await bus.publish_many(topic, payloads)
    except BusSaturated as exc:
        raise IngestError(
            429,
            f"Vigil is behind on processing ({exc}); retry later",
            kind="too many requests",
            headers={"Retry-After": str(RETRY_AFTER_SATURATED_S)},
        ) from None
    except BusUnavailable as exc:
        raise IngestError(
            503,
            f"the event bus is unavailable ({exc}); retry later",
            kind="unavailable",
            headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)},
        ) from None


# --- source health -----------------------------------------------------------------------------


async def note_success(request: Request, caller: IngestCaller) -> None:
    """Mark the caller's source healthy, at most every HEALTH_WRITE_INTERVAL_S per source.
    A failing database only logs: it must not refuse data the bus already holds."""
    source = caller.source
    if source is None:
        return
    backends = backends_of(request)
    written = _cache(backends).health_written
    now = time.monotonic()
    if now - written.get(source.id, -HEALTH_WRITE_INTERVAL_S) < HEALTH_WRITE_INTERVAL_S:
        return
    written[source.id] = now
    try:
        async with backends.db.session() as session:
            await session.execute(
                update(Source)
                .where(Source.id == source.id)
                .values(status="ok", last_success_at=utcnow(), last_error=None)
            )
    except Exception as exc:
        written.pop(source.id, None)  # try again with the next request
        log.warning("cannot update the health of source %s: %s", source.name, exc)


# --- reporting ---------------------------------------------------------------------------------


def rejected(source_type: str, status: int) -> None:
    INGEST_REJECTED.labels(source_type, str(status)).inc()


def safe_text(text: str) -> str:
    """Text fit for a JSON answer: bytes that were not UTF-8 (kept as surrogates by the parser)
    become U+FFFD."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def header_text(text: str, limit: int = 500) -> str:
    """A message fit for an HTTP header: one line of ASCII."""
    flat = " ".join(text.split())
    return flat.encode("ascii", "replace").decode("ascii")[:limit]


def line_errors(errors: list[LineError], unit: str = "line") -> list[dict[str, Any]]:
    return [
        {
            unit: e.line_no,
            "reason": safe_text(e.message),
            "text": safe_text(e.line if len(e.line) <= 200 else e.line[:200] + "…"),
        }
        for e in errors[:MAX_LISTED_ERRORS]
    ]


def partial_message(errors: list[LineError], accepted: int, unit: str = "line") -> str:
    shown = "; ".join(f"{unit} {e.line_no}: {safe_text(e.message)}" for e in errors[:10])
    more = f"; and {len(errors) - 10} more" if len(errors) > 10 else ""
    if accepted:
        return f"{len(errors)} {unit}(s) rejected, {accepted} accepted: {shown}{more}"
    return f"nothing accepted; {len(errors)} {unit}(s) rejected: {shown}{more}"


def json_bytes(obj: Any) -> bytes:
    return orjson.dumps(obj)
