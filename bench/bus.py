"""Event bus throughput: the in-process bus (with and without its SQLite journal) against Redis
Streams, through the same Bus API, in one run on the same machine.

Measured per bus, in messages per second, with one payload size for all:
- publish: one ``await publish()`` at a time (latency-bound: a journal commit or a round trip each);
- publish_concurrent: the same from many tasks at once (how API handlers publish);
- publish_many: batches through ``publish_many`` (one pipeline / one transaction per batch);
- consume_ack: ``consume(count=batch)`` then ``ack`` of the batch, until every message is done.

Redis is also measured with bare redis-py commands (XADD, pipelined XADD, XREADGROUP + XACK)
to show what the RedisBus layer costs on top of the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import typer
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from bench._common import machine, print_json
from vigil.bus.base import Bus, BusOptions
from vigil.bus.memory import MemoryBus
from vigil.bus.redis import SOCKET_TIMEOUT_S, RedisBus, redact_url

app = typer.Typer(add_completion=False, help=__doc__)
err = Console(stderr=True)

PHASES = ("publish", "publish_concurrent", "publish_many", "consume_ack")
PEERS = ("memory", "memory_journal", "redis", "redis_raw")


Work = Callable[[], Awaitable[None]]


async def rate(count: int, work: Work) -> float:
    began = time.perf_counter()
    await work()
    return count / (time.perf_counter() - began)


def shares(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def bus_phases(bus: Bus, n: int, payload: bytes, batch: int, concurrency: int) -> dict[str, Work]:
    """The work of each phase through the Bus API (consume_ack drains what publish_many wrote)."""

    async def publish() -> None:
        for _ in range(n):
            await bus.publish("seq", payload)

    async def publish_concurrent() -> None:
        async def publisher(share: int) -> None:
            for _ in range(share):
                await bus.publish("concurrent", payload)

        await asyncio.gather(*(publisher(share) for share in shares(n, concurrency)))

    async def publish_many() -> None:
        for start in range(0, n, batch):
            await bus.publish_many("batched", [payload] * min(batch, n - start))

    async def consume_ack() -> None:
        done = 0
        while done < n:
            messages = await bus.consume("batched", "bench", "c1", count=batch, block_ms=1000)
            if not messages:
                raise RuntimeError(f"consumer starved after {done} of {n} messages")
            await bus.ack("batched", "bench", [m.id for m in messages])
            done += len(messages)

    return {"publish": publish, "publish_concurrent": publish_concurrent, "publish_many": publish_many,
            "consume_ack": consume_ack}


def raw_redis_phases(
    client: Any, prefix: str, n: int, payload: bytes, batch: int, concurrency: int
) -> dict[str, Work]:
    """The same work with bare redis-py commands (no saturation check, no reclaiming)."""
    batched = f"{prefix}raw:batched"

    async def publish() -> None:
        for _ in range(n):
            await client.xadd(f"{prefix}raw:seq", {b"p": payload})

    async def publish_concurrent() -> None:
        async def publisher(share: int) -> None:
            for _ in range(share):
                await client.xadd(f"{prefix}raw:concurrent", {b"p": payload})

        await asyncio.gather(*(publisher(share) for share in shares(n, concurrency)))

    async def publish_many() -> None:
        for start in range(0, n, batch):
            async with client.pipeline(transaction=False) as pipe:
                for _ in range(min(batch, n - start)):
                    pipe.xadd(batched, {b"p": payload})
                await pipe.execute()

    async def consume_ack() -> None:
        done = 0
        while done < n:
            response = await client.xreadgroup("bench", "c1", {batched: ">"}, count=batch, block=1000)
            ids = [message_id for _, entries in response for message_id, _ in entries]
            await client.xack(batched, "bench", *ids)
            done += len(ids)

    return {"publish": publish, "publish_concurrent": publish_concurrent, "publish_many": publish_many,
            "consume_ack": consume_ack}


async def delete_prefix(client: Any, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)


async def one_round(
    n: int, payload: bytes, batch: int, concurrency: int, redis_url: str, notes: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Every bus on fresh state (new journal file, new Redis keys). Phases are interleaved
    across the buses, so a burst of load from elsewhere hits all of them alike."""
    # The limit is not what is measured here; durability is (journal sync FULL, the default).
    options = BusOptions(max_backlog=10 * n + 1000)
    prefix = f"vigilbench:{uuid.uuid4().hex[:10]}:"
    async with contextlib.AsyncExitStack() as stack:
        memory = MemoryBus(options)
        journal_dir = stack.enter_context(TemporaryDirectory(prefix="vigil-bench-bus-"))
        journaled = MemoryBus(options, journal_path=Path(journal_dir) / "bus.sqlite")
        peers: dict[str, dict[str, Work]] = {}
        for name, bus in (("memory", memory), ("memory_journal", journaled)):
            await bus.start()
            stack.push_async_callback(bus.close)
            await bus.ensure_group("batched", "bench")
            peers[name] = bus_phases(bus, n, payload, batch, concurrency)

        redis = RedisBus(redis_url, options, prefix=prefix)
        try:
            await redis.start()
        except Exception as exc:
            err.log(f"[yellow]Redis at {redact_url(redis_url)} unavailable, skipped: {exc}")
            notes["redis"] = f"unavailable: {exc}"
        else:
            stack.push_async_callback(redis.close)
            # Same socket settings as RedisBus, so the difference is the RedisBus layer.
            client: Any = Redis.from_url(
                redis_url, socket_connect_timeout=5.0, socket_timeout=SOCKET_TIMEOUT_S
            )
            stack.push_async_callback(client.aclose)
            stack.push_async_callback(delete_prefix, client, prefix)
            await redis.ensure_group("batched", "bench")
            await client.xgroup_create(f"{prefix}raw:batched", "bench", id="0", mkstream=True)
            peers["redis"] = bus_phases(redis, n, payload, batch, concurrency)
            peers["redis_raw"] = raw_redis_phases(client, prefix, n, payload, batch, concurrency)

        results: dict[str, dict[str, float]] = {name: {} for name in peers}
        transactions: dict[str, int] = {}
        for phase in PHASES:
            err.log(f"{phase}: {', '.join(peers)}")
            for name, phases in peers.items():
                before = journaled.journal_batches
                results[name][phase] = await rate(n, phases[phase])
                if name == "memory_journal":
                    transactions[phase] = journaled.journal_batches - before
        notes["memory_journal"] = "journal transactions per phase: " + ", ".join(
            f"{phase} {count}" for phase, count in transactions.items()
        )
    return results


async def run(
    n: int, payload_bytes: int, batch: int, concurrency: int, rounds: int, redis_url: str
) -> dict[str, Any]:
    payload = os.urandom(payload_bytes)
    notes: dict[str, str] = {}
    # Best of a few rounds: on a shared machine the slow outliers are other people's work.
    results: dict[str, dict[str, float]] = {}
    for number in range(1, rounds + 1):
        err.rule(f"round {number} of {rounds}: {n} messages of {payload_bytes} bytes per phase")
        for peer, phases in (await one_round(n, payload, batch, concurrency, redis_url, notes)).items():
            best = results.setdefault(peer, {})
            for phase, value in phases.items():
                best[phase] = max(best.get(phase, 0.0), value)

    ratios: dict[str, dict[str, float]] = {}
    if "redis" in results:
        for peer in ("memory", "memory_journal", "redis_raw"):
            ratios[peer] = {
                phase: round(results[peer][phase] / results["redis"][phase], 2) for phase in PHASES
            }
    return {
        "bench": "bus",
        "machine": machine(),
        "messages": n,
        "payload_bytes": payload_bytes,
        "batch": batch,
        "concurrency": concurrency,
        "rounds": rounds,
        "messages_per_second": {
            peer: {phase: round(value) for phase, value in phases.items()} for peer, phases in results.items()
        },
        "ratio_vs_redisbus": ratios,
        "notes": notes,
    }


def show(result: dict[str, Any]) -> None:
    out = Console(width=max(Console().width, 110))
    rates, ratios = result["messages_per_second"], result["ratio_vs_redisbus"]
    title = (f"messages/s, best of {result['rounds']} rounds: {result['messages']} messages of "
             f"{result['payload_bytes']} B per phase, batch {result['batch']}, "
             f"{result['concurrency']} concurrent publishers")
    table = Table(title=title)
    table.add_column("bus")
    for phase in PHASES:
        table.add_column(phase, justify="right")
    for peer in PEERS:
        if peer in rates:
            table.add_row(peer, *(f"{rates[peer][phase]:,}" for phase in PHASES))
    out.print(table)
    if ratios:
        table = Table(title="ratio to RedisBus (same phase, same run)")
        table.add_column("bus")
        for phase in PHASES:
            table.add_column(phase, justify="right")
        for peer, by_phase in ratios.items():
            table.add_row(peer, *(f"{by_phase[phase]}×" for phase in PHASES))
        out.print(table)
    for peer, note in result["notes"].items():
        out.print(f"{peer}: {note}")


@app.command()
def bus(
    messages: int = typer.Option(5_000, "--messages", "-n", min=100, help="Messages per phase."),
    payload_bytes: int = typer.Option(200, "--payload-bytes", min=1),
    batch: int = typer.Option(100, "--batch", min=1, help="publish_many batch and consume count."),
    concurrency: int = typer.Option(32, "--concurrency", min=1, help="Tasks in publish_concurrent."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Runs of everything; the best of each is kept."),
    redis_url: str = typer.Option(
        os.environ.get("VIGIL_REDIS_URL", "redis://127.0.0.1:6379/0"), "--redis-url",
        help="Redis to compare with (keys under a throwaway prefix, deleted afterwards).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Messages/s published (single, concurrent, batched) and consumed-with-ack, in-process vs Redis."""
    result = asyncio.run(run(messages, payload_bytes, batch, concurrency, rounds, redis_url))
    if json_output:
        print_json(result)
    else:
        show(result)
