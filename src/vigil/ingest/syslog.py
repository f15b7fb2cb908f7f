"""Syslog: RFC 5424 and RFC 3164 messages, TCP framing, and the listener service.

The listener (``VIGIL_SYSLOG_PORT``, off when unset; ``VIGIL_SYSLOG_HOST``, default
127.0.0.1) takes UDP datagrams (one message each) and TCP streams framed either by octet
counting (``<length> <message>``, RFC 6587 §3.4.1) or by newlines (§3.4.2), and publishes
batches of LogRecords to the logs topic. Sockets use SO_REUSEPORT, so several workers on one
machine can share the port. Syslog has no acknowledgement: when the bus refuses (saturated or
down) the listener keeps a bounded backlog, stops reading TCP connections until it drains
(TCP senders then buffer), and drops the oldest UDP messages beyond the bound, counting them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter

from vigil.bus.base import Bus, BusError
from vigil.domain import codec
from vigil.domain.logs import LogRecord, normalise_level
from vigil.ingest.timestamps import parse_rfc3339
from vigil.observability import INGESTED, REGISTRY
from vigil.pipeline import topology
from vigil.waiting import sleep_unless

log = logging.getLogger(__name__)

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
MAX_FRAME_BYTES = 64 * 1024

SYSLOG_DROPPED = Counter(
    "vigil_syslog_dropped_total",
    "Syslog messages dropped because the bus refused them for too long (UDP), or unreadable.",
    ["reason"],
    registry=REGISTRY,
)

_PRI = re.compile(r"<(\d{1,3})>")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                                       "Oct", "Nov", "Dec"), 1)}  # fmt: skip
_BSD_TIME = re.compile(r"([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2})(?:\.\d+)? ")
_ISO_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\S+) ")
_TAG = re.compile(r"([^\s:\[]{1,64})(?:\[([^\]]{1,32})\])?:\s?")
_SD_ELEMENT = re.compile(r'\[([^\s\]=]+)((?:\s+[^\s\]=]+="(?:[^"\\]|\\.)*")*)\s*\]')
_SD_PARAM = re.compile(r'([^\s\]=]+)="((?:[^"\\]|\\.)*)"')
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')


def _facility_name(code: int) -> str:
    return FACILITIES[code] if code < len(FACILITIES) else str(code)


def parse_syslog(data: bytes | str, now_ns: int, received_from: str | None = None) -> LogRecord:
    """One syslog message as a LogRecord (never fails: what cannot be read stays in the text).

    RFC 5424 when a version digit follows the priority, RFC 3164 ("BSD") otherwise; a message
    without a priority is kept whole with the RFC 3164 defaults (user.notice)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.rstrip("\r\n\x00").lstrip("\ufeff")
    pri = _PRI.match(text)
    if pri is None or int(pri.group(1)) > 191:
        return _record(text, now_ns, 1, 5, host=received_from, fmt="unknown")
    priority = int(pri.group(1))
    facility, severity = divmod(priority, 8)
    rest = text[pri.end() :]
    if rest[:2] == "1 ":
        record = _rfc5424(rest[2:], facility, severity, now_ns)
        if record is not None:
            return record
    return _rfc3164(rest, facility, severity, now_ns, received_from)


def _record(
    message: str,
    time_ns: int,
    facility: int,
    severity: int,
    *,
    host: str | None = None,
    app: str | None = None,
    fmt: str,
    attributes: dict[str, Any] | None = None,
) -> LogRecord:
    attrs = {"syslog_format": fmt, "severity": severity}
    attrs.update(attributes or {})
    return LogRecord(
        time_ns=time_ns,
        message=message,
        host=host,
        service=app,
        level=normalise_level(severity),
        facility=_facility_name(facility),
        attributes=attrs,
    )


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def _rfc5424(rest: str, facility: int, severity: int, now_ns: int) -> LogRecord | None:
    parts = rest.split(" ", 5)
    if len(parts) < 6:
        if len(parts) == 5:
            parts.append("-")  # no structured data and no message
        else:
            return None
    stamp, host, app, procid, msgid, tail = parts
    time_ns = now_ns
    if stamp != "-":
        try:
            time_ns = parse_rfc3339(stamp)
        except ValueError:
            return None
    structured: dict[str, dict[str, str]] = {}
    if tail.startswith("-"):
        message = tail[2:] if tail.startswith("- ") else tail[1:]
    elif tail.startswith("["):
        position = 0
        while position < len(tail) and tail[position] == "[":
            element = _SD_ELEMENT.match(tail, position)
            if element is None:
                return None
            structured[element.group(1)] = {
                key: _SD_UNESCAPE.sub(r"\1", value) for key, value in _SD_PARAM.findall(element.group(2))
            }
            position = element.end()
        message = tail[position + 1 :] if tail[position : position + 1] == " " else tail[position:]
    else:
        return None
    attributes: dict[str, Any] = {}
    if _nil(procid):
        attributes["procid"] = procid
    if _nil(msgid):
        attributes["msgid"] = msgid
    if structured:
        attributes["structured_data"] = structured
    return _record(
        message.lstrip("\ufeff"),
        time_ns,
        facility,
        severity,
        host=_nil(host),
        app=_nil(app),
        fmt="rfc5424",
        attributes=attributes,
    )


def _rfc3164(rest: str, facility: int, severity: int, now_ns: int, received_from: str | None) -> LogRecord:
    time_ns = now_ns
    body = rest
    bsd = _BSD_TIME.match(rest)
    iso = None if bsd else _ISO_TIME.match(rest)
    if bsd:
        time_ns = _bsd_time(bsd, now_ns)
        body = rest[bsd.end() :]
    elif iso:
        try:
            time_ns = parse_rfc3339(iso.group(1))
            body = rest[iso.end() :]
        except ValueError:
            pass
    host: str | None = received_from
    if bsd or iso:
        # "HOST TAG: msg", or "TAG: msg" from senders that leave the host out.
        first, sep, after = body.partition(" ")
        if sep and not _TAG.fullmatch(first + " ") and not first.endswith(":"):
            host, body = first, after
    app = None
    attributes: dict[str, Any] = {}
    tag = _TAG.match(body)
    if tag:
        app = tag.group(1)
        if tag.group(2):
            attributes["procid"] = tag.group(2)
        body = body[tag.end() :]
    return _record(
        body, time_ns, facility, severity, host=host, app=app, fmt="rfc3164", attributes=attributes
    )


def _bsd_time(match: re.Match[str], now_ns: int) -> int:
    """RFC 3164 times have no year and no zone: UTC, in the year that puts them nearest now."""
    month = _MONTHS.get(match.group(1))
    if month is None:
        return now_ns
    day, hour, minute, second = (int(match.group(i)) for i in range(2, 6))
    year = time.gmtime(now_ns // 1_000_000_000).tm_year
    best = now_ns
    best_distance: int | None = None
    for candidate_year in (year - 1, year, year + 1):
        try:
            stamp = parse_rfc3339(
                f"{candidate_year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"
            )
        except ValueError:
            continue
        distance = abs(stamp - now_ns)
        if best_distance is None or distance < best_distance:
            best, best_distance = stamp, distance
    return best


class Framer:
    """Splits a TCP syslog stream into messages, octet-counted or newline-framed, frame by
    frame (senders may mix them). Oversized frames are cut at MAX_FRAME_BYTES."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames: list[bytes] = []
        buffer = self._buffer
        while buffer:
            first = buffer[0]
            if 0x31 <= first <= 0x39:  # a non-zero digit: octet counting
                space = buffer.find(b" ", 0, 12)
                if space < 0:
                    if len(buffer) >= 12:  # not a length after all: treat as a line
                        frame = self._line(buffer)
                        if frame is None:
                            break
                        frames.append(frame)
                        continue
                    break
                digits = bytes(buffer[:space])
                if not digits.isdigit():
                    frame = self._line(buffer)
                    if frame is None:
                        break
                    frames.append(frame)
                    continue
                length = int(digits)
                end = space + 1 + length
                if length > MAX_FRAME_BYTES:
                    length, end = MAX_FRAME_BYTES, space + 1 + MAX_FRAME_BYTES
                if len(buffer) < end:
                    break
                frames.append(bytes(buffer[space + 1 : end]))
                del buffer[:end]
            elif first in (0x0A, 0x0D, 0x00, 0x20):
                del buffer[:1]  # stray separators between frames
            else:
                frame = self._line(buffer)
                if frame is None:
                    break
                frames.append(frame)
        return frames

    def _line(self, buffer: bytearray) -> bytes | None:
        end = buffer.find(b"\n")
        if end < 0:
            if len(buffer) > MAX_FRAME_BYTES:
                frame = bytes(buffer[:MAX_FRAME_BYTES])
                del buffer[:MAX_FRAME_BYTES]
                return frame
            return None
        frame = bytes(buffer[:end]).rstrip(b"\r\x00")
        del buffer[: end + 1]
        return frame

    def rest(self) -> bytes:
        """What is left when the connection closes (a last message without a newline)."""
        rest = bytes(self._buffer).strip(b"\r\n\x00 ")
        self._buffer.clear()
        return rest


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_message: Callable[[bytes, str | None], None]) -> None:
        self.on_message = on_message

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.on_message(data, str(addr[0]) if addr else None)


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, listener: SyslogListener) -> None:
        self.listener = listener
        self.framer = Framer()
        self.peer: str | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else None
        self.listener.connections.add(self)
        if self.listener.paused:
            transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        for frame in self.framer.feed(data):
            self.listener.on_message(frame, self.peer)

    def eof_received(self) -> bool | None:
        rest = self.framer.rest()
        if rest:
            self.listener.on_message(rest, self.peer)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.connections.discard(self)


class SyslogListener:
    """The syslog listener as a supervised worker service."""

    name = "syslog"

    def __init__(
        self,
        bus: Bus,
        host: str,
        port: int,
        *,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        max_backlog: int = 100_000,
        source: str | None = None,
    ) -> None:
        self.bus = bus
        self.host = host
        self.port = port
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_backlog = max_backlog
        self.source = source
        self.pending: deque[LogRecord] = deque()
        self.connections: set[_TcpProtocol] = set()
        self.paused = False
        self._wake = asyncio.Event()
        self.bound: tuple[str, int] | None = None  # (host, port) once listening
        self.ready = asyncio.Event()  # set once listening
        self._warned_at = 0.0

    def on_message(self, data: bytes, peer: str | None) -> None:
        if not data.strip():
            return
        record = parse_syslog(data, time.time_ns(), received_from=peer)
        record.source = self.source
        self.pending.append(record)
        if len(self.pending) > self.max_backlog:
            self.pending.popleft()
            SYSLOG_DROPPED.labels("backlog_full").inc()
        if len(self.pending) >= self.batch_size:
            self._wake.set()
        if len(self.pending) >= self.max_backlog // 2 and not self.paused:
            self._pause(True)

    def _pause(self, paused: bool) -> None:
        self.paused = paused
        for connection in self.connections:
            if connection.transport is not None:
                if paused:
                    connection.transport.pause_reading()
                else:
                    connection.transport.resume_reading()

    async def run(self, stopping: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self.on_message), local_addr=(self.host, self.port), reuse_port=True
        )
        server = await loop.create_server(lambda: _TcpProtocol(self), self.host, self.port, reuse_port=True)
        sockets = server.sockets
        self.bound = (self.host, sockets[0].getsockname()[1]) if sockets else (self.host, self.port)
        self.ready.set()
        log.info("syslog listening on %s:%d (UDP and TCP)", self.host, self.bound[1])
        try:
            while not stopping.is_set():
                await sleep_unless(self._wake, self.flush_interval_s)
                self._wake.clear()
                await self.flush()
        finally:
            udp.close()
            server.close()
            for connection in list(self.connections):
                if connection.transport is not None:
                    connection.transport.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=2)
            with contextlib.suppress(BusError):
                await self.flush()
            if self.pending:
                log.warning("syslog listener stopped with %d messages not published", len(self.pending))

    async def flush(self) -> None:
        while self.pending:
            batch = [self.pending[i] for i in range(min(self.batch_size, len(self.pending)))]
            try:
                await self.bus.publish(
                    topology.LOGS, codec.encode_dicts("logs", [r.to_dict() for r in batch], self.source)
                )
            except BusError as exc:
                now = time.monotonic()
                if now - self._warned_at > 10:  # retried every flush: say it now and then
                    self._warned_at = now
                    log.warning("syslog: bus refused %d messages (%s); keeping them", len(self.pending), exc)
                return
            for _ in batch:
                self.pending.popleft()
            INGESTED.labels("logs", "syslog").inc(len(batch))
        if self.paused:
            self._pause(False)
