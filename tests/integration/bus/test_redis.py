"""RedisBus specifics: real consumer processes killed mid-message, unreachable servers, keys."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_client

from tests.integration.bus.helpers import VISIBILITY_MS
from tests.services import free_port
from vigil.bus.base import BusOptions, BusUnavailable
from vigil.bus.redis import RedisBus, redact_url

CONSUMER = Path(__file__).with_name("redis_consumer.py")


@pytest.fixture
async def bus(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisBus]:
    bus = RedisBus(redis_url, BusOptions(visibility_timeout_ms=VISIBILITY_MS), prefix=redis_prefix)
    await bus.start()
    yield bus
    await bus.close()


async def spawn_consumer(
    redis_url: str, prefix: str, name: str, *extra: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(CONSUMER), "--url", redis_url, "--prefix", prefix, "--topic", "jobs",
        "--group", "workers", "--name", name, "--visibility-ms", str(VISIBILITY_MS), *extra,
        stdout=asyncio.subprocess.PIPE,
    )


async def test_sigkilled_consumers_message_goes_to_another_consumer(
    bus: RedisBus, redis_url: str, redis_prefix: str
) -> None:
    total = 20
    await bus.ensure_group("jobs", "workers")
    await bus.publish_many("jobs", [str(i).encode() for i in range(total)])

    first = await spawn_consumer(redis_url, redis_prefix, "first", "--hold-ms", "150")
    assert first.stdout is not None
    processed_by_first: set[str] = set()
    try:
        while True:
            line = await asyncio.wait_for(first.stdout.readline(), 15)
            assert line, "the first consumer exited on its own"
            kind, payload, *rest = line.decode().split()
            if kind == "done":
                processed_by_first.add(payload)
            elif len(processed_by_first) >= 3:
                held, held_since = payload, float(rest[1])
                break
    finally:
        os.kill(first.pid, signal.SIGKILL)
        await first.wait()
    for late_line in (await first.stdout.read()).decode().splitlines():
        late_kind, late_payload, *_ = late_line.split()
        if late_kind == "done":  # acked in the instant before the kill landed
            processed_by_first.add(late_payload)
    assert held not in processed_by_first, "the kill came too late to catch a held message"

    second = await spawn_consumer(redis_url, redis_prefix, "second", "--exit-when-idle-ms", "1500")
    output, _ = await asyncio.wait_for(second.communicate(), 20)
    received: dict[str, tuple[int, float]] = {}  # payload -> (deliveries, unix time)
    processed_by_second: list[str] = []
    for report in output.decode().splitlines():
        fields = report.split()
        if fields[0] == "got":
            received[fields[1]] = (int(fields[2]), float(fields[3]))
        else:
            processed_by_second.append(fields[1])

    # Nothing lost, nothing processed twice.
    assert len(processed_by_first) + len(processed_by_second) == total
    assert processed_by_first | set(processed_by_second) == {str(i) for i in range(total)}
    # The held message came back only after the visibility timeout, as a redelivery.
    deliveries, redelivered_at = received[held]
    assert deliveries == 2
    assert redelivered_at - held_since >= VISIBILITY_MS / 1000 * 0.9
    assert all(d == 1 for p, (d, _) in received.items() if p != held)
    stats = await bus.group_stats("jobs", "workers")
    assert (stats.pending, stats.lag) == (0, 0)


async def test_unreachable_redis_is_bus_unavailable_naming_the_url_without_password() -> None:
    port = free_port()
    bus = RedisBus(f"redis://vigil:s3cret@127.0.0.1:{port}/0", BusOptions())

    with pytest.raises(BusUnavailable) as failure:
        await bus.start()

    assert f"redis://vigil:***@127.0.0.1:{port}/0" in str(failure.value)
    assert "s3cret" not in str(failure.value)
    await bus.close()


async def test_operations_before_start_are_bus_unavailable(redis_url: str) -> None:
    with pytest.raises(BusUnavailable):
        await RedisBus(redis_url, BusOptions()).publish("events", b"x")


def test_redact_url() -> None:
    assert redact_url("redis://:pw@host:6380/2") == "redis://:***@host:6380/2"
    assert redact_url("rediss://user:pw@host/0") == "rediss://user:***@host/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


@contextlib.asynccontextmanager
async def tcp_proxy(target_port: int) -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A loopback TCP proxy to Redis; setting the yielded event cuts every connection and
    refuses new ones, like a Redis that went away."""
    cut = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if cut.is_set():
            client_writer.close()
            return
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        both = [asyncio.ensure_future(pipe(client_reader, server_writer)),
                asyncio.ensure_future(pipe(server_reader, client_writer))]
        tasks.update(both)
        await cut.wait()
        for writer in (client_writer, server_writer):
            writer.transport.abort()
        for task in both:
            task.cancel()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, cut
    finally:
        cut.set()
        server.close()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_redis_going_away_mid_run_is_bus_unavailable(redis_url: str, redis_prefix: str) -> None:
    real_port = int(redis_url.split(":")[2].split("/")[0])
    async with tcp_proxy(real_port) as (port, cut):
        bus = RedisBus(f"redis://127.0.0.1:{port}/0", BusOptions(), prefix=redis_prefix)
        await bus.start()
        await bus.publish("events", b"while it is up")
        cut.set()
        await asyncio.sleep(0.05)

        with pytest.raises(BusUnavailable, match=f"127.0.0.1:{port}"):
            await bus.publish("events", b"while it is down")
        with pytest.raises(BusUnavailable):
            await bus.ping()
        await bus.close()


async def test_keys_live_under_the_prefix_and_streams_are_trimmed(redis_url: str, redis_prefix: str) -> None:
    bus = RedisBus(redis_url, BusOptions(stream_maxlen=100, max_backlog=100), prefix=redis_prefix)
    await bus.start()
    await bus.ensure_group("events", "stage")
    for _ in range(10):  # processed as it comes, so the backlog stays under its limit
        await bus.publish_many("events", [b"m"] * 100)
        done = await bus.consume("events", "stage", "c1", count=100, block_ms=100)
        await bus.ack("events", "stage", [m.id for m in done])
    await bus.publish("events", b"poison")
    [message] = await bus.consume("events", "stage", "c1", count=1, block_ms=100)
    await bus.dead_letter(message, "stage", "bad")
    await bus.close()

    raw: Any = redis_client.Redis.from_url(redis_url)  # Any: stale types-redis stubs lack aclose
    try:
        keys = {key.decode() async for key in raw.scan_iter(match=f"{redis_prefix}*")}
        assert keys == {f"{redis_prefix}stream:events", f"{redis_prefix}deadletters"}
        # Approximate trimming keeps whole radix-tree nodes: about maxlen, never all 1000.
        assert 100 <= await raw.xlen(f"{redis_prefix}stream:events") < 300
    finally:
        await raw.aclose()


def test_a_backlog_limit_beyond_the_trimmed_length_is_refused(redis_url: str) -> None:
    with pytest.raises(ValueError, match="stream_maxlen"):
        RedisBus(redis_url, BusOptions(stream_maxlen=1000, max_backlog=5000))
