"""Generic webhook: the notification as JSON, optionally signed.

With a secret, ``X-Vigil-Signature: sha256=<hex>`` is HMAC-SHA256 over
``<X-Vigil-Timestamp>.<raw body>``, so a receiver can check both origin and freshness:
``hmac.compare_digest(sig, "sha256=" + hmac.new(secret, f"{ts}.".encode() + body, sha256).hexdigest())``.
Any 2xx is success; 408, 425, 429 and 5xx are retried; other 4xx are not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from vigil.alerting.notifications.base import (
    USER_AGENT,
    Channel,
    SendResult,
    check_http_url,
    http_failure,
    transport_failure,
)

_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host"})


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookNotifier:
    type: str = "webhook"
    secret_fields: tuple[str, ...] = ("hmac_secret", "headers")

    def validate(self, config: dict[str, Any], secrets: dict[str, Any]) -> None:
        check_http_url(config.get("url"), "config.url")
        for where, headers in (
            ("config.headers", config.get("headers")),
            ("secrets.headers", secrets.get("headers")),
        ):
            if headers is None:
                continue
            if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
            ):
                raise ValueError(f"{where}: an object of header names to string values")
            reserved = sorted(k for k in headers if k.lower() in _RESERVED_HEADERS)
            if reserved:
                raise ValueError(f"{where}: {reserved[0]} is set by Vigil")
        secret = secrets.get("hmac_secret")
        if secret is not None and (not isinstance(secret, str) or len(secret) < 16):
            raise ValueError("secrets.hmac_secret: at least 16 characters")

    async def send(
        self, channel: Channel, message: dict[str, Any], *, dedup_key: str, http: httpx.AsyncClient
    ) -> SendResult:
        body = json.dumps({**message, "dedup_key": dedup_key}, separators=(",", ":"), default=str).encode()
        timestamp = str(int(time.time()))
        headers = {
            **(channel.config.get("headers") or {}),
            **(channel.secrets.get("headers") or {}),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Vigil-Event": str(message.get("event", "trigger")),
            "X-Vigil-Timestamp": timestamp,
            "X-Vigil-Dedup-Key": dedup_key,
        }
        secret = channel.secrets.get("hmac_secret")
        if secret:
            headers["X-Vigil-Signature"] = sign(secret, timestamp, body)
        try:
            response = await http.post(channel.config["url"], content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise transport_failure(exc, "webhook") from exc
        if not 200 <= response.status_code < 300:
            raise http_failure(response, "webhook")
        return SendResult(response.status_code, response.text.strip()[:100])
