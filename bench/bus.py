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
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import typer
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


async def rate(count: int, work: Callable[[], Awaitable[Any]]) -> float:
    began = time.perf_counter()
    await work()
    return count / (time.perf_counter() - began)


async def measure_bus(
    bus: Bus, n: int, payload: bytes, batch: int, concurrency: int, transactions: dict[str, int]
) -> dict[str, float]:
    """Rates per phase; ``transactions`` receives the journal transactions each phase took."""
    results: dict[str, float] = {}

    async def sequential() -> None:
        for _ in range(n):
            await bus.publish("seq", payload)

    async def concurrent() -> None:
        async def publisher(share: int) -> None:
            for _ in range(share):
                await bus.publish("concurrent", payload)

        shares = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
        await asyncio.gather(*(publisher(s) for s in shares))

    async def batched() -> None:
        for start in range(0, n, batch):
            await bus.publish_many("batched", [payload] * min(batch, n - start))

    async def consume_all() -> None:
        done = 0
        while done < n:
            messages = await bus.consume("batched", "bench", "c1", count=batch, block_ms=1000)
            if not messages:
                raise RuntimeError(f"consumer starved after {done} of {n} messages")
            await bus.ack("batched", "bench", [m.id for m in messages])
            done += len(messages)

    def journal_batches() -> int:
        return bus.journal_batches if isinstance(bus, MemoryBus) else 0

    await bus.ensure_group("batched", "bench")
    for phase, work in zip(PHASES, (sequential, concurrent, batched, consume_all), strict=True):
        before = journal_batches()
        results[phase] = await rate(n, work)
        transactions[phase] = journal_batches() - before
    return results


async def measure_raw_redis(
    url: str, prefix: str, n: int, payload: bytes, batch: int, concurrency: int
) -> dict[str, float]:
    """The same work as measure_bus with bare redis-py calls (no saturation check, no claims)."""
    from redis.asyncio import Redis

    # Same socket settings as RedisBus: redis-py's per-command cost depends on them.
    client: Any = Redis.from_url(url, socket_connect_timeout=5.0, socket_timeout=SOCKET_TIMEOUT_S)
    results: dict[str, float] = {}
    seq_key, batched_key = f"{prefix}raw:seq", f"{prefix}raw:batched"

    async def sequential() -> None:
        for _ in range(n):
            await client.xadd(seq_key, {b"p": payload})

    async def concurrent() -> None:
        async def publisher(share: int) -> None:
            for _ in range(share):
                await client.xadd(f"{prefix}raw:concurrent", {b"p": payload})

        shares = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
        await asyncio.gather(*(publisher(s) for s in shares))

    async def batched() -> None:
        for start in range(0, n, batch):
            async with client.pipeline(transaction=False) as pipe:
                for _ in range(min(batch, n - start)):
                    pipe.xadd(batched_key, {b"p": payload})
                await pipe.execute()

    async def consume_all() -> None:
        done = 0
        while done < n:
            response = await client.xreadgroup("bench", "c1", {batched_key: ">"}, count=batch, block=1000)
            ids = [message_id for _, entries in response for message_id, _ in entries]
            await client.xack(batched_key, "bench", *ids)
            done += len(ids)

    try:
        await client.xgroup_create(batched_key, "bench", id="0", mkstream=True)
        results["publish"] = await rate(n, sequential)
        results["publish_concurrent"] = await rate(n, concurrent)
        results["publish_many"] = await rate(n, batched)
        results["consume_ack"] = await rate(n, consume_all)
    finally:
        await client.aclose()
    return results


async def delete_prefix(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client: Any = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def one_round(
    n: int, payload: bytes, batch: int, concurrency: int, redis_url: str, notes: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Every bus once, each on fresh state (new journal file, new Redis keys)."""
    # The limit is not what is measured here; durability is (journal sync FULL, the default).
    options = BusOptions(max_backlog=10 * n + 1000)
    results: dict[str, dict[str, float]] = {}

    err.log("in-process bus, no journal")
    memory = MemoryBus(options)
    await memory.start()
    results["memory"] = await measure_bus(memory, n, payload, batch, concurrency, {})
    await memory.close()

    with TemporaryDirectory(prefix="vigil-bench-bus-") as tmp:
        err.log("in-process bus with its SQLite journal")
        journaled = MemoryBus(options, journal_path=Path(tmp) / "bus.sqlite")
        await journaled.start()
        transactions: dict[str, int] = {}
        results["memory_journal"] = await measure_bus(journaled, n, payload, batch, concurrency, transactions)
        notes["memory_journal"] = "journal transactions per phase: " + ", ".join(
            f"{phase} {count}" for phase, count in transactions.items()
        )
        await journaled.close()

    prefix = f"vigilbench:{uuid.uuid4().hex[:10]}:"
    redis = RedisBus(redis_url, options, prefix=prefix)
    try:
        await redis.start()
    except Exception as exc:
        err.log(f"[yellow]Redis at {redact_url(redis_url)} unavailable, skipped: {exc}")
        notes["redis"] = f"unavailable: {exc}"
        return results
    try:
        err.log(f"Redis Streams via RedisBus at {redact_url(redis_url)}")
        results["redis"] = await measure_bus(redis, n, payload, batch, concurrency, {})
        err.log("Redis Streams via bare redis-py")
        results["redis_raw"] = await measure_raw_redis(redis_url, prefix, n, payload, batch, concurrency)
    finally:
        await redis.close()
        await delete_prefix(redis_url, prefix)
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
