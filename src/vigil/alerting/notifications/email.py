"""E-mail over SMTP (optionally STARTTLS or implicit TLS, optionally authenticated).

The standard library's smtplib runs in a thread so the event loop is never blocked. 5xx SMTP
replies (mailbox unknown, relaying denied, bad credentials) are not retried; 4xx replies and
connection failures are.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

import httpx

from vigil.alerting.notifications.base import Channel, DeliveryError, SendResult, headline, plain_text

TIMEOUT_S = 15.0


def _check_address(value: Any, field: str) -> None:
    if not isinstance(value, str) or "@" not in parseaddr(value)[1]:
        raise ValueError(f"{field}: an e-mail address")


def build_email(config: dict[str, Any], message: dict[str, Any], dedup_key: str) -> EmailMessage:
    email = EmailMessage()
    email["Subject"] = headline(message)[:200]
    email["From"] = config["from"]
    email["To"] = ", ".join(config["to"])
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = make_msgid(domain="vigil")
    # Threads a conversation per alert in most mail clients.
    email["References"] = f"<{dedup_key}@vigil>"
    email["X-Vigil-Event"] = str(message.get("event", "trigger"))
    email.set_content(plain_text(message))
    return email


def _send_blocking(config: dict[str, Any], password: str | None, email: EmailMessage) -> str:
    host, port = config["host"], int(config.get("port") or 25)
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if config.get("ssl"):
        smtp = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_S, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=TIMEOUT_S)
    try:
        smtp.ehlo()
        if config.get("starttls") and not config.get("ssl"):
            smtp.starttls(context=context)
            smtp.ehlo()
        if config.get("username"):
            smtp.login(config["username"], password or "")
        refused = smtp.send_message(email)
    finally:
        try:
            smtp.quit()
        except smtplib.SMTPException:
            smtp.close()
    accepted = len(config["to"]) - len(refused)
    return f"accepted for {accepted} of {len(config['to'])} recipients"


class EmailNotifier:
    type: str = "email"
    secret_fields: tuple[str, ...] = ("password",)

    def validate(self, config: dict[str, Any], secrets: dict[str, Any]) -> None:
        if not isinstance(config.get("host"), str) or not config["host"]:
            raise ValueError("config.host: the SMTP server's host name")
        port = config.get("port", 25)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ValueError("config.port: a TCP port number")
        _check_address(config.get("from"), "config.from")
        recipients = config.get("to")
        if not isinstance(recipients, list) or not recipients:
            raise ValueError("config.to: a non-empty list of e-mail addresses")
        for i, address in enumerate(recipients):
            _check_address(address, f"config.to[{i}]")
        if config.get("ssl") and config.get("starttls"):
            raise ValueError("config.starttls: use either ssl (implicit TLS) or starttls, not both")
        if secrets.get("password") is not None and not config.get("username"):
            raise ValueError("config.username: required when a password is given")

    async def send(
        self, channel: Channel, message: dict[str, Any], *, dedup_key: str, http: httpx.AsyncClient
    ) -> SendResult:
        email = build_email(channel.config, message, dedup_key)
        try:
            detail = await asyncio.to_thread(
                _send_blocking, channel.config, channel.secrets.get("password"), email
            )
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"SMTP refused every recipient: {exc.recipients}", retryable=False) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"SMTP login failed: {exc.smtp_code} {exc.smtp_error!r}",
                retryable=False,
                status=exc.smtp_code,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP answered {exc.smtp_code}: {exc.smtp_error!r}",
                retryable=exc.smtp_code < 500,
                status=exc.smtp_code,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"SMTP server unreachable: {type(exc).__name__}: {exc}", retryable=True
            ) from exc
        return SendResult(250, detail)
