"""Ingest throughput: Telegraf line-protocol batches posted to Vigil, end to end until every
point is queryable in the metric store, against the same batches written straight to
InfluxDB's ``/write``, in one run on the same machine.

Peers, per round (rounds interleave them, so machine noise hits both alike):

* ``influxdb_direct``: the batches POSTed to InfluxDB 1.x ``/write`` (204 = stored);
* ``vigil_distributed``: a real ``vigil api`` process (webhook ``POST /webhooks/telegraf``) and a
  real ``vigil worker`` process on PostgreSQL, Redis Streams and the same InfluxDB (a throwaway
  database and Redis prefix); the clock stops when ``count()`` in InfluxDB reaches every point;
* ``vigil_embedded``: ``vigil up`` (one process, in-process bus with its journal, DuckDB
  metric store); the clock stops when the ingest stage has written every point
  (``vigil_metric_points_written_total`` on ``/metrics``).

Every peer gets the same batches (``--batch`` lines of Telegraf ``cpu`` metrics, nanosecond
timestamps, 100 hosts × 8 CPUs, 5 fields) from ``--concurrency`` senders at once. Reported:
points/s end to end, the ratio to direct InfluxDB writes, and webhook latency p50/p99 (the time
to a 204, i.e. until the batch is durable on the bus).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from bench._common import REPO_ROOT, RawHttpClient, machine, print_json
from bench._processes import VIGIL, free_port, log_tail, vigil_process, wait_http

app = typer.Typer(add_completion=False, help=__doc__)
err = Console(stderr=True)

HOSTS = 100
CPUS = 8
GOAL_RATIO = 0.5


# --- workload ----------------------------------------------------------------------------------


def make_batches(points: int, batch: int, start_ns: int, seed: int = 7) -> list[bytes]:
    """Telegraf `inputs.cpu` lines, one timestamp per (host, cpu) per 10 s interval."""
    rng = random.Random(seed)
    lines: list[str] = []
    step = 10 * 10**9
    for i in range(points):
        interval, series = divmod(i, HOSTS * CPUS)
        host, cpu = divmod(series, CPUS)
        idle = rng.uniform(40, 99)
        user = rng.uniform(0, 100 - idle)
        system = rng.uniform(0, 100 - idle - user)
        lines.append(
            f"cpu,cpu=cpu{cpu},host=web-{host:03d},region=eu-west-1 "
            f"usage_idle={idle:.4f},usage_user={user:.4f},usage_system={system:.4f},"
            f"usage_iowait={rng.uniform(0, 2):.4f},usage_steal=0 {start_ns + interval * step}"
        )
    return ["\n".join(lines[i : i + batch]).encode() + b"\n" for i in range(0, len(lines), batch)]


def time_span(points: int, start_ns: int) -> tuple[int, int]:
    intervals = points // (HOSTS * CPUS) + 1
    return start_ns, start_ns + intervals * 10 * 10**9


@dataclass
class Run:
    peer: str
    points: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.points / self.seconds

    def percentile(self, p: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]

    def as_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "points": self.points,
            "seconds": round(self.seconds, 3),
            "points_per_s": round(self.rate),
            "latency_p50_ms": _round(self.percentile(50)),
            "latency_p99_ms": _round(self.percentile(99)),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def post_all(
    url: str,
    batches: list[bytes],
    concurrency: int,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> list[float]:
    """POST every batch with ``concurrency`` senders; latencies in ms. Any non-2xx aborts.

    The senders use bench._common.RawHttpClient: httpx took close to half a core here, on a
    2-core machine where the server under test needs every cycle."""
    parts = httpx.URL(url)
    client = RawHttpClient(f"{parts.scheme}://{parts.host}:{parts.port}", headers)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in batches:
        queue.put_nowait(body)
    latencies: list[float] = []

    async def sender() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            while True:
                began = time.perf_counter()
                response = await asyncio.wait_for(client.post(parts.path, body, params), 120)
                if response.status in (429, 503):  # Vigil asking to slow down: as Telegraf would
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                if response.status // 100 != 2:
                    text = response.body[:300].decode(errors="replace")
                    raise RuntimeError(f"POST {url} answered {response.status}: {text}")
                latencies.append((time.perf_counter() - began) * 1000)
                break

    try:
        await asyncio.gather(*(sender() for _ in range(concurrency)))
    finally:
        client.close()
    return latencies


async def influx_count(client: httpx.AsyncClient, influx: str, database: str, span: tuple[int, int]) -> int:
    response = await client.get(
        f"{influx}/query",
        params={
            "db": database,
            "q": f'SELECT count("usage_idle") FROM "cpu" WHERE time >= {span[0]} AND time < {span[1]}',
        },
    )
    response.raise_for_status()
    result = response.json()["results"][0]
    if "series" not in result:
        return 0
    return int(result["series"][0]["values"][0][1])


async def influx_query(client: httpx.AsyncClient, influx: str, statement: str) -> None:
    response = await client.post(f"{influx}/query", data={"q": statement})
    response.raise_for_status()


async def wait_for(check: Any, what: str, timeout_s: float, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not done within {timeout_s:.0f}s")
        await asyncio.sleep(interval_s)


# --- peers -------------------------------------------------------------------------------------


async def run_direct(influx: str, database: str, batches: list[bytes], points: int, concurrency: int) -> Run:
    began = time.perf_counter()
    latencies = await post_all(
        f"{influx}/write", batches, concurrency, params={"db": database, "precision": "ns"}
    )
    seconds = time.perf_counter() - began
    return Run("influxdb_direct", points, seconds, latencies)


async def run_vigil_distributed(
    api_url: str,
    token: str,
    influx: str,
    database: str,
    batches: list[bytes],
    points: int,
    span: tuple[int, int],
    concurrency: int,
    timeout_s: float,
    bus: Any,
) -> Run:
    """Until every point is queryable. A ``count()`` over the points costs InfluxDB real work,
    so it is asked only once the worker has drained the metrics topic (cheap to check)."""
    from vigil.pipeline import topology

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/plain; charset=utf-8"}
    async with httpx.AsyncClient(timeout=30) as poller:
        began = time.perf_counter()
        latencies = await post_all(f"{api_url}/webhooks/telegraf", batches, concurrency, headers=headers)

        async def stored() -> bool:
            stats = await bus.group_stats(topology.METRICS, "ingest")
            if stats.lag or stats.pending:
                return False
            return await influx_count(poller, influx, database, span) >= points

        await wait_for(stored, "points queryable in InfluxDB", timeout_s, 0.02)
        seconds = time.perf_counter() - began
    return Run("vigil_distributed", points, seconds, latencies)


_WRITTEN = re.compile(r"^vigil_metric_points_written_total (\S+)$", re.MULTILINE)


async def points_written(client: httpx.AsyncClient, api_url: str) -> float:
    response = await client.get(f"{api_url}/metrics")
    match = _WRITTEN.search(response.text)
    return float(match.group(1)) if match else 0.0


async def run_vigil_embedded(
    api_url: str, token: str, batches: list[bytes], points: int, concurrency: int, timeout_s: float
) -> Run:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/plain; charset=utf-8"}
    async with httpx.AsyncClient(timeout=60) as client:
        before = await points_written(client, api_url)
        began = time.perf_counter()
        latencies = await post_all(f"{api_url}/webhooks/telegraf", batches, concurrency, headers=headers)

        async def stored() -> bool:
            return await points_written(client, api_url) - before >= points

        await wait_for(stored, "points written to the embedded store", timeout_s)
        seconds = time.perf_counter() - began
    return Run("vigil_embedded", points, seconds, latencies)


# --- processes ---------------------------------------------------------------------------------


async def prepare_database(database_url: str) -> str:
    """Migrate, then create an ingest token; returns the token."""
    from vigil.api.routes.tokens import issue_token
    from vigil.security import hash_password
    from vigil.store.db import Database
    from vigil.store.models import User

    db = Database(database_url)
    try:
        await db.migrate()
        async with db.session() as session:
            user = User(
                username=f"bench-{uuid.uuid4().hex[:6]}",
                role="operator",
                password_hash=hash_password("bench-password"),
                is_active=True,
            )
            session.add(user)
            await session.flush()
            _, token = await issue_token(session, user.id, "bench", ["ingest"])
    finally:
        await db.close()
    return token


# --- the benchmark -----------------------------------------------------------------------------


@contextlib.contextmanager
def influx_server(url: str | None, workdir: Path) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    sys.path.insert(0, str(REPO_ROOT))
    from tests.services import influxdb

    with influxdb(workdir / "influxdb") as started:
        yield started


@contextlib.asynccontextmanager
async def postgres_database(admin_dsn: str) -> AsyncIterator[str]:
    """A throwaway PostgreSQL database (SQLAlchemy async URL), dropped afterwards."""
    import asyncpg

    name = f"vigil_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        conn = await asyncpg.connect(admin_dsn, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


INGEST_ONLY = [sys.executable, str(REPO_ROOT / "bench" / "_ingest_worker.py")]


async def bench(
    points: int,
    batch: int,
    concurrency: int,
    rounds: int,
    full_points: int,
    influx_url: str | None,
    redis_url: str,
    postgres_admin: str,
    timeout_s: float,
    embedded: bool,
) -> dict[str, Any]:
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="vigil-bench-ingest-") as tmp:
        workdir = Path(tmp)
        (workdir / "influxdb").mkdir()
        with influx_server(influx_url, workdir) as influx:
            async with postgres_database(postgres_admin) as pg_url:
                runs += await _distributed_rounds(
                    workdir, influx, pg_url, redis_url, points, batch, concurrency, rounds, timeout_s
                )
                if full_points:
                    runs.append(
                        await _distributed_full_worker(
                            workdir, influx, pg_url, redis_url, full_points, batch, concurrency, timeout_s
                        )
                    )
            if embedded:
                runs += await _embedded_rounds(
                    workdir,
                    "embedded-ingest",
                    [*INGEST_ONLY, "up"],
                    "vigil_embedded",
                    points,
                    batch,
                    concurrency,
                    rounds,
                    timeout_s,
                )
                if full_points:
                    runs += await _embedded_rounds(
                        workdir,
                        "embedded-full",
                        [*VIGIL, "up"],
                        "vigil_embedded_full",
                        full_points,
                        batch,
                        concurrency,
                        1,
                        timeout_s,
                    )
    return _summary(runs, points, batch, concurrency, rounds, full_points)


def _distributed_env(workdir: Path, name: str, pg_url: str, redis_url: str, influx: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        **os.environ,
        "VIGIL_DATA_DIR": str(workdir / name),
        "VIGIL_DATABASE_URL": pg_url,
        "VIGIL_REDIS_URL": redis_url,
        "VIGIL_REDIS_PREFIX": f"vigilbench:{suffix}:",
        "VIGIL_INFLUX_URL": influx,
        "VIGIL_INFLUX_DATABASE": f"bench_vigil_{suffix}",
        "VIGIL_SECRET_KEY": "bench-secret",
        "VIGIL_LOG_LEVEL": "WARNING",
        "VIGIL_SETTINGS_FILE": str(workdir / "none.env"),
    }


@contextlib.asynccontextmanager
async def _distributed_vigil(
    workdir: Path, env: dict[str, str], worker_command: list[str], timeout_s: float
) -> AsyncIterator[tuple[str, Any]]:
    """A ``vigil api`` and a worker on these settings; yields the API URL and a bus client."""
    from vigil.bus.base import BusOptions
    from vigil.bus.redis import RedisBus

    bus = RedisBus(env["VIGIL_REDIS_URL"], BusOptions(), prefix=env["VIGIL_REDIS_PREFIX"])
    await bus.start()
    api_port = free_port()
    try:
        with (
            vigil_process(f"api-{api_port}", ["api", "--port", str(api_port)], env, workdir) as api_proc,
            vigil_process(f"worker-{api_port}", [], env, workdir, worker_command) as worker_proc,
        ):
            api_url = f"http://127.0.0.1:{api_port}"
            await wait_http(f"{api_url}/healthz", api_proc, workdir / f"api-{api_port}.log", 90)
            await _warm_up(
                api_url,
                env["VIGIL_TOKEN"],
                env["VIGIL_INFLUX_URL"],
                env["VIGIL_INFLUX_DATABASE"],
                worker_proc,
                workdir / f"worker-{api_port}.log",
                timeout_s,
            )
            yield api_url, bus
    finally:
        await bus.close()
        _cleanup_redis(env["VIGIL_REDIS_URL"], env["VIGIL_REDIS_PREFIX"])


async def _distributed_rounds(
    workdir: Path,
    influx: str,
    pg_url: str,
    redis_url: str,
    points: int,
    batch: int,
    concurrency: int,
    rounds: int,
    timeout_s: float,
) -> list[Run]:
    """Direct InfluxDB writes and Vigil (api + ingest worker processes), round by round."""
    direct_db = f"bench_direct_{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=30) as client:
        await influx_query(client, influx, f'CREATE DATABASE "{direct_db}"')
    env = _distributed_env(workdir, "dist-data", pg_url, redis_url, influx)
    env["VIGIL_TOKEN"] = token = await prepare_database(pg_url)
    err.print(f"[dim]distributed: vigil api + ingest worker, InfluxDB {influx}[/dim]")
    runs: list[Run] = []
    async with _distributed_vigil(workdir, env, [*INGEST_ONLY, "worker"], timeout_s) as (api_url, bus):
        for round_no in range(rounds):
            start_ns = (int(time.time()) - 7 * 86400 + round_no * 86400) * 10**9
            batches = make_batches(points, batch, start_ns)
            span = time_span(points, start_ns)
            err.print(f"round {round_no + 1}/{rounds}: {points:,} points in {len(batches)} batches")
            direct = await run_direct(influx, direct_db, batches, points, concurrency)
            err.print(f"  influxdb direct   {direct.rate:>10,.0f} points/s")
            vigil = await run_vigil_distributed(
                api_url,
                token,
                influx,
                env["VIGIL_INFLUX_DATABASE"],
                batches,
                points,
                span,
                concurrency,
                timeout_s,
                bus,
            )
            err.print(
                f"  vigil distributed {vigil.rate:>10,.0f} points/s  (ratio {vigil.rate / direct.rate:.2f})"
            )
            runs += [direct, vigil]
    return runs


async def _distributed_full_worker(
    workdir: Path,
    influx: str,
    pg_url: str,
    redis_url: str,
    points: int,
    batch: int,
    concurrency: int,
    timeout_s: float,
) -> Run:
    """The same through a real ``vigil worker``: every stage, detection included, on fresh topics."""
    env = _distributed_env(workdir, "dist-full-data", pg_url, redis_url, influx)
    env["VIGIL_TOKEN"] = token = await prepare_database(pg_url)
    err.print(f"[dim]distributed: vigil api + vigil worker (every stage), {points:,} points[/dim]")
    async with _distributed_vigil(workdir, env, [*VIGIL, "worker"], timeout_s) as (api_url, bus):
        start_ns = (int(time.time()) - 3 * 86400) * 10**9
        run = await run_vigil_distributed(
            api_url,
            token,
            influx,
            env["VIGIL_INFLUX_DATABASE"],
            make_batches(points, batch, start_ns),
            points,
            time_span(points, start_ns),
            concurrency,
            timeout_s,
            bus,
        )
    run.peer = "vigil_distributed_full_worker"
    err.print(f"  vigil distributed, full worker {run.rate:>10,.0f} points/s")
    return run


async def _warm_up(
    api_url: str,
    token: str,
    influx: str,
    database: str,
    worker: subprocess.Popen[bytes],
    log: Path,
    timeout_s: float,
) -> None:
    """One small batch end to end: the worker is consuming and the database exists."""
    start_ns = (int(time.time()) - 30 * 86400) * 10**9
    batches = make_batches(HOSTS * CPUS, HOSTS * CPUS, start_ns)
    async with httpx.AsyncClient(timeout=30) as client:
        auth = {"Authorization": f"Bearer {token}"}
        await post_all(f"{api_url}/webhooks/telegraf", batches, 1, headers=auth)

        async def stored() -> bool:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{log_tail(log)}")
            try:
                return await influx_count(client, influx, database, time_span(HOSTS * CPUS, start_ns)) > 0
            except httpx.HTTPStatusError:
                return False

        await wait_for(stored, "warm-up batch in InfluxDB", timeout_s, 0.2)


async def _embedded_rounds(
    workdir: Path,
    name: str,
    command: list[str],
    peer: str,
    points: int,
    batch: int,
    concurrency: int,
    rounds: int,
    timeout_s: float,
) -> list[Run]:
    data_dir = workdir / name
    data_dir.mkdir()
    token = await prepare_database(f"sqlite+aiosqlite:///{data_dir / 'vigil.db'}")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIGIL_")}
    env.update(
        {
            "VIGIL_DATA_DIR": str(data_dir),
            "VIGIL_SECRET_KEY": "bench-secret",
            "VIGIL_LOG_LEVEL": "WARNING",
            "VIGIL_SETTINGS_FILE": str(workdir / "none.env"),
        }
    )
    err.print(f"[dim]embedded ({peer}): {' '.join(command[-2:])} on :{port}[/dim]")
    runs: list[Run] = []
    with vigil_process(name, ["--port", str(port)], env, workdir, command) as proc:
        url = f"http://127.0.0.1:{port}"
        await wait_http(f"{url}/healthz", proc, workdir / f"{name}.log", 90)
        for round_no in range(rounds):
            start_ns = (int(time.time()) - 14 * 86400 + round_no * 86400) * 10**9
            run = await run_vigil_embedded(
                url, token, make_batches(points, batch, start_ns), points, concurrency, timeout_s
            )
            run.peer = peer
            err.print(f"  {peer:<17} {run.rate:>10,.0f} points/s  (round {round_no + 1})")
            runs.append(run)
    return runs


def _cleanup_redis(url: str, prefix: str) -> None:
    import redis

    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])


def _summary(
    runs: list[Run], points: int, batch: int, concurrency: int, rounds: int, full_points: int
) -> dict[str, Any]:
    def best(peer: str) -> Run | None:
        mine = [r for r in runs if r.peer == peer]
        return max(mine, key=lambda r: r.rate) if mine else None

    direct, distributed, embedded = best("influxdb_direct"), best("vigil_distributed"), best("vigil_embedded")
    full_worker, full_up = best("vigil_distributed_full_worker"), best("vigil_embedded_full")
    assert direct is not None and distributed is not None
    per_round = [
        round(v.rate / d.rate, 3)
        for d, v in zip(
            [r for r in runs if r.peer == "influxdb_direct"],
            [r for r in runs if r.peer == "vigil_distributed"],
            strict=True,
        )
    ]
    result: dict[str, Any] = {
        "benchmark": "ingest",
        "points_per_round": points,
        "batch_lines": batch,
        "concurrency": concurrency,
        "rounds": rounds,
        "full_worker_points": full_points,
        "best": {
            peer.peer: peer.as_dict()
            for peer in (direct, distributed, embedded, full_worker, full_up)
            if peer is not None
        },
        "ratio_distributed_to_direct": round(distributed.rate / direct.rate, 3),
        "ratio_distributed_to_direct_per_round": per_round,
        "ratio_distributed_median": round(statistics.median(per_round), 3),
        "goal_ratio": GOAL_RATIO,
        "runs": [r.as_dict() for r in runs],
        "machine": machine(),
    }
    for name, run in (
        ("embedded", embedded),
        ("distributed_full_worker", full_worker),
        ("embedded_full", full_up),
    ):
        if run is not None:
            result[f"ratio_{name}_to_direct"] = round(run.rate / direct.rate, 3)
    return result


def _table(result: dict[str, Any]) -> Table:
    table = Table(title="Ingest: Telegraf line protocol end to end (best of rounds)")
    for column in ("peer", "points/s", "vs direct", "webhook p50 ms", "webhook p99 ms"):
        table.add_column(column, justify="left" if column == "peer" else "right")
    direct = result["best"]["influxdb_direct"]["points_per_s"]
    for name, run in result["best"].items():
        table.add_row(
            name,
            f"{run['points_per_s']:,}",
            f"{run['points_per_s'] / direct:.2f}",
            str(run["latency_p50_ms"]),
            str(run["latency_p99_ms"]),
        )
    return table


@app.command()
def main(
    points: int = typer.Option(200_000, "--points", help="Points per round (per peer)."),
    batch: int = typer.Option(5_000, "--batch", help="Lines per POST."),
    concurrency: int = typer.Option(4, "--concurrency", help="Senders posting at once."),
    rounds: int = typer.Option(3, "--rounds", help="Rounds; each runs direct then Vigil."),
    full_points: int = typer.Option(
        50_000,
        "--full-points",
        help="Points for one extra run through a real `vigil worker` / `vigil up` "
        "with every stage (0 = skip).",
    ),
    influx_url: str | None = typer.Option(
        None, "--influx-url", help="Use this InfluxDB 1.x instead of starting one."
    ),
    redis_url: str = typer.Option("redis://127.0.0.1:6379/0", "--redis-url"),
    postgres_admin: str = typer.Option(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "--postgres",
        help="Where to create a throwaway database.",
    ),
    embedded: bool = typer.Option(True, "--embedded/--no-embedded", help="Also measure `vigil up`."),
    timeout_s: float = typer.Option(300, "--timeout", help="Seconds to wait for points to land."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Telegraf batches to Vigil end to end versus straight to InfluxDB."""
    if shutil.which("influxd") is None and influx_url is None:
        raise SystemExit("influxd not found: install the `influxdb` package or pass --influx-url")
    result = asyncio.run(
        bench(
            points,
            batch,
            concurrency,
            rounds,
            full_points,
            influx_url,
            redis_url,
            postgres_admin,
            timeout_s,
            embedded,
        )
    )
    if json_output:
        print_json(result)
        return
    err.print(_table(result))
    err.print(
        f"distributed/direct: best {result['ratio_distributed_to_direct']:.2f}, per round "
        f"{result['ratio_distributed_to_direct_per_round']} (goal ≥ {GOAL_RATIO})"
    )
