"""The syslog listener on real sockets: UDP datagrams and TCP streams (octet-counted and
newline-framed) become log records on the logs topic."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

from tests.integration.ingest.helpers import SPY
from tests.services import free_port
from vigil.backends import Backends
from vigil.domain import codec
from vigil.domain.logs import LogRecord
from vigil.ingest.syslog import SyslogListener
from vigil.pipeline import topology


async def _records(backends: Backends, want: int, timeout_s: float = 10) -> list[LogRecord]:
    records: list[LogRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < want and time.monotonic() < deadline:
        for message in await backends.bus.consume(topology.LOGS, SPY, "spy", count=100, block_ms=100):
            records += [LogRecord.from_dict(item) for item in codec.decode(message.payload)["items"]]
            await backends.bus.ack(topology.LOGS, SPY, [message.id])
    return records


async def test_udp_and_tcp_messages_reach_the_logs_topic(backends: Backends) -> None:
    await backends.bus.ensure_group(topology.LOGS, SPY)
    port = free_port()
    listener = SyslogListener(backends.bus, "127.0.0.1", port, flush_interval_s=0.05)
    stopping = asyncio.Event()
    task = asyncio.create_task(listener.run(stopping))
    try:
        await asyncio.wait_for(listener.ready.wait(), timeout=5)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.sendto(
            b"<34>1 2003-10-11T22:14:15.003Z udp-host su - ID47 - 'su root' failed", ("127.0.0.1", port)
        )
        udp.sendto(b"<13>Feb  5 17:32:18 udp-bsd cron[99]: job done\n", ("127.0.0.1", port))
        udp.close()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        counted = b"<30>1 2024-05-01T10:00:00Z tcp-host nginx - - - GET / 200"
        writer.write(b"%d %s" % (len(counted), counted))
        writer.write(
            b"<11>May  1 10:00:01 tcp-host app: line one\n<11>May  1 10:00:02 tcp-host app: line two\n"
        )
        writer.write(b"<14>May  1 10:00:03 tcp-host app: last, no newline")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        records = await _records(backends, 6)
    finally:
        stopping.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)

    by_message = {r.message: r for r in records}
    assert len(records) == 6, [r.message for r in records]
    su = by_message["'su root' failed"]
    assert (su.host, su.service, su.level, su.facility) == ("udp-host", "su", "critical", "auth")
    assert su.time_ns == 1_065_910_455_003_000_000
    assert by_message["job done"].host == "udp-bsd" and by_message["job done"].attributes["procid"] == "99"
    nginx = by_message["GET / 200"]
    assert (nginx.host, nginx.service, nginx.level) == ("tcp-host", "nginx", "info")
    assert by_message["line one"].level == "error" and by_message["line two"].service == "app"
    assert "last, no newline" in by_message


async def test_the_listener_keeps_messages_while_the_bus_refuses(backends: Backends) -> None:
    await backends.bus.ensure_group(topology.LOGS, SPY)
    listener = SyslogListener(backends.bus, "127.0.0.1", 0)
    backends.bus.options.max_backlog = 1
    await backends.bus.publish(topology.LOGS, codec.encode_dicts("logs", []))  # the backlog is now full
    listener.on_message(b"<13>1 - h app - - - kept for later", "127.0.0.1")
    await listener.flush()
    assert len(listener.pending) == 1  # refused, not lost
    backends.bus.options.max_backlog = 1000
    await listener.flush()
    assert listener.pending == type(listener.pending)()
    records = await _records(backends, 1)
    assert [r.message for r in records] == ["kept for later"]
