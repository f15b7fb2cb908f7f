"""HTTP details both providers share: the client, retry-after parsing, transport failures."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping

import httpx

from vigil.llm.client import LLMError, LLMUnavailable

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def make_http_client(timeout_s: float, headers: Mapping[str, str] | None = None) -> httpx.AsyncClient:
    # The read timeout bounds the gap between bytes (streams keep it alive); LLM's own deadline
    # bounds the whole answer.
    timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
    return httpx.AsyncClient(timeout=timeout, headers=dict(headers or {}), follow_redirects=False)


def parse_duration(text: str) -> float | None:
    """OpenAI's reset headers: ``6m0s``, ``1.5s``, ``20ms``, ``1h2m3s`` → seconds."""
    text = text.strip()
    if not text:
        return None
    total = 0.0
    consumed = 0
    for match in _DURATION_PART.finditer(text):
        number, unit = float(match.group(1)), match.group(2)
        total += number * {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}[unit]
        consumed += len(match.group(0))
    if consumed != len(text):
        try:
            return float(text)
        except ValueError:
            return None
    return total


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms``, ``retry-after`` (seconds or
    an HTTP date), or OpenAI's ``x-ratelimit-reset-*`` for whichever limit is exhausted."""
    if value := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    if value := headers.get("retry-after"):
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                parsed = None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    waits = []
    for kind in ("requests", "tokens"):
        if headers.get(f"x-ratelimit-remaining-{kind}") == "0":
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
            if reset is not None:
                waits.append(reset)
    return max(waits) if waits else None


def transport_error(exc: httpx.HTTPError, url: str) -> LLMError:
    if isinstance(exc, httpx.TimeoutException):
        return LLMUnavailable(f"{url} timed out ({type(exc).__name__})")
    return LLMUnavailable(f"cannot reach {url}: {type(exc).__name__}: {exc}")
