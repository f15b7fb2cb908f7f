"""Request bodies for the ingest endpoints: size limits and decompression, zip bombs included.

The limit applies twice: to the bytes on the wire (checked against ``Content-Length`` before
reading, then counted while streaming, since a client may lie or send chunked) and to the
decompressed bytes (a gzip body of a few kilobytes can inflate to gigabytes).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import AsyncIterator

_CHUNK = 1 << 16


class BodyError(Exception):
    """The body cannot be used; ``status`` is the HTTP answer (400, 413 or 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_content_length(header: str | None, limit: int) -> None:
    if header is None:
        return
    try:
        declared = int(header)
    except ValueError:
        raise BodyError(400, f"Content-Length: {header!r} is not a number") from None
    if declared > limit:
        raise BodyError(413, f"body: {declared} bytes is over the limit of {limit} bytes")


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole stream, or 413 as soon as it passes ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"body: over the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (identity, gzip, x-gzip, deflate), refusing output over
    ``limit`` bytes. Unknown encodings are 415, corrupt data 400."""
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        return body
    if name in ("gzip", "x-gzip"):
        return _inflate(body, zlib.MAX_WBITS | 16, limit, name)
    if name == "deflate":
        # RFC 9110 says zlib format; some clients send raw deflate. Try both.
        try:
            return _inflate(body, zlib.MAX_WBITS, limit, name)
        except BodyError as exc:
            if exc.status == 413:
                raise
            return _inflate(body, -zlib.MAX_WBITS, limit, name)
    raise BodyError(415, f"Content-Encoding: {encoding!r} is not supported; use gzip, deflate or identity")


def _inflate(body: bytes, wbits: int, limit: int, name: str) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out: list[bytes] = []
    size = 0
    data = body
    try:
        while True:
            # max_length bounds each step, so a bomb never gets to allocate its full size.
            chunk = inflater.decompress(data, _CHUNK)
            size += len(chunk)
            if size > limit:
                raise BodyError(413, f"body: over the limit of {limit} bytes once decompressed ({name})")
            out.append(chunk)
            data = inflater.unconsumed_tail
            if inflater.eof:
                # gzip allows several members one after another (`cat a.gz b.gz`).
                rest = inflater.unused_data
                if wbits & 16 and rest.strip(b"\x00"):
                    inflater = zlib.decompressobj(wbits)
                    data = rest
                    continue
                break
            if not data and not chunk:
                raise BodyError(400, f"body: truncated {name} data")
    except zlib.error as exc:
        raise BodyError(400, f"body: invalid {name} data ({exc})") from None
    return b"".join(out)


def legacy_sentry_body(body: bytes, limit: int) -> bytes:
    """Old Sentry SDKs posted ``/store/`` bodies as base64 of zlib-compressed JSON."""
    stripped = body.strip()
    if not stripped or stripped[:1] in (b"{", b"["):
        return body
    try:
        raw = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        return body
    try:
        return _inflate(raw, zlib.MAX_WBITS, limit, "deflate")
    except BodyError as exc:
        if exc.status == 413:
            raise
        return body
