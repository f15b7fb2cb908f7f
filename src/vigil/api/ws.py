"""WebSockets: ``/ws/alerts`` (new and changed alerts and incidents) and ``/ws/metrics`` (new
points of the series a client subscribes to).

Both are fed by the bus's broadcast channels, so every API replica delivers every event: each
replica holds one subscription per channel (a ``BroadcastHub``) and fans it out to its own
clients. A client too slow to keep up is disconnected (close code 1013) rather than allowed to
grow the server's memory; it reconnects and re-reads the API.

Authentication (``websocket_principal``, reusable by other WebSocket endpoints): a
``?token=<api token>`` query parameter, an ``Authorization: Bearer`` header, or the browser's
session cookie; cookie sessions must come from the same origin (a page elsewhere cannot ride
on the user's cookie). Failures are a close with code 4401 (not authenticated) or 4403 (not
allowed), after accepting so that browsers see the code and reason.

Protocol, server → client: ``{"type": "hello", ...}`` once subscribed, then on ``/ws/alerts``
``{"type": "alerts", "events": [{"type": "alert.created"|..., "alert"|"incident": {...},
"time_ns"}]}``; on ``/ws/metrics`` ``{"type": "points", "points": [{"measurement", "field",
"tags", "value", "time_ns"}]}``. Client → ``/ws/metrics``: ``{"action": "subscribe" |
"unsubscribe", "series": [{"measurement", "field"?, "tags"?} | "cpu.usage_user{host=web-03}"]}``
or ``{"action": "clear"}``; answers ``{"type": "subscribed", "series": [...]}`` or
``{"type": "error", "detail": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from vigil.api.auth import SESSION_COOKIE, Principal, authenticate, backends_of
from vigil.bus.base import Bus
from vigil.bus.follow import follow_broadcast
from vigil.pipeline import topology
from vigil.pipeline.stages.alerting_live_metrics import SeriesFilter, interest_announcement
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)

router = APIRouter()

CLIENT_QUEUE = 1000  # messages a client may lag behind before it is disconnected
MAX_SERIES = 200  # subscriptions per /ws/metrics connection
INTEREST_EVERY_S = 2.0
INTEREST_TTL_S = 10.0
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 1013


async def websocket_principal(websocket: WebSocket, scope: str = "read") -> Principal | None:
    """Authenticate a WebSocket (token parameter, bearer header or same-origin session cookie);
    on failure close it with 4401/4403 and return None."""
    token = websocket.query_params.get("token")
    using_cookie = (
        not token and "authorization" not in websocket.headers and SESSION_COOKIE in websocket.cookies
    )
    if using_cookie:
        origin = websocket.headers.get("origin")
        if origin and urlsplit(origin).netloc != websocket.headers.get("host"):
            await _refuse(websocket, CLOSE_FORBIDDEN, "cross-origin WebSocket with a session cookie")
            return None
    # authenticate() reads only headers, cookies and the app, which a WebSocket has too.
    principal = await authenticate(cast(Request, websocket), token=token)
    if principal is None:
        await _refuse(
            websocket, CLOSE_UNAUTHENTICATED, "authentication required: ?token=<api token> or log in"
        )
        return None
    if not principal.can(scope):
        await _refuse(websocket, CLOSE_FORBIDDEN, f"needs the '{scope}' permission")
        return None
    return principal


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    await websocket.accept()
    await websocket.close(code=code, reason=reason)


class Client:
    """One connection's outbox; ``overflowed`` once it fell too far behind."""

    def __init__(self, accept: Callable[[Any], Any | None] | None = None) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=CLIENT_QUEUE)
        self.overflowed = asyncio.Event()
        self.accept = accept  # maps a decoded broadcast to the text to send (or None); None: send as is

    def offer(self, text: str) -> None:
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.overflowed.set()


class BroadcastHub:
    """One subscription to a broadcast channel per process, fanned out to local clients.
    Runs while it has clients; ``join`` returns once the subscription is active."""

    def __init__(self, bus: Bus, channel: str, decode: bool = False) -> None:
        self.bus = bus
        self.channel = channel
        self.decode = decode  # clients with filters get the decoded payload
        self.clients: set[Client] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.on_change: Callable[[], None] | None = None

    async def join(self, client: Client) -> None:
        self.clients.add(client)
        if self._task is None or self._task.done():
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._pump(), name=f"ws-hub:{self.channel}")
        if self.on_change:
            self.on_change()
        await asyncio.wait_for(self._ready.wait(), timeout=10.0)

    async def leave(self, client: Client) -> None:
        self.clients.discard(client)
        if self.on_change:
            self.on_change()
        if not self.clients and self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _pump(self) -> None:
        await follow_broadcast(self.bus, self.channel, self._deliver, on_subscribed=self._ready.set)

    def _deliver(self, payload: bytes) -> None:
        text = payload.decode()
        decoded: Any = None
        for client in list(self.clients):
            if client.accept is None:
                client.offer(text)
                continue
            if decoded is None:
                try:
                    decoded = orjson.loads(payload)
                except ValueError:
                    return
            out = client.accept(decoded)
            if out is not None:
                client.offer(out)


def hub(websocket: WebSocket, channel: str) -> BroadcastHub:
    hubs: dict[str, BroadcastHub] | None = getattr(websocket.app.state, "ws_hubs", None)
    if hubs is None:
        hubs = {}
        websocket.app.state.ws_hubs = hubs
    if channel not in hubs:
        hubs[channel] = BroadcastHub(backends_of(cast(Request, websocket)).bus, channel)
    return hubs[channel]


def merge_frames(texts: list[str]) -> list[str]:
    """Frames waiting for the same client, merged where they are lists of the same kind
    (``{"type": "alerts", "events": [...]}``, ``{"type": "points", "points": [...]}``): under
    load a client gets one frame with everything new instead of a frame per broadcast, which
    is what keeps fan-out cheap; when idle, every frame goes out alone and at once."""
    merged: list[str] = []
    for text in texts:
        previous = merged[-1] if merged else ""
        for prefix in ('{"type":"alerts","events":[', '{"type":"points","points":['):
            if previous.startswith(prefix) and text.startswith(prefix) and text.endswith("]}"):
                inner = text[len(prefix) : -2]
                if inner:
                    merged[-1] = (previous[:-2] + "," + inner + "]}") if previous != prefix + "]}" else text
                break
        else:
            merged.append(text)
    return merged


async def _pump_to_socket(websocket: WebSocket, client: Client) -> None:
    while True:
        texts = [await client.queue.get()]
        while not client.queue.empty() and len(texts) < 200:
            texts.append(client.queue.get_nowait())
        for text in merge_frames(texts) if len(texts) > 1 else texts:
            await websocket.send_text(text)


async def _serve(
    websocket: WebSocket,
    client: Client,
    hub_: BroadcastHub,
    hello: dict[str, Any],
    on_message: Callable[[Any], Any] | None = None,
) -> None:
    await hub_.join(client)
    try:
        # Hello first: once a client reads it, every later event reaches it.
        await websocket.send_text(orjson.dumps(hello).decode())
    except (WebSocketDisconnect, RuntimeError):
        await hub_.leave(client)
        return
    sender = asyncio.create_task(_pump_to_socket(websocket, client))
    receiver = asyncio.create_task(_receive(websocket, on_message))
    overflow = asyncio.create_task(client.overflowed.wait())
    try:
        done, _ = await asyncio.wait({sender, receiver, overflow}, return_when=asyncio.FIRST_COMPLETED)
        if overflow in done and websocket.client_state == WebSocketState.CONNECTED:
            await websocket.close(code=CLOSE_TOO_SLOW, reason="too slow: reconnect and reload")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        for task in (sender, receiver, overflow):
            task.cancel()
        await asyncio.gather(sender, receiver, overflow, return_exceptions=True)
        await hub_.leave(client)


async def _receive(websocket: WebSocket, on_message: Callable[[Any], Any] | None) -> None:
    while True:
        text = await websocket.receive_text()
        if on_message is None:
            continue
        try:
            message = orjson.loads(text)
        except ValueError:
            await websocket.send_text(
                orjson.dumps({"type": "error", "detail": "messages are JSON objects"}).decode()
            )
            continue
        reply = await on_message(message)
        if reply is not None:
            await websocket.send_text(orjson.dumps(reply).decode())


@router.websocket("/ws/alerts")
async def ws_alerts(websocket: WebSocket) -> None:
    principal = await websocket_principal(websocket)
    if principal is None:
        return
    await websocket.accept()
    await _serve(
        websocket,
        Client(),
        hub(websocket, topology.LIVE_ALERTS),
        {"type": "hello", "channel": "alerts", "user": principal.actor},
    )


class MetricsInterest:
    """The series this replica's clients watch, announced to the live-metrics stage on change
    and every few seconds (announcements expire, so a dead replica stops costing anything)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.replica = uuid.uuid4().hex
        self.clients: dict[int, set[SeriesFilter]] = {}
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def set(self, client_id: int, filters: set[SeriesFilter] | None) -> None:
        if filters:
            self.clients[client_id] = set(filters)
        else:
            self.clients.pop(client_id, None)
        self._changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._announce_loop(), name="ws-metrics-interest")

    async def _announce_loop(self) -> None:
        while True:
            filters = set().union(*self.clients.values()) if self.clients else set()
            with contextlib.suppress(Exception):
                await self.bus.broadcast(
                    topology.LIVE_METRICS_INTEREST,
                    interest_announcement(self.replica, sorted(filters, key=repr), INTEREST_TTL_S),
                )
            if not self.clients:
                return
            self._changed.clear()
            await sleep_unless(self._changed, INTEREST_EVERY_S)


def _interest(websocket: WebSocket) -> MetricsInterest:
    interest: MetricsInterest | None = getattr(websocket.app.state, "ws_metrics_interest", None)
    if interest is None:
        interest = MetricsInterest(backends_of(cast(Request, websocket)).bus)
        websocket.app.state.ws_metrics_interest = interest
    return interest


@router.websocket("/ws/metrics")
async def ws_metrics(websocket: WebSocket) -> None:
    principal = await websocket_principal(websocket)
    if principal is None:
        return
    await websocket.accept()
    interest = _interest(websocket)
    filters: set[SeriesFilter] = set()

    def accept(decoded: Any) -> str | None:
        if not filters or not isinstance(decoded, dict):
            return None
        points = [
            {"measurement": m, "field": f, "tags": tags, "value": value, "time_ns": t}
            for m, f, tags, value, t in decoded.get("points") or ()
            if any(s.matches(m, tags, f) for s in filters)
        ]
        return orjson.dumps({"type": "points", "points": points}).decode() if points else None

    client = Client(accept)

    async def on_message(message: Any) -> dict[str, Any]:
        if not isinstance(message, dict) or message.get("action") not in (
            "subscribe",
            "unsubscribe",
            "clear",
        ):
            return {"type": "error", "detail": "action: must be subscribe, unsubscribe or clear"}
        if message["action"] == "clear":
            filters.clear()
        else:
            raw = message.get("series")
            if not isinstance(raw, list) or not raw:
                return {"type": "error", "detail": "series: a non-empty list of series"}
            parsed = []
            for i, item in enumerate(raw):
                try:
                    parsed.append(SeriesFilter.parse(item))
                except ValueError as exc:
                    return {"type": "error", "detail": f"series[{i}]: {exc}"}
            if message["action"] == "subscribe":
                if len(filters | set(parsed)) > MAX_SERIES:
                    return {"type": "error", "detail": f"series: at most {MAX_SERIES} per connection"}
                filters.update(parsed)
            else:
                filters.difference_update(parsed)
        interest.set(id(client), filters)
        return {"type": "subscribed", "series": [f.to_dict() for f in sorted(filters, key=repr)]}

    try:
        await _serve(
            websocket,
            client,
            hub(websocket, topology.LIVE_METRICS),
            {"type": "hello", "channel": "metrics", "user": principal.actor},
            on_message,
        )
    finally:
        interest.set(id(client), None)
