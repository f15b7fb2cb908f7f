"""Helpers shared by the benchmarks: where the shared data lives, JSON output, result tables."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import urllib.parse
from pathlib import Path
from typing import Any, NamedTuple

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("VIGIL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_data(name: str) -> Path:
    """Default location of a shared benchmark corpus (``../shared/data/<name>``)."""
    return SHARED_DATA / name


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise SystemExit(
            f"{what} not found at {path}: pass --data DIR (a clone of Vigil has no ../shared/data)"
        )
    return path


def print_json(result: Any) -> None:
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=False) + "\n")


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


class RawResponse(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class RawHttpClient:
    """Keep-alive HTTP/1.1 connections to one server, each carrying one request at a time.

    The load generator must not be what is measured: httpx's async client spends milliseconds
    of CPU per request and, with a couple of hundred requests in flight, stalls for seconds,
    which on a 2-core machine takes CPU from the server under test. This speaks just enough
    HTTP/1.1 (Content-Length or chunked answers) for Vigil's and InfluxDB's write endpoints.
    """

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.headers = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes, params: dict[str, str] | None = None) -> RawResponse:
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.headers}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        if self.idle:
            try:
                return await self._exchange(*self.idle.pop(), head, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the server closed the idle connection (keep-alive timeout): once more, anew
        return await self._exchange(*await asyncio.open_connection(self.host, self.port), head, body)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
    ) -> RawResponse:
        try:
            writer.write(head)
            writer.write(body)
            await writer.drain()
            lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            if headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    chunks.append(await reader.readexactly(size))
                    await reader.readexactly(2)
                await reader.readuntil(b"\r\n")
                content = b"".join(chunks)
            else:
                content = await reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            writer.close()
            raise
        if headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle.append((reader, writer))
        return RawResponse(status, headers, content)

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()
