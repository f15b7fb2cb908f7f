"""Outbound notifications: one notifier per channel type, a router that queues deliveries with
the alert change that causes them, and a dispatcher that sends them with retries."""

from __future__ import annotations

from vigil.alerting.notifications.base import Notifier
from vigil.alerting.notifications.email import EmailNotifier
from vigil.alerting.notifications.pagerduty import PagerDutyNotifier
from vigil.alerting.notifications.slack import SlackNotifier
from vigil.alerting.notifications.webhook import WebhookNotifier

NOTIFIERS: dict[str, Notifier] = {
    n.type: n for n in (SlackNotifier(), EmailNotifier(), PagerDutyNotifier(), WebhookNotifier())
}

__all__ = ["NOTIFIERS", "Notifier"]
