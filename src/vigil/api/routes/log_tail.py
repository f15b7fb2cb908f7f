"""Live tail: ``/ws/logs`` streams new log lines matching the same filters as the search API.

Fed by ``bus.broadcast`` on ``topology.LIVE_LOGS`` (the log stage publishes every stored batch),
so every API replica delivers every line. Authentication: ``?token=<api token>``, an
``Authorization: Bearer`` header, or the session cookie (same origin only); failures close
with 4401 (not authenticated) or 4403 (not allowed).

Query parameters: ``host``, ``service``, ``source``, ``os``, ``level``, ``severity``,
``failure_type`` (each repeatable), ``template_id``, and ``q`` (every word must appear in the
message, case-insensitive). Server → client: ``{"type": "hello", "filters": {...}}`` once
subscribed, then ``{"type": "logs", "items": [line, ...]}``. A client that falls more than
``CLIENT_QUEUE`` batches behind is closed with 1013 and should reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from vigil.api.auth import SESSION_COOKIE, Principal, authenticate, backends_of
from vigil.pipeline import topology

log = logging.getLogger(__name__)

router = APIRouter()

CLIENT_QUEUE = 500
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400
CLOSE_TOO_SLOW = 1013
_MULTI = ("host", "service", "source", "os", "level", "severity", "failure_type")


async def _principal(websocket: WebSocket) -> Principal | None:
    token = websocket.query_params.get("token")
    if not token and "authorization" not in websocket.headers and SESSION_COOKIE in websocket.cookies:
        origin = websocket.headers.get("origin")
        if origin and urlsplit(origin).netloc != websocket.headers.get("host"):
            await _close(websocket, CLOSE_FORBIDDEN, "cross-origin WebSocket with a session cookie")
            return None
    # authenticate() reads headers, cookies and the app, which a WebSocket has too.
    principal = await authenticate(cast(Request, websocket), token=token)
    if principal is None:
        await _close(
            websocket, CLOSE_UNAUTHENTICATED, "authentication required: ?token=<api token> or log in"
        )
        return None
    if not principal.can("read"):
        await _close(websocket, CLOSE_FORBIDDEN, "needs the 'read' permission")
        return None
    return principal


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    await websocket.accept()
    await websocket.close(code=code, reason=reason)


class TailFilter:
    def __init__(self, params: dict[str, list[str]]) -> None:
        self.sets = {name: frozenset(params[name]) for name in _MULTI if params.get(name)}
        template = params.get("template_id")
        self.template_id = int(template[0]) if template else None
        words = " ".join(params.get("q") or []).lower().split()
        self.words = tuple(w.strip('"') for w in words if w.strip('"'))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: sorted(values) for name, values in self.sets.items()}
        if self.template_id is not None:
            out["template_id"] = self.template_id
        if self.words:
            out["q"] = " ".join(self.words)
        return out

    def matches(self, line: dict[str, Any]) -> bool:
        for name, values in self.sets.items():
            if line.get(name) not in values:
                return False
        if self.template_id is not None and line.get("template_id") != self.template_id:
            return False
        if self.words:
            message = str(line.get("message", "")).lower()
            return all(word in message for word in self.words)
        return True


@router.websocket("/ws/logs")
async def ws_logs(websocket: WebSocket) -> None:
    principal = await _principal(websocket)
    if principal is None:
        return
    params: dict[str, list[str]] = {}
    for key, value in websocket.query_params.multi_items():
        params.setdefault(key, []).append(value)
    try:
        tail = TailFilter(params)
    except ValueError:
        await _close(websocket, CLOSE_BAD_REQUEST, "template_id: must be an integer")
        return
    await websocket.accept()
    bus = backends_of(cast(Request, websocket)).bus
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=CLIENT_QUEUE)
    overflow = asyncio.Event()

    async def pump(ready: asyncio.Event) -> None:
        async with bus.subscribe(topology.LIVE_LOGS) as subscription:
            ready.set()
            async for _, payload in subscription:
                try:
                    items = orjson.loads(payload).get("items") or []
                except (ValueError, AttributeError):
                    continue
                matching = [item for item in items if isinstance(item, dict) and tail.matches(item)]
                if not matching:
                    continue
                try:
                    queue.put_nowait(orjson.dumps({"type": "logs", "items": matching}).decode())
                except asyncio.QueueFull:
                    overflow.set()
                    return

    async def send() -> None:
        while True:
            await websocket.send_text(await queue.get())

    async def receive() -> None:
        while True:
            await websocket.receive_text()  # nothing to say yet; detects the close

    ready = asyncio.Event()
    tasks = [asyncio.create_task(pump(ready)), asyncio.create_task(send()), asyncio.create_task(receive())]
    watcher = asyncio.create_task(overflow.wait())
    try:
        await asyncio.wait_for(ready.wait(), timeout=10)
        # Hello only once subscribed: a client that has read it sees every later line.
        await websocket.send_text(
            orjson.dumps(
                {"type": "hello", "channel": "logs", "user": principal.actor, "filters": tail.describe()}
            ).decode()
        )
        done, _ = await asyncio.wait([*tasks, watcher], return_when=asyncio.FIRST_COMPLETED)
        if watcher in done and websocket.client_state == WebSocketState.CONNECTED:
            await websocket.close(code=CLOSE_TOO_SLOW, reason="too slow: reconnect")
        for task in done:
            if task is not watcher and not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                if not isinstance(exc, WebSocketDisconnect | RuntimeError):
                    log.warning("log tail ended: %s", exc)
    except (WebSocketDisconnect, RuntimeError, TimeoutError):
        pass
    finally:
        for task in [*tasks, watcher]:
            task.cancel()
        await asyncio.gather(*tasks, watcher, return_exceptions=True)
        if websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()
