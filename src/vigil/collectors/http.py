"""HTTP plumbing shared by the API collectors: one error vocabulary, rate limits respected.

Every failure becomes a ``CollectError`` whose message an operator can act on ("403 from
api.datadoghq.com: Forbidden — check the API and application keys"), never a stack trace.
A 429 whose wait is short is waited out inside the poll (pagination keeps its place); a longer
one raises ``RateLimited`` carrying the wait, and the scheduler comes back then.
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from vigil import __version__
from vigil.collectors.base import CollectError, RateLimited

USER_AGENT = f"vigil/{__version__}"
# Waits up to this long inside a poll are slept through; longer ones end the poll.
MAX_INLINE_WAIT_S = 5.0
MAX_INLINE_RETRIES = 2

RetryAfter = Callable[[httpx.Response], float | None]
Describe = Callable[[httpx.Response], str]


# Building a verifying SSL context loads the CA bundle (tens of ms of CPU); with many sources
# polled at once that stalls the event loop, so contexts are built once per process.
_SSL_CONTEXTS: dict[bool, ssl.SSLContext] = {}


def ssl_context(verify: bool) -> ssl.SSLContext:
    context = _SSL_CONTEXTS.get(verify)
    if context is None:
        # httpx's own context (its CA bundle, SSL_CERT_FILE/SSL_CERT_DIR honoured).
        context = _SSL_CONTEXTS[verify] = httpx.create_ssl_context(verify=verify)
    return context


def client(
    base_url: str,
    *,
    timeout_s: float,
    verify_tls: bool = True,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_s),
        verify=ssl_context(verify_tls),
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        auth=auth,
        follow_redirects=False,
    )


def retry_after_header(response: httpx.Response) -> float | None:
    """RFC 9110 Retry-After: delay in seconds or an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def default_describe(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] or response.reason_phrase


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    describe: Describe = default_describe,
    retry_after: RetryAfter = retry_after_header,
    ok: tuple[int, ...] = (200,),
    **kwargs: Any,
) -> httpx.Response:
    """One request with the shared error handling; answers outside ``ok`` raise."""
    for attempt in range(MAX_INLINE_RETRIES + 1):
        try:
            response = await http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise CollectError(f"{method} {_where(http, url)} timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise CollectError(f"cannot reach {_where(http, url)}: {exc or type(exc).__name__}") from exc
        if response.status_code in ok:
            return response
        if response.status_code == 429:
            wait = retry_after(response)
            if wait is not None and wait <= MAX_INLINE_WAIT_S and attempt < MAX_INLINE_RETRIES:
                await asyncio.sleep(wait)
                continue
            raise RateLimited(
                f"rate limited by {_where(http, url)}"
                + (f"; retry in {wait:.0f}s" if wait is not None else "")
                + f": {describe(response)}",
                retry_after_s=wait if wait is not None else 60.0,
            )
        hint = {
            401: " (check the credentials)",
            403: " (check the credentials and their permissions)",
            404: " (check the target URL and ids)",
        }.get(response.status_code, "")
        raise CollectError(f"{response.status_code} from {_where(http, url)}{hint}: {describe(response)}")
    raise AssertionError("unreachable")


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise CollectError(
            f"{response.request.method} {response.request.url.path} answered something that is not JSON: "
            f"{response.text[:120]!r}"
        ) from exc


def _where(http: httpx.AsyncClient, url: str) -> str:
    full = http.base_url.join(url) if not url.startswith(("http://", "https://")) else httpx.URL(url)
    return f"{full.host}{full.path}"
