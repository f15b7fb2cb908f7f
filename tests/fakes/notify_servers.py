"""Local stand-ins for where notifications go: Slack incoming webhooks, the PagerDuty Events
API v2, a generic webhook receiver (one HTTP server), and an SMTP server (aiosmtpd).

They answer as the real services document (see shared/reference/integrations.md §12): Slack
200 ``ok`` or a plain-text error code; PagerDuty 202 with ``{"status": "success", ...}``, 400
``invalid event`` for bad keys or payloads, and it tracks each ``dedup_key``'s alert state as
PagerDuty does. ``fail(prefix, *statuses)`` scripts the next answers on a path, to test retries.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.serving import ThreadedServer
from tests.services import free_port

PD_SEVERITIES = {"critical", "error", "warning", "info"}


@dataclass
class Received:
    kind: str  # slack | pagerduty | webhook
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Scripted:
    status: int
    body: str = "scripted failure"
    headers: dict[str, str] = field(default_factory=dict)


class NotifyServer(ThreadedServer):
    """``/slack/<secret>``, ``/pagerduty/v2/enqueue``, ``/webhook/<name>``."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Received] = []
        self.pagerduty_alerts: dict[str, str] = {}  # dedup_key -> triggered | acknowledged | resolved
        self._scripted: dict[str, list[Scripted]] = {}
        self._lock = threading.Lock()

    def fail(
        self, prefix: str, *statuses: int, body: str = "scripted failure", retry_after: str | None = None
    ) -> None:
        """Answer the next requests under ``prefix`` with these statuses, then normally again."""
        headers = {"Retry-After": retry_after} if retry_after else {}
        with self._lock:
            self._scripted.setdefault(prefix, []).extend(Scripted(s, body, headers) for s in statuses)

    def of(self, kind: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.kind == kind]

    def _scripted_answer(self, path: str) -> Response | None:
        with self._lock:
            for prefix, queue in self._scripted.items():
                if path.startswith(prefix) and queue:
                    answer = queue.pop(0)
                    return PlainTextResponse(answer.body, status_code=answer.status, headers=answer.headers)
        return None

    async def _keep(self, kind: str, request: Request) -> tuple[Received, Response | None]:
        body = await request.body()
        entry = Received(kind, request.url.path, dict(request.headers), body)
        with self._lock:
            self.received.append(entry)
        return entry, self._scripted_answer(request.url.path)

    async def slack(self, request: Request) -> Response:
        entry, scripted = await self._keep("slack", request)
        if scripted is not None:
            return scripted
        try:
            payload = entry.json()
        except ValueError:
            return PlainTextResponse("invalid_payload", status_code=400)
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return PlainTextResponse("no_text", status_code=400)
        if len(payload.get("blocks") or []) > 50:
            return PlainTextResponse("invalid_blocks", status_code=400)
        return PlainTextResponse("ok")

    async def pagerduty(self, request: Request) -> Response:
        entry, scripted = await self._keep("pagerduty", request)
        if scripted is not None:
            return scripted
        try:
            event = entry.json()
        except ValueError:
            return self._pd_invalid("Event object is invalid")
        errors = []
        key = event.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
        dedup = event.get("dedup_key")
        if action in ("acknowledge", "resolve") and not dedup:
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if action == "trigger":
            payload = event.get("payload") or {}
            if not payload.get("summary") or len(payload["summary"]) > 1024:
                errors.append("'payload.summary' is missing or too long")
            if not payload.get("source"):
                errors.append("'payload.source' is missing")
            if payload.get("severity") not in PD_SEVERITIES:
                errors.append("'payload.severity' is invalid")
        if errors:
            return self._pd_invalid("Event object is invalid", errors)
        dedup = dedup or uuid.uuid4().hex
        with self._lock:
            state = self.pagerduty_alerts.get(dedup)
            if action == "trigger":
                if state in (None, "resolved"):
                    self.pagerduty_alerts[dedup] = "triggered"
            elif state in ("triggered", "acknowledged"):  # on a resolved/unknown alert: dropped
                self.pagerduty_alerts[dedup] = "acknowledged" if action == "acknowledge" else "resolved"
        return JSONResponse(
            {"status": "success", "message": "Event processed", "dedup_key": dedup}, status_code=202
        )

    @staticmethod
    def _pd_invalid(message: str, errors: list[str] | None = None) -> Response:
        return JSONResponse(
            {"status": "invalid event", "message": message, "errors": errors or [message]}, status_code=400
        )

    async def webhook(self, request: Request) -> Response:
        _, scripted = await self._keep("webhook", request)
        return scripted or PlainTextResponse("received")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/slack/{secret:path}", self.slack, methods=["POST"]),
                Route("/pagerduty/v2/enqueue", self.pagerduty, methods=["POST"]),
                Route("/webhook/{name:path}", self.webhook, methods=["POST"]),
            ]
        )


class _Inbox:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.split("@")[0] in self.server.unknown_mailboxes:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.temporary_failures > 0:
            self.server.temporary_failures -= 1
            return "451 4.3.0 try again later"
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.server.messages.append(
            (envelope.mail_from or "", list(envelope.rcpt_tos), message_from_bytes(content))
        )
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on a loopback port, keeping every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[tuple[str, list[str], Message]] = []
        self.unknown_mailboxes: set[str] = set()
        self.temporary_failures = 0
        self._controller = Controller(_Inbox(self), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
