"""The alerts API with a million stored alerts on PostgreSQL: list, filter, search, group, page
deep, and change status, through the real API (FastAPI app in-process, PostgreSQL, Redis),
against a naive peer: the same alerts in a table with only a primary key, queried with OFFSET
pagination (what a first implementation would do).

Alerts are bulk-loaded with COPY into a throwaway database (indexes dropped during the load and
rebuilt after, as a restore would), with realistic shapes: 2,000 hosts, 120 services, most
alerts resolved, a few thousand open, a month of history. Each query runs ``--repeat`` times
after a warm-up; latencies are milliseconds from request to parsed response. Status changes
each act on a different open alert (acknowledge, then resolve), with audit, timeline and
events as in production.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from bench._common import machine, print_json

app = typer.Typer(add_completion=False, help=__doc__)
err = Console(stderr=True)

ORIGINS = [
    ("alertmanager", 0.35),
    ("anomaly", 0.25),
    ("log", 0.15),
    ("error", 0.1),
    ("predictive", 0.05),
    ("snmp", 0.06),
    ("redfish", 0.02),
    ("manual", 0.02),
]
SEVERITIES = [("critical", 0.05), ("high", 0.2), ("medium", 0.4), ("low", 0.35)]
TITLES = [
    "Disk usage above {n}% on {host}",
    "CPU saturation on {host}",
    "Memory pressure on {host}",
    "HTTP 5xx rate high for {service}",
    "Latency p99 above {n} ms for {service}",
    "Replication lag {n}s on {host}",
    "Interface eth{d} down on {host}",
    "Certificate expires in {d} days",
    "Queue backlog growing for {service}",
    "Pod crash looping: {service}-{d}",
    "OOM kill on {host}",
    "Error burst: ConnectionResetError in {service}",
    "Fan failure on chassis of {host}",
    "Inode usage above {n}% on {host}",
    "Deploy regression in {service}",
]
RARE_WORD = "zeppelin"  # in 1 title out of ~20,000
OPEN_SHARE = 0.005


def _choice(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def generate(n: int, now: datetime, seed: int = 7) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    hosts = [f"host-{i:04d}" for i in range(2000)]
    services = [f"svc-{i:03d}" for i in range(120)]
    span = 30 * 86400
    rows = []
    for i in range(n):
        host = rng.choice(hosts)
        service = rng.choice(services) if rng.random() < 0.6 else None
        title = rng.choice(TITLES).format(
            host=host, service=service or "api", n=rng.randint(50, 99), d=rng.randint(0, 9)
        )
        if rng.random() < 1 / 20_000:
            title += f" ({RARE_WORD})"
        last_seen = now - timedelta(seconds=rng.random() ** 1.5 * span)  # more recent alerts than old
        first_seen = last_seen - timedelta(seconds=rng.random() * 7200)
        is_open = rng.random() < OPEN_SHARE
        status = rng.choice(["new", "new", "acknowledged", "in_progress"]) if is_open else "resolved"
        resolved_at = None if is_open else last_seen + timedelta(seconds=rng.random() * 600)
        acked = first_seen + timedelta(seconds=rng.random() * 900) if status != "new" else None
        rows.append(
            (
                uuid.uuid4().hex if not is_open else f"open-{i}",
                _choice(rng, ORIGINS),
                f"source-{i % 7}",
                title,
                _choice(rng, SEVERITIES),
                status,
                host,
                service,
                "{}",
                "{}",
                rng.randint(1, 20),
                first_seen,
                last_seen,
                last_seen,
                acked,
                resolved_at,
                None if is_open else "source",
                False,
            )
        )
    return rows


COLUMNS = [
    "fingerprint",
    "origin",
    "source",
    "title",
    "severity",
    "status",
    "host",
    "service",
    "labels",
    "annotations",
    "count",
    "first_seen",
    "last_seen",
    "updated_at",
    "acknowledged_at",
    "resolved_at",
    "resolve_reason",
    "suppressed",
]


async def load(admin_url: str, n: int, now: datetime) -> tuple[str, str, dict[str, float]]:
    import asyncpg

    from vigil.store.db import Database

    name = f"vigil_bench_alerts_{uuid.uuid4().hex[:8]}"
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    await db.migrate()
    await db.close()
    timings: dict[str, float] = {}
    begin = time.perf_counter()
    rows = generate(n, now)
    timings["generate_s"] = time.perf_counter() - begin
    conn = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/" + name)
    try:
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE tablename = 'alerts' AND indexname <> 'pk_alerts'"
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        begin = time.perf_counter()
        chunk = 100_000
        for start in range(0, n, chunk):
            await conn.copy_records_to_table("alerts", records=rows[start : start + chunk], columns=COLUMNS)
            err.print(f"  loaded {min(start + chunk, n):,} alerts")
        timings["copy_s"] = time.perf_counter() - begin
        timings["copy_rows_per_s"] = n / timings["copy_s"]
        begin = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for index in indexes:
            await conn.execute(index["indexdef"])
        timings["index_s"] = time.perf_counter() - begin
        # The peer: the same rows, a primary key and nothing else.
        await conn.execute("CREATE TABLE alerts_naive AS SELECT * FROM alerts")
        await conn.execute("ALTER TABLE alerts_naive ADD PRIMARY KEY (id)")
        # Steady state, as autovacuum leaves a table: statistics and the visibility map.
        await conn.execute("VACUUM ANALYZE alerts")
        await conn.execute("VACUUM ANALYZE alerts_naive")
    finally:
        await conn.close()
    return url, name, timings


async def drop(admin_url: str, name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def redis_cleanup(redis_url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def timed(repeat: int, work: Callable[[int], Awaitable[Any]]) -> list[float]:
    await work(-1)  # warm-up
    samples = []
    for i in range(repeat):
        begin = time.perf_counter()
        await work(i)
        samples.append((time.perf_counter() - begin) * 1000)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(pct(samples, 0.95), 2),
        "runs": len(samples),
    }


async def run(n: int, admin_url: str, redis_url: str | None, repeat: int, peer_repeat: int) -> dict[str, Any]:
    import asyncpg

    from vigil.api.app import create_app
    from vigil.api.routes.tokens import issue_token
    from vigil.backends import Backends
    from vigil.config import Settings
    from vigil.security import hash_password
    from vigil.store.models import User

    now = datetime.now(UTC)
    err.print(f"loading {n:,} alerts into a throwaway PostgreSQL database")
    url, name, load_timings = await load(admin_url, n, now)
    result: dict[str, Any] = {
        "benchmark": "alerts_api",
        "alerts": n,
        "machine": machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "load": load_timings,
    }
    prefix = f"bench-alerts-{uuid.uuid4().hex[:6]}:"
    try:
        with tempfile.TemporaryDirectory(prefix="vigil-bench-alerts-") as tmp:
            settings = Settings(
                data_dir=Path(tmp),
                database_url=url,
                redis_url=redis_url or None,
                redis_prefix=prefix,
                secret_key="bench",
            )
            backends = Backends.from_settings(settings)
            await backends.start()
            async with backends.db.session() as session:
                user = User(
                    username="bench", role="admin", password_hash=hash_password("x" * 12), is_active=True
                )
                session.add(user)
                await session.flush()
                _, token = await issue_token(session, user.id, "bench", ["read", "write", "admin"])
            conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                open_ids = [
                    r["id"]
                    for r in await conn.fetch(
                        "SELECT id FROM alerts WHERE resolved_at IS NULL ORDER BY random() LIMIT $1",
                        2 * (repeat + 1),
                    )
                ]
                deep = await conn.fetchrow(
                    "SELECT last_seen, id FROM alerts ORDER BY last_seen DESC, id DESC OFFSET $1 LIMIT 1",
                    n // 2,
                )
                busy_host = await conn.fetchval(
                    "SELECT host FROM alerts GROUP BY host ORDER BY count(*) DESC LIMIT 1"
                )
                from vigil.api.pagination import encode_cursor

                deep_cursor = encode_cursor([deep["last_seen"].isoformat(), deep["id"]])
                day_ago = (now - timedelta(days=1)).isoformat()
                api = create_app(backends, manage_backends=False)
                transport = httpx.ASGITransport(app=api)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://bench", headers={"Authorization": f"Bearer {token}"}
                ) as client:
                    result["queries"] = await compare(
                        client,
                        conn,
                        repeat,
                        peer_repeat,
                        busy_host,
                        deep_cursor,
                        (deep["last_seen"], deep["id"]),
                        day_ago,
                        n,
                        now,
                        open_ids,
                    )
            finally:
                await conn.close()
                await backends.close()
    finally:
        await drop(admin_url, name)
        if redis_url:
            await redis_cleanup(redis_url, prefix)
    return result


async def compare(
    client: httpx.AsyncClient,
    conn: Any,
    repeat: int,
    peer_repeat: int,
    host: str,
    deep_cursor: str,
    deep: tuple[datetime, int],
    day_ago: str,
    n: int,
    now: datetime,
    open_ids: list[int],
) -> list[dict[str, Any]]:
    since = now - timedelta(days=1)
    order = "ORDER BY last_seen DESC, id DESC LIMIT 50"
    deep_seen, deep_id = deep
    # name, API request, the naive peer's SQL and args; Vigil's own SQL is the same on the
    # indexed table, except paging (keyset instead of OFFSET).
    cases: list[tuple[str, dict[str, Any], str, tuple[Any, ...]]] = [
        ("newest", {}, f"SELECT * FROM alerts_naive {order}", ()),
        ("open", {"status": "open"}, f"SELECT * FROM alerts_naive WHERE resolved_at IS NULL {order}", ()),
        (
            "open critical",
            {"status": "open", "severity": "critical"},
            f"SELECT * FROM alerts_naive WHERE resolved_at IS NULL AND severity = 'critical' {order}",
            (),
        ),
        ("host", {"host": host}, f"SELECT * FROM alerts_naive WHERE host = $1 {order}", (host,)),
        (
            "service, last 24 h",
            {"service": "svc-017", "since": day_ago},
            f"SELECT * FROM alerts_naive WHERE service = 'svc-017' AND last_seen >= $1 {order}",
            (since,),
        ),
        (
            "text, common word",
            {"q": "disk"},
            f"SELECT * FROM alerts_naive WHERE title ILIKE '%disk%' {order}",
            (),
        ),
        (
            "text, rare word",
            {"q": RARE_WORD},
            f"SELECT * FROM alerts_naive WHERE title ILIKE '%{RARE_WORD}%' {order}",
            (),
        ),
        (
            "page at depth n/2",
            {"cursor": deep_cursor},
            f"SELECT * FROM alerts_naive ORDER BY last_seen DESC, id DESC OFFSET {n // 2} LIMIT 50",
            (),
        ),
        (
            "group open by host",
            {"_path": "/api/v1/alerts/groups", "by": "host", "status": "open"},
            "SELECT host, count(*) FROM alerts_naive WHERE resolved_at IS NULL GROUP BY host "
            "ORDER BY count(*) DESC LIMIT 100",
            (),
        ),
        (
            "group last 24 h by severity",
            {"_path": "/api/v1/alerts/groups", "by": "severity", "since": day_ago},
            "SELECT severity, count(*) FROM alerts_naive WHERE last_seen >= $1 GROUP BY severity",
            (since,),
        ),
    ]
    out = []
    for label, params, peer_sql, peer_args in cases:
        path = params.pop("_path", "/api/v1/alerts")
        own_sql, own_args = peer_sql.replace("alerts_naive", "alerts"), peer_args
        if "OFFSET" in peer_sql:
            own_sql = f"SELECT * FROM alerts WHERE (last_seen, id) < ($1, $2) {order}"
            own_args = (deep_seen, deep_id)

        async def vigil(_: int, path: str = path, params: dict[str, Any] = params) -> None:
            response = await client.get(path, params=params)
            response.raise_for_status()
            response.json()

        async def sql(_: int, sql: str = own_sql, args: tuple[Any, ...] = own_args) -> None:
            await conn.fetch(sql, *args)

        async def naive(_: int, sql: str = peer_sql, args: tuple[Any, ...] = peer_args) -> None:
            await conn.fetch(sql, *args)

        err.print(f"  {label}")
        ours = summary(await timed(repeat, vigil))
        ours_sql = summary(await timed(repeat, sql))
        theirs = summary(await timed(peer_repeat, naive))
        out.append(
            {
                "query": label,
                "vigil": ours,
                "vigil_sql": ours_sql,
                "naive": theirs,
                "p95_ratio_sql": round(theirs["p95_ms"] / ours_sql["p95_ms"], 2),
                "p95_ratio": round(theirs["p95_ms"] / ours["p95_ms"], 2),
            }
        )
    acks, resolves = open_ids[: repeat + 1], open_ids[repeat + 1 :]

    async def acknowledge(i: int) -> None:
        response = await client.post(f"/api/v1/alerts/{acks[i + 1]}/acknowledge", json={"note": "bench"})
        response.raise_for_status()

    async def resolve(i: int) -> None:
        response = await client.post(f"/api/v1/alerts/{resolves[i + 1]}/resolve")
        response.raise_for_status()

    async def naive_update(i: int) -> None:
        await conn.execute(
            "UPDATE alerts_naive SET status = 'acknowledged', acknowledged_at = now() WHERE id = $1",
            acks[i + 1],
        )

    err.print("  status changes")
    naive_change = summary(await timed(peer_repeat, naive_update))
    for label, work in (("acknowledge", acknowledge), ("resolve", resolve)):
        ours = summary(await timed(min(repeat, len(acks) - 1), work))
        out.append(
            {
                "query": f"status change: {label}",
                "vigil": ours,
                "vigil_sql": None,
                "naive": naive_change,
                "p95_ratio_sql": None,
                "p95_ratio": round(naive_change["p95_ms"] / ours["p95_ms"], 2),
            }
        )
    return out


def _table(result: dict[str, Any]) -> None:
    load = result["load"]
    table = Table(
        title=f"Alerts API, {result['alerts']:,} alerts on PostgreSQL: Vigil (API and its SQL) vs naive "
        "(OFFSET, primary key only); milliseconds"
    )
    for column in (
        "query",
        "API p50",
        "API p95",
        "SQL p50",
        "SQL p95",
        "naive p50",
        "naive p95",
        "naive/SQL p95",
        "naive/API p95",
    ):
        table.add_column(column, justify="left" if column == "query" else "right")

    def ms(part: dict[str, float] | None, key: str) -> str:
        return "-" if part is None else f"{part[key]:.1f}"

    for q in result["queries"]:
        table.add_row(
            q["query"],
            ms(q["vigil"], "p50_ms"),
            ms(q["vigil"], "p95_ms"),
            ms(q["vigil_sql"], "p50_ms"),
            ms(q["vigil_sql"], "p95_ms"),
            ms(q["naive"], "p50_ms"),
            ms(q["naive"], "p95_ms"),
            "-" if q["p95_ratio_sql"] is None else f"{q['p95_ratio_sql']:.1f}×",
            f"{q['p95_ratio']:.1f}×",
        )
    Console(width=160).print(table)
    Console().print(
        f"load: COPY {load['copy_rows_per_s']:,.0f} alerts/s ({load['copy_s']:.1f} s), "
        f"indexes rebuilt in {load['index_s']:.1f} s; machine load average {result['load_average']}"
    )


@app.command()
def main(
    alerts: int = typer.Option(1_000_000, "--alerts", help="Alerts to store"),
    postgres_url: str = typer.Option(
        os.environ.get("VIGIL_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
        help="An admin connection; a throwaway database is created and dropped",
    ),
    redis_url: str = typer.Option(
        os.environ.get("VIGIL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="The bus the API announces changes on (empty: in-process bus)",
    ),
    repeat: int = typer.Option(40, help="Timed runs of each Vigil query"),
    peer_repeat: int = typer.Option(5, help="Timed runs of each naive query (slow by design)"),
    json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout"),
) -> None:
    result = asyncio.run(run(alerts, postgres_url, redis_url, repeat, peer_repeat))
    if json:
        print_json(result)
    else:
        _table(result)
