"""Live-update latency: from the webhook request that raises an alert to the event arriving on
WebSocket clients, on the distributed profile with two ``vigil api`` processes and a
``vigil worker`` (PostgreSQL, Redis, InfluxDB; a Chroma server when one can be started).

Alerts are posted to ``POST /webhooks/alertmanager`` (one alert per request, Alertmanager's v4
payload) at ``--rate`` per second, round-robin over the API processes, while ``--clients``
WebSocket clients (spread over both API processes) listen on ``/ws/alerts``. The path measured
is the product's: webhook → bus → correlate stage (dedup, silences, incident correlation,
timeline, outbox, commit) → Redis Pub/Sub → every API process → every client. Latency is taken
per (alert, client) from just before the POST to the arrival of that alert's ``alert.created``.

The peer (``floor``) is the fan-out alone: the same clients, the same rate, events broadcast
straight onto the live channel in Redis — what remains is Pub/Sub plus WebSocket delivery, so
the difference is the cost of the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from bench._common import REPO_ROOT, RawHttpClient, machine, print_json
from bench._processes import free_port, log_tail, vigil_process, wait_http

app = typer.Typer(add_completion=False, help=__doc__)
err = Console(stderr=True)
TITLE = "WsBench: seq "


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stats(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(percentile(samples, 0.99), 2),
        "max_ms": round(max(samples), 2),
    }


class Listener:
    """One WebSocket client: records when each sequence number's event arrived."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.arrived: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.ready.wait(), timeout=30)

    async def _run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):  # the servers stop at the end of the run
            await self._listen(connect)

    async def _listen(self, connect: Any) -> None:
        async with connect(self.url, max_size=None, ping_interval=None) as ws:
            async for frame in ws:
                now = time.monotonic()
                data = frame if isinstance(frame, bytes) else frame.encode()
                if b'"hello"' in data[:40]:
                    self.ready.set()
                    continue
                if TITLE.encode() not in data:
                    continue
                for event in orjson.loads(data).get("events", ()):
                    if event.get("type") != "alert.created":
                        continue
                    title = event.get("alert", {}).get("title", "")
                    if title.startswith(TITLE):
                        self.arrived.setdefault(int(title[len(TITLE) :]), now)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def alertmanager_payload(seqs: range, tag: str) -> bytes:
    """One Alertmanager notification carrying the alerts ``seqs`` (a group, as it sends them)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps(
        {
            "version": "4",
            "status": "firing",
            "receiver": "vigil",
            "groupKey": f"bench-{tag}",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {
                        "alertname": "WsBench",
                        "severity": "high",
                        "instance": f"bench-{seq % 50}:9100",
                    },
                    "annotations": {"summary": f"seq {seq}"},
                    "startsAt": now,
                    "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": f"{tag}-{seq}",
                }
                for seq in seqs
            ],
        }
    )


async def send_at_rate(
    urls: list[str], token: str, rate: float, seconds: float, first: int, tag: str, per_request: int = 1
) -> tuple[dict[int, float], list[float], int]:
    """POST ``rate`` alerts per second, ``per_request`` to a request; returns each alert's send
    time, request latencies and failed requests."""
    sent: dict[int, float] = {}
    latencies: list[float] = []
    failures = 0
    requests = int(rate * seconds) // per_request
    request_rate = rate / per_request
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    pools = [RawHttpClient(url, headers) for url in urls]

    async def post(number: int) -> None:
        nonlocal failures
        seqs = range(first + number * per_request, first + (number + 1) * per_request)
        pool = pools[number % len(pools)]
        body = alertmanager_payload(seqs, tag)
        begin = time.monotonic()
        for seq in seqs:
            sent[seq] = begin
        try:
            response = await asyncio.wait_for(pool.post("/webhooks/alertmanager", body), 30)
            if response.status != 204:
                failures += 1
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            failures += 1
        latencies.append((time.monotonic() - begin) * 1000)

    tasks = []
    start = time.perf_counter()
    try:
        for i in range(requests):
            delay = start + i / request_rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(i)))
            if i % max(1, int(request_rate)) == 0:
                err.print(f"  sent {i:,}/{requests:,} requests, answered {len(latencies):,}")
        await asyncio.gather(*tasks)
    finally:
        for pool in pools:
            pool.close()
    return sent, latencies, failures


async def broadcast_at_rate(
    redis_url: str, prefix: str, rate: float, seconds: float, first: int
) -> dict[int, float]:
    """The floor: events published straight onto the live channel."""
    from redis.asyncio import Redis

    from vigil.pipeline import topology

    redis = Redis.from_url(redis_url)
    sent: dict[int, float] = {}
    channel = f"{prefix}broadcast:{topology.LIVE_ALERTS}"
    try:
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            seq = first + i
            sent[seq] = time.monotonic()
            payload = {
                "type": "alerts",
                "events": [
                    {
                        "type": "alert.created",
                        "time_ns": time.time_ns(),
                        "alert": {"id": seq, "title": f"{TITLE}{seq}"},
                    }
                ],
            }
            await redis.publish(channel, orjson.dumps(payload))
    finally:
        await redis.aclose()
    return sent


def _listener_process(urls: list[str], conn: Connection) -> None:
    asyncio.run(_listen_all(urls, conn))


async def _listen_all(urls: list[str], conn: Connection) -> None:
    """A listener process: its clients, and a command loop answering the parent."""
    listeners = [Listener(url) for url in urls]
    for lst in listeners:
        await lst.start()
    conn.send("ready")
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command[0] == "count":
            _, lo, hi = command
            conn.send(sum(1 for lst in listeners for seq in lst.arrived if lo <= seq < hi))
        elif command[0] == "dump":
            _, lo, hi = command
            conn.send([{seq: at for seq, at in lst.arrived.items() if lo <= seq < hi} for lst in listeners])
        else:
            break
    for lst in listeners:
        await lst.stop()


class ListenerPool:
    """The WebSocket clients, in a few processes of their own: parsing 100 clients' frames in
    the process that also sends the webhooks would measure the benchmark, not Vigil. Times are
    CLOCK_MONOTONIC, which every process on the machine shares."""

    def __init__(self, urls: list[str], processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.clients = len(urls)
        self._pipes: list[Connection] = []
        self._procs: list[Any] = []
        for i in range(processes):
            parent, child = context.Pipe()
            proc = context.Process(target=_listener_process, args=(urls[i::processes], child), daemon=True)
            proc.start()
            self._pipes.append(parent)
            self._procs.append(proc)

    async def _ask(self, command: tuple[Any, ...]) -> list[Any]:
        loop = asyncio.get_running_loop()
        for pipe in self._pipes:
            pipe.send(command)
        return [await loop.run_in_executor(None, pipe.recv) for pipe in self._pipes]

    async def ready(self, timeout_s: float = 120) -> None:
        loop = asyncio.get_running_loop()
        for pipe in self._pipes:
            if not await loop.run_in_executor(None, pipe.poll, timeout_s):
                raise RuntimeError("WebSocket clients did not connect")
            assert await loop.run_in_executor(None, pipe.recv) == "ready"

    async def collect(self, sent: dict[int, float], timeout_s: float) -> tuple[list[float], int]:
        lo, hi = min(sent), max(sent) + 1
        expected = len(sent) * self.clients
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(await self._ask(("count", lo, hi))) >= expected:
                break
            await asyncio.sleep(0.5)
        samples: list[float] = []
        missing = 0
        for per_process in await self._ask(("dump", lo, hi)):
            for arrived in per_process:
                for seq, at in sent.items():
                    if seq in arrived:
                        samples.append((arrived[seq] - at) * 1000)
                    else:
                        missing += 1
        return samples, missing

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError, BrokenPipeError):
                pipe.send(("stop",))
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


async def worker_pickup(database_url: str) -> dict[str, float | None]:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM updated_at - first_seen) * 1000 AS ms FROM alerts "
            "WHERE title LIKE 'WsBench: seq 1______'"
        )
    finally:
        await conn.close()
    return stats([float(r["ms"]) for r in rows])


async def prepare(database_url: str) -> str:
    from vigil.api.routes.tokens import issue_token
    from vigil.security import hash_password
    from vigil.store.db import Database
    from vigil.store.models import User

    db = Database(database_url)
    try:
        await db.migrate()
        async with db.session() as session:
            user = User(
                username="bench", role="operator", password_hash=hash_password("x" * 12), is_active=True
            )
            session.add(user)
            await session.flush()
            _, token = await issue_token(session, user.id, "bench", ["read", "ingest"])
    finally:
        await db.close()
    return token


async def run(
    clients: int,
    rate: float,
    seconds: float,
    apis: int,
    admin_url: str,
    redis_url: str,
    influx_url: str,
    chroma_url: str,
    workdir: Path,
    per_request: int = 1,
    listener_processes: int = 2,
    alerting_worker_only: bool = False,
    split_workers: bool = False,
) -> dict[str, Any]:
    import asyncpg

    name = f"vigil_bench_ws_{uuid.uuid4().hex[:8]}"
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    database_url = admin_url.rsplit("/", 1)[0] + "/" + name
    prefix = f"vigil-bench-ws-{uuid.uuid4().hex[:6]}:"
    try:
        token = await prepare(database_url)
        base_env = {
            **os.environ,
            "VIGIL_DATABASE_URL": database_url,
            "VIGIL_REDIS_URL": redis_url,
            "VIGIL_REDIS_PREFIX": prefix,
            "VIGIL_INFLUX_URL": influx_url,
            "VIGIL_INFLUX_DATABASE": f"bench_ws_{uuid.uuid4().hex[:8]}",
            "VIGIL_SECRET_KEY": "bench-secret",
            "VIGIL_LOG_LEVEL": "WARNING",
            "VIGIL_SETTINGS_FILE": str(workdir / "none.env"),
            "PYTHONPATH": str(REPO_ROOT / "src"),
        }
        if chroma_url:
            base_env["VIGIL_CHROMA_URL"] = chroma_url

        def env(role: str) -> dict[str, str]:
            return {**base_env, "VIGIL_DATA_DIR": str(workdir / role)}

        ports = [free_port() for _ in range(apis)]
        with contextlib.ExitStack() as stack:
            procs = [
                stack.enter_context(
                    vigil_process(f"api{i}", ["api", "--port", str(p)], env(f"api{i}"), workdir)
                )
                for i, p in enumerate(ports)
            ]
            roles = ["--roles", "alerting"] if alerting_worker_only or split_workers else []
            worker = stack.enter_context(vigil_process("worker", ["worker", *roles], env("worker"), workdir))
            if split_workers:
                rest = ["worker", "--roles", "ingest,enrich,metrics"]
                stack.enter_context(vigil_process("worker-rest", rest, env("worker-rest"), workdir))
            urls = [f"http://127.0.0.1:{p}" for p in ports]
            for i, (url, proc) in enumerate(zip(urls, procs, strict=True)):
                await wait_http(f"{url}/healthz", proc, workdir / f"api{i}.log", 120)
            err.print(f"{apis} API processes up; connecting {clients} WebSocket clients")
            pool = ListenerPool(
                [f"{urls[i % apis].replace('http', 'ws')}/ws/alerts?token={token}" for i in range(clients)],
                listener_processes,
            )
            try:
                await pool.ready()
                # Warm up: the worker consumes, the hubs are subscribed, caches are hot.
                warm, _, _ = await send_at_rate(urls, token, 20, 1.0, 0, "warm", 1)
                samples, missing = await pool.collect(warm, 60)
                if worker.poll() is not None:
                    raise RuntimeError("the worker exited:\n" + log_tail(workdir / "worker.log"))
                err.print(f"warm-up: {len(warm)} alerts, {missing} deliveries missing")
                err.print(f"measuring: {rate:.0f} alerts/s for {seconds:.0f} s to {clients} clients")
                sent, post_latencies, failures = await send_at_rate(
                    urls, token, rate, seconds, 1_000_000, "run", per_request
                )
                achieved = len(sent) / (max(sent.values()) - min(sent.values()) + 1 / rate)
                samples, missing = await pool.collect(sent, 60)
                err.print("measuring the floor: broadcasts straight onto Redis")
                floor_sent = await broadcast_at_rate(redis_url, prefix, rate, seconds, 5_000_000)
                floor_samples, floor_missing = await pool.collect(floor_sent, 60)
            finally:
                pool.close()
        pickup = await worker_pickup(database_url)
        return {
            "benchmark": "ws_latency",
            "machine": machine(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "setup": {
                "api_processes": apis,
                "clients": clients,
                "rate_per_s": rate,
                "seconds": seconds,
                "alerts_per_request": per_request,
                "listener_processes": listener_processes,
                "worker": (
                    "two workers: --roles alerting, --roles ingest,enrich,metrics"
                    if split_workers
                    else "alerting stages only"
                    if alerting_worker_only
                    else "vigil worker (every stage)"
                ),
                "chroma": "server" if chroma_url else "embedded per process",
            },
            "vigil": {
                **stats(samples),
                "deliveries": len(samples),
                "missing": missing,
                "achieved_rate_per_s": round(achieved, 1),
                "webhook_failures": failures,
                "webhook": stats(post_latencies),
                # From the alert's startsAt (set as the webhook is sent) to the start of the
                # transaction that stored it: webhook + bus + waiting for the worker.
                "until_worker_transaction": pickup,
            },
            "floor": {**stats(floor_samples), "deliveries": len(floor_samples), "missing": floor_missing},
        }
    finally:
        admin = await asyncpg.connect(dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        from redis.asyncio import Redis

        redis = Redis.from_url(redis_url)
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def _table(result: dict[str, Any]) -> None:
    setup = result["setup"]
    table = Table(
        title=f"Webhook → WebSocket latency: {setup['clients']} clients on {setup['api_processes']} API "
        f"processes, {setup['rate_per_s']:.0f} alerts/s, {setup['alerts_per_request']} per request"
    )
    for column in ("path", "p50 ms", "p99 ms", "max ms", "deliveries", "missing"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for label, key in (("vigil (webhook → pipeline → ws)", "vigil"), ("floor (Redis Pub/Sub → ws)", "floor")):
        part = result[key]
        table.add_row(
            label,
            f"{part['p50_ms']}",
            f"{part['p99_ms']}",
            f"{part['max_ms']}",
            f"{part['deliveries']:,}",
            f"{part['missing']:,}",
        )
    Console(width=160).print(table)
    v = result["vigil"]
    Console().print(
        f"sent {v['achieved_rate_per_s']} alerts/s; webhook p50 {v['webhook']['p50_ms']} ms, p99 "
        f"{v['webhook']['p99_ms']} ms, {v['webhook_failures']} failures; "
        f"load average {result['load_average']}"
    )


@app.command()
def main(
    clients: int = typer.Option(100, help="WebSocket clients (spread over the API processes)"),
    rate: float = typer.Option(200.0, help="Alerts per second"),
    seconds: float = typer.Option(10.0, help="How long to send"),
    apis: int = typer.Option(2, help="vigil api processes"),
    listener_processes: int = typer.Option(2, help="Processes the WebSocket clients run in"),
    alerting_worker_only: bool = typer.Option(
        False, help="Run the worker as `vigil worker --roles alerting` (only the alerting stages)"
    ),
    split_workers: bool = typer.Option(
        False,
        help="Two workers, as a deployment would split them: `--roles alerting` and "
        "`--roles ingest,enrich,metrics`",
    ),
    per_request: int = typer.Option(
        1, "--alerts-per-request", help="Alerts per webhook request (Alertmanager sends groups)"
    ),
    postgres_url: str = typer.Option(
        os.environ.get("VIGIL_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
        help="An admin connection; a throwaway database is created and dropped",
    ),
    redis_url: str = typer.Option(os.environ.get("VIGIL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")),
    influx_url: str = typer.Option("", help="InfluxDB to use (default: start one, needs influxd)"),
    chroma_url: str = typer.Option("", help="Chroma server to use (default: start one if possible)"),
    json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout"),
) -> None:
    async def go() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="vigil-bench-ws-") as tmp, contextlib.ExitStack() as stack:
            workdir = Path(tmp)
            influx, chroma = influx_url, chroma_url
            import shutil

            from tests import services

            if not influx:
                if shutil.which("influxd") is None:
                    raise SystemExit("influxd not installed: pass --influx-url of a running InfluxDB")
                (workdir / "influx").mkdir()
                influx = stack.enter_context(services.influxdb(workdir / "influx"))
            if not chroma:
                if (services.VENV_BIN / "chroma").exists():
                    (workdir / "chroma").mkdir()
                    chroma = stack.enter_context(services.chroma_server(workdir / "chroma"))
                else:
                    err.print("[yellow]no chroma command: embedded Chroma per process[/yellow]")
            return await run(
                clients,
                rate,
                seconds,
                apis,
                postgres_url,
                redis_url,
                influx,
                chroma,
                workdir,
                per_request,
                listener_processes,
                alerting_worker_only,
                split_workers,
            )

    # SIGTERM stops the run like Ctrl+C, so the servers and the throwaway database go too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    result = asyncio.run(go())
    if json:
        print_json(result)
    else:
        _table(result)
