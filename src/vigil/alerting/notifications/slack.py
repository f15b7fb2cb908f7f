"""Slack incoming webhooks: a JSON message with Block Kit blocks and a fallback ``text``.

Success is 200 with the plain-text body ``ok``; errors are plain-text codes (``invalid_payload``,
``channel_not_found``...) with 4xx, which retrying does not fix; 429 and 5xx are retried.
"""

from __future__ import annotations

from typing import Any

import httpx

from vigil.alerting.notifications.base import (
    USER_AGENT,
    Channel,
    SendResult,
    check_http_url,
    details,
    headline,
    http_failure,
    transport_failure,
)

_EMOJI = {
    "critical": ":red_circle:",
    "high": ":large_orange_circle:",
    "medium": ":large_yellow_circle:",
    "low": ":white_circle:",
}
HEADER_LIMIT = 150
SECTION_LIMIT = 3000


def _mrkdwn_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(message: dict[str, Any]) -> dict[str, Any]:
    alert = message.get("alert") or {}
    event = message.get("event", "trigger")
    emoji = ":white_check_mark:" if event == "resolve" else _EMOJI.get(str(alert.get("severity")), ":bell:")
    title = headline(message)
    facts = "\n".join(f"*{label}:* {_mrkdwn_escape(value)}" for label, value in details(message))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:HEADER_LIMIT], "emoji": True}},
    ]
    if facts:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": facts[:SECTION_LIMIT]}})
    context = f"Vigil alert #{alert.get('id', '?')}"
    blocks += [{"type": "divider"}, {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}]
    return {"text": f"{emoji} {title}", "blocks": blocks}


class SlackNotifier:
    type: str = "slack"
    secret_fields: tuple[str, ...] = ("webhook_url",)

    def validate(self, config: dict[str, Any], secrets: dict[str, Any]) -> None:
        check_http_url(secrets.get("webhook_url"), "secrets.webhook_url")

    async def send(
        self, channel: Channel, message: dict[str, Any], *, dedup_key: str, http: httpx.AsyncClient
    ) -> SendResult:
        try:
            response = await http.post(
                channel.secrets["webhook_url"],
                json=slack_payload(message),
                headers={"User-Agent": USER_AGENT},
            )
        except httpx.HTTPError as exc:
            raise transport_failure(exc, "Slack") from exc
        if response.status_code != 200:
            raise http_failure(response, "Slack")
        return SendResult(response.status_code, response.text.strip()[:100] or "ok")
