"""Sending queued notifications: claim due deliveries, send them concurrently, record the
outcome, retry with backoff.

Deliveries are claimed with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so several
workers share the queue and a worker that dies mid-send only delays its deliveries until the
lease expires. Every attempt's outcome stays on the delivery row: the delivery log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select

from vigil.alerting.notifications import NOTIFIERS
from vigil.alerting.notifications.base import Channel, DeliveryError, Notifier
from vigil.security import SecretBox
from vigil.store.db import Database
from vigil.store.models import NotificationChannel, NotificationDelivery, TimelineEntry
from vigil.store.types import utcnow
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchOptions:
    poll_interval_s: float = 1.0
    batch: int = 20
    # Wait before attempt 2, 3, ... (the last value repeats).
    backoff_s: tuple[float, ...] = (10.0, 30.0, 120.0, 600.0, 1800.0)
    max_attempts: int = 6
    lease_s: float = 120.0
    timeout_s: float = 10.0


@dataclass
class _Claimed:
    id: int
    event: str
    attempts: int
    alert_id: int | None
    incident_id: int | None
    dedup_key: str
    message: dict[str, Any]
    channel: Channel | None
    problem: str | None  # why it cannot be sent at all


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    ok: bool
    status: int | None
    detail: str
    retry_at: datetime | None = None


def channel_secrets(box: SecretBox, row: NotificationChannel) -> dict[str, Any]:
    if not row.secret_encrypted:
        return {}
    value = json.loads(box.decrypt(row.secret_encrypted))
    return value if isinstance(value, dict) else {}


class NotificationDispatcher:
    name = "notifications"

    def __init__(
        self,
        db: Database,
        secrets: SecretBox,
        options: DispatchOptions | None = None,
        notifiers: dict[str, Notifier] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.db = db
        self.secrets = secrets
        self.options = options or DispatchOptions()
        self.notifiers = notifiers or NOTIFIERS
        self._http = http

    def backoff(self, attempts: int) -> float:
        table = self.options.backoff_s
        return table[min(attempts - 1, len(table) - 1)]

    async def run(self, stopping: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=self.options.timeout_s) as http:
            self._http = http
            try:
                while not stopping.is_set():
                    sent = await self.dispatch_once()
                    if sent:
                        continue
                    await sleep_unless(stopping, self.options.poll_interval_s)
            finally:
                self._http = None

    async def dispatch_once(self, ids: list[int] | None = None) -> int:
        """Send what is due (or exactly ``ids``); returns how many were attempted."""
        claimed = await self._claim(ids)
        if not claimed:
            return 0
        own_client = self._http is None
        http = self._http or httpx.AsyncClient(timeout=self.options.timeout_s)
        try:
            outcomes = await asyncio.gather(*(self._send(c, http) for c in claimed))
        finally:
            if own_client:
                await http.aclose()
        await self._settle(claimed, outcomes)
        return len(claimed)

    async def _claim(self, ids: list[int] | None) -> list[_Claimed]:
        now = utcnow()
        async with self.db.session() as session:
            query = select(NotificationDelivery).where(
                NotificationDelivery.status.in_(("pending", "sending")),
                or_(NotificationDelivery.lease_until.is_(None), NotificationDelivery.lease_until < now),
            )
            if ids is not None:
                query = query.where(NotificationDelivery.id.in_(ids))
            else:
                query = query.where(NotificationDelivery.next_attempt_at <= now)
            query = query.order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id).limit(
                self.options.batch
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = list((await session.execute(query)).scalars())
            if not rows:
                return []
            channel_rows = {
                c.id: c
                for c in (
                    await session.execute(
                        select(NotificationChannel).where(
                            NotificationChannel.id.in_({r.channel_id for r in rows})
                        )
                    )
                ).scalars()
            }
            claimed = []
            for row in rows:
                row.status = "sending"
                row.attempts += 1
                row.lease_until = now + timedelta(seconds=self.options.lease_s)
                channel_row = channel_rows.get(row.channel_id)
                channel, problem = None, None
                if channel_row is None:
                    problem = "channel deleted"
                elif not channel_row.enabled and row.event != "test":
                    problem = f"channel {channel_row.name!r} is disabled"
                elif channel_row.type not in self.notifiers:
                    problem = f"unknown channel type {channel_row.type!r}"
                else:
                    try:
                        secrets = channel_secrets(self.secrets, channel_row)
                    except ValueError as exc:
                        problem = str(exc)
                    else:
                        channel = Channel(
                            channel_row.id,
                            channel_row.name,
                            channel_row.type,
                            dict(channel_row.config or {}),
                            secrets,
                        )
                claimed.append(
                    _Claimed(
                        row.id,
                        row.event,
                        row.attempts,
                        row.alert_id,
                        row.incident_id,
                        row.dedup_key or f"vigil-delivery-{row.id}",
                        dict(row.message or {}),
                        channel,
                        problem,
                    )
                )
        return claimed

    async def _send(self, claimed: _Claimed, http: httpx.AsyncClient) -> Outcome:
        if claimed.channel is None:
            return Outcome(claimed.id, False, None, claimed.problem or "cannot send")
        notifier = self.notifiers[claimed.channel.type]
        try:
            result = await notifier.send(
                claimed.channel, claimed.message, dedup_key=claimed.dedup_key, http=http
            )
        except DeliveryError as exc:
            retry_at = None
            if exc.retryable and claimed.attempts < self.options.max_attempts:
                wait = max(self.backoff(claimed.attempts), exc.retry_after_s or 0.0)
                retry_at = utcnow() + timedelta(seconds=wait)
            return Outcome(claimed.id, False, exc.status, str(exc), retry_at)
        except Exception as exc:  # a notifier bug must not stop the others
            log.exception("notifier %s crashed on delivery %s", claimed.channel.type, claimed.id)
            return Outcome(claimed.id, False, None, f"{type(exc).__name__}: {exc}")
        return Outcome(claimed.id, True, result.status, result.detail)

    async def _settle(self, claimed: list[_Claimed], outcomes: list[Outcome]) -> None:
        now = utcnow()
        by_id = {c.id: c for c in claimed}
        async with self.db.session() as session:
            rows = await session.execute(
                select(NotificationDelivery).where(
                    NotificationDelivery.id.in_([o.delivery_id for o in outcomes])
                )
            )
            deliveries = {d.id: d for d in rows.scalars()}
            for outcome in outcomes:
                delivery = deliveries.get(outcome.delivery_id)
                if delivery is None:
                    continue
                info = by_id[outcome.delivery_id]
                name = info.channel.name if info.channel else f"channel {delivery.channel_id}"
                delivery.lease_until = None
                delivery.response_status = outcome.status
                if outcome.ok:
                    delivery.status = "sent"
                    delivery.sent_at = now
                    delivery.last_error = None
                    message = f"{delivery.event} notification sent to {name}"
                    kind = "notified"
                elif outcome.retry_at is not None:
                    delivery.status = "pending"
                    delivery.next_attempt_at = outcome.retry_at
                    delivery.last_error = outcome.detail
                    continue  # the timeline records the final outcome only
                else:
                    delivery.status = "failed"
                    delivery.last_error = outcome.detail
                    message = f"{delivery.event} notification to {name} failed: {outcome.detail}"
                    kind = "notification_failed"
                if delivery.alert_id is not None:
                    session.add(
                        TimelineEntry(
                            at=now,
                            alert_id=delivery.alert_id,
                            kind=kind,
                            actor="system",
                            message=message,
                            data={"delivery_id": delivery.id, "channel_id": delivery.channel_id},
                        )
                    )
