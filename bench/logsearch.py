"""Log search latency: the first page of Vigil's search over millions of stored lines, on
PostgreSQL (tsvector + GIN) and SQLite (FTS5), against a plain scan (``ILIKE`` / ``LIKE``, no
full-text index) with the same filters and order, in one run on the same machine.

Lines are generated (realistic shapes: ~30 message families over hosts, services, levels,
sources, with rare and common words) and bulk-loaded straight into a throwaway database created
by Vigil's own migrations (PostgreSQL: COPY, indexes built after the load; SQLite: executemany
and one FTS5 rebuild). Queries go through ``vigil.logs.search.search`` exactly as the API calls
it (first page of 50, highlights on). Optionally measures embeddings/s of the embedders.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from bench._common import machine, print_json
from vigil.logs.search import LogFilters, search
from vigil.store.db import Database

app = typer.Typer(add_completion=False, help=__doc__)
err = Console(stderr=True)

HOSTS = (
    [f"web-{i:03d}" for i in range(150)]
    + [f"db-{i:02d}" for i in range(30)]
    + [f"k8s-{i:03d}" for i in range(120)]
)
SERVICES = ["nginx", "api", "sshd", "kernel", "postgres", "kubelet", "cron", "payments", "auth", "worker"]
SOURCES = ["syslog", "k8s", "app", "edge", "legacy"]
USERS = [f"user{i}" for i in range(500)]

# (weight, level, failure type, service, template, maker of the variable parts)
FAMILIES: list[tuple[float, str, str, str, str]] = [
    (18.0, "info", "none", "nginx", 'GET /api/v1/items/{n} HTTP/1.1 200 {n} "-" "Mozilla/5.0" rt={ms}'),
    (9.0, "info", "none", "nginx", "POST /api/v1/orders HTTP/1.1 201 {n} rt={ms}"),
    (6.0, "info", "none", "api", "request {uuid} completed in {ms} ms for {user}"),
    (5.0, "info", "none", "sshd", "Accepted publickey for {user} from {ip} port {port} ssh2"),
    (4.0, "info", "none", "cron", "({user}) CMD (/usr/local/bin/backup --target {path})"),
    (4.0, "info", "none", "kubelet", "Successfully pulled image registry.local/app:{n} in {ms}ms"),
    (4.0, "info", "none", "worker", "job {uuid} finished with status ok after {ms} ms"),
    (3.0, "notice", "none", "postgres", "checkpoint complete: wrote {n} buffers ({pct}%)"),
    (3.0, "info", "none", "auth", "session opened for user {user} by (uid=0)"),
    (3.0, "info", "none", "payments", "payment {uuid} captured amount={n}.{pct} currency=EUR"),
    (2.5, "warning", "auth_failure", "sshd", "Failed password for {user} from {ip} port {port} ssh2"),
    (2.0, "warning", "timeout", "api", "upstream request timeout after {ms} ms calling {svc}"),
    (
        2.0,
        "error",
        "dependency_down",
        "nginx",
        "connect() failed (111: Connection refused) while connecting to upstream {ip}:{port}",
    ),
    (
        1.5,
        "warning",
        "none",
        "kubelet",
        "Readiness probe failed for pod {pod}: HTTP probe failed with statuscode: 503",
    ),
    (1.5, "error", "timeout", "postgres", "canceling statement due to statement timeout for {user}"),
    (1.2, "error", "network", "kernel", "eth{d}: Link is Down"),
    (1.0, "error", "disk_space", "kernel", "write error on {path}: No space left on device"),
    (
        1.0,
        "warning",
        "none",
        "api",
        "retrying call to {svc} (attempt {d}) after error: connection reset by peer",
    ),
    (0.8, "error", "config_error", "worker", "invalid configuration value for key {svc}.timeout: {n}"),
    (
        0.6,
        "error",
        "out_of_memory",
        "kernel",
        "Out of memory: Killed process {n} (java) total-vm:{n}kB, anon-rss:{n}kB",
    ),
    (
        0.5,
        "critical",
        "service_crash",
        "payments",
        "payments[{n}]: segfault at {hex} ip {hex} sp {hex} error 4 in libc.so.6",
    ),
    (0.5, "error", "hardware", "kernel", "mce: [Hardware Error]: Machine check events logged on cpu {d}"),
    (
        0.4,
        "error",
        "auth_failure",
        "auth",
        "authentication failure; logname= uid=0 euid=0 rhost={ip} user={user}",
    ),
    (0.3, "error", "none", "api", "unhandled error processing {uuid}: KeyError '{svc}'"),
    (0.2, "critical", "service_crash", "worker", "worker exited unexpectedly with code {d}, restarting"),
    (0.05, "error", "dependency_down", "payments", "circuit breaker open for {svc} after {d} failures"),
]


def _maker(rng: random.Random) -> dict[str, Callable[[], str]]:
    return {
        "n": lambda: str(rng.randrange(1, 100_000)),
        "ms": lambda: str(rng.randrange(1, 5000)),
        "uuid": lambda: uuid.UUID(int=rng.getrandbits(128)).hex[:16],
        "user": lambda: rng.choice(USERS),
        "ip": lambda: f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        "port": lambda: str(rng.randrange(1024, 65535)),
        "path": lambda: rng.choice(["/dev/sda1", "/dev/nvme0n1p2", "/var/lib/postgresql", "/data/backups"]),
        "pct": lambda: str(rng.randrange(100)),
        "svc": lambda: rng.choice(["inventory", "billing", "search", "profile", "ledger"]),
        "pod": lambda: f"app-{rng.randrange(100)}-{rng.getrandbits(20):05x}",
        "d": lambda: str(rng.randrange(10)),
        "hex": lambda: f"{rng.getrandbits(48):012x}",
    }


def generate(
    n: int, seed: int = 7, end_ns: int | None = None
) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]], str]:
    """Rows (time_ns, source, host, service, level, os, facility, message, template_id, params,
    attributes), templates, and one rare token that appears in exactly three lines."""
    rng = random.Random(seed)
    make = _maker(rng)
    weights = [f[0] for f in FAMILIES]
    end_ns = end_ns or time.time_ns()
    span_ns = 7 * 86_400 * 1_000_000_000
    step = span_ns // max(n, 1)
    rare = f"trace{rng.getrandbits(40):010x}"
    rare_at = {n // 3, n // 2, (2 * n) // 3}
    families = rng.choices(range(len(FAMILIES)), weights=weights, k=n)
    rows: list[tuple[Any, ...]] = []
    for i, family in enumerate(families):
        _, level, _, service, template = FAMILIES[family]
        message = template
        params = []
        while "{" in message:
            start = message.index("{")
            stop = message.index("}", start)
            value = make[message[start + 1 : stop]]()
            params.append(value)
            message = message[:start] + value + message[stop + 1 :]
        if i in rare_at:
            message += f" trace={rare}"
        host = rng.choice(HOSTS)
        rows.append(
            (
                end_ns - span_ns + i * step + rng.randrange(step or 1),
                SOURCES[family % len(SOURCES)],
                host,
                service,
                level,
                "linux",
                None,
                message,
                family + 1,
                orjson.dumps(params).decode(),
                "{}",
            )
        )
    templates = [
        {
            "id": i + 1,
            "local_id": i + 1,
            "source": SOURCES[i % len(SOURCES)],
            "template": f[4],
            "failure_type": f[2],
            "severity": "high" if f[2] != "none" else "low",
            "level": f[1],
        }
        for i, f in enumerate(FAMILIES)
    ]
    return rows, templates, rare


# The query mix: (name, filters, kind). Host/time filters are filled in at run time.
def query_mix(rare: str, now_ns: int) -> list[tuple[str, LogFilters]]:
    hour = 3_600_000_000_000
    return [
        ("word, common", LogFilters(q="error")),
        ("word, rare", LogFilters(q="segfault")),
        ("token, very rare", LogFilters(q=rare)),
        ("phrase", LogFilters(q='"connection refused"')),
        ("words AND", LogFilters(q="readiness probe failed")),
        ("word -excluded", LogFilters(q="failed -password")),
        ("a OR b", LogFilters(q="oom OR segfault OR mce")),
        ("filter: host", LogFilters(hosts=("web-017",))),
        ("filter: host+level", LogFilters(hosts=("db-07",), levels=("error",))),
        ("filter: failure type", LogFilters(failure_types=("disk_space",))),
        ("filter: last hour", LogFilters(start_ns=now_ns - hour, end_ns=now_ns)),
        ("text + service/level", LogFilters(q="timeout", services=("api",), levels=("warning", "error"))),
        ("text + host", LogFilters(q="payment captured", hosts=("web-042",))),
        ("text + time range", LogFilters(q="checkpoint", start_ns=now_ns - 6 * hour, end_ns=now_ns)),
    ]


def like_peer(db: Database, filters: LogFilters) -> Any:
    """The same query without the full-text index: every word as a substring scan."""
    from sqlalchemy import and_, not_, or_, select

    from vigil.logs.search import _LINE_COLUMNS, conditions
    from vigil.store.models.logs import LogLine

    plain = LogFilters(**{**{f: getattr(filters, f) for f in filters.__dataclass_fields__}, "q": None})
    where: list[Any] = list(conditions(db, plain))
    q = filters.q or ""
    op = LogLine.message.ilike if not db.is_sqlite else LogLine.message.like  # SQLite LIKE ignores ASCII case
    if " OR " in q:
        where.append(or_(*[op(f"%{w}%") for w in q.split(" OR ")]))
    elif q.startswith('"'):
        where.append(op(f"%{q.strip(chr(34))}%"))
    else:
        for word in q.split():
            where.append(not_(op(f"%{word[1:]}%")) if word.startswith("-") else op(f"%{word}%"))
    return (
        select(*_LINE_COLUMNS)
        .where(and_(*where))
        .order_by(LogLine.time_ns.desc(), LogLine.id.desc())
        .limit(51)
    )


async def timed(repeat: int, work: Callable[[], Awaitable[Any]]) -> list[float]:
    await work()  # warm the caches once
    samples = []
    for _ in range(repeat):
        begin = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - begin) * 1000)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_queries(
    db: Database, rare: str, now_ns: int, repeat: int, peer_repeat: int, label: str
) -> dict[str, Any]:
    results: dict[str, Any] = {"queries": {}}
    all_vigil: list[float] = []
    all_peer: list[float] = []
    for name, filters in query_mix(rare, now_ns):
        err.print(f"  {label}: {name}")

        async def vigil(filters: LogFilters = filters) -> Any:
            return await search(db, filters, limit=50, highlight=True)

        samples = await timed(repeat, vigil)
        items, _ = await vigil()
        entry: dict[str, Any] = {
            "rows": len(items),
            "p50_ms": round(pct(samples, 0.5), 2),
            "p95_ms": round(pct(samples, 0.95), 2),
        }
        all_vigil += samples
        if filters.q:
            statement = like_peer(db, filters)

            async def peer(statement: Any = statement) -> Any:
                async with db.session() as session:
                    return (await session.execute(statement)).all()

            peer_samples = await timed(peer_repeat, peer)
            entry["scan_p50_ms"] = round(pct(peer_samples, 0.5), 2)
            entry["scan_p95_ms"] = round(pct(peer_samples, 0.95), 2)
            entry["speedup_p50"] = round(entry["scan_p50_ms"] / max(entry["p50_ms"], 1e-6), 1)
            all_peer += peer_samples
        results["queries"][name] = entry
    results["overall"] = {
        "p50_ms": round(pct(all_vigil, 0.5), 2),
        "p95_ms": round(pct(all_vigil, 0.95), 2),
        "text_queries_scan_p50_ms": round(pct(all_peer, 0.5), 2) if all_peer else None,
        "text_queries_scan_p95_ms": round(pct(all_peer, 0.95), 2) if all_peer else None,
    }
    return results


_PG_INDEXES = [
    "CREATE INDEX ix_log_lines_time ON log_lines (time_ns, id)",
    "CREATE INDEX ix_log_lines_host_time ON log_lines (host, time_ns)",
    "CREATE INDEX ix_log_lines_source_time ON log_lines (source, time_ns)",
    "CREATE INDEX ix_log_lines_service_time ON log_lines (service, time_ns)",
    "CREATE INDEX ix_log_lines_template_time ON log_lines (template_id, time_ns)",
    "CREATE INDEX ix_log_lines_search ON log_lines USING gin (search)",
]
_TEMPLATE_COLUMNS = (
    "id, source, local_id, canonical_id, template, count, first_seen_ns, last_seen_ns, examples, "
    "failure_type, severity, label_method, label_confidence, created_at, updated_at"
)
_COLUMNS = (
    "time_ns",
    "source",
    "host",
    "service",
    "level",
    "os",
    "facility",
    "message",
    "template_id",
    "params",
    "attributes",
)


async def load_postgres(
    admin_url: str, rows: list[tuple[Any, ...]], templates: list[dict[str, Any]]
) -> tuple[str, str, float]:
    import asyncpg

    name = f"vigil_bench_logsearch_{uuid.uuid4().hex[:8]}"
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    await db.migrate()
    await db.close()
    begin = time.perf_counter()
    conn = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/" + name)
    try:
        for statement in _PG_INDEXES:
            await conn.execute(f"DROP INDEX IF EXISTS {statement.split()[2]}")
        await conn.executemany(
            f"INSERT INTO log_templates ({_TEMPLATE_COLUMNS}) "
            "VALUES ($1, $2, $3, $1, $4, 0, 0, 0, '[]', $5, $6, 'rule', 0.9, now(), now())",
            [
                (t["id"], t["source"], t["local_id"], t["template"], t["failure_type"], t["severity"])
                for t in templates
            ],
        )
        chunk = 200_000
        for start in range(0, len(rows), chunk):
            await conn.copy_records_to_table(
                "log_lines", records=rows[start : start + chunk], columns=_COLUMNS
            )
            err.print(f"  postgres: loaded {min(start + chunk, len(rows)):,} lines")
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for statement in _PG_INDEXES:
            await conn.execute(statement)
        await conn.execute("ANALYZE log_lines")
        await conn.execute("ANALYZE log_templates")
    finally:
        await conn.close()
    return url, name, time.perf_counter() - begin


async def drop_postgres(admin_url: str, name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def load_sqlite(
    path: Path, rows: list[tuple[Any, ...]], templates: list[dict[str, Any]]
) -> tuple[str, float]:
    import sqlite3

    url = f"sqlite+aiosqlite:///{path}"
    db = Database(url)
    await db.migrate()
    await db.close()
    begin = time.perf_counter()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("DROP TRIGGER log_lines_fts_insert")
        conn.executemany(
            f"INSERT INTO log_templates ({_TEMPLATE_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, 0, 0, 0, '[]', ?, ?, 'rule', 0.9, datetime('now'), datetime('now'))",
            [
                (
                    t["id"],
                    t["source"],
                    t["local_id"],
                    t["id"],
                    t["template"],
                    t["failure_type"],
                    t["severity"],
                )
                for t in templates
            ],
        )
        conn.executemany(
            f"INSERT INTO log_lines ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", rows
        )
        conn.commit()
        err.print("  sqlite: lines loaded, building the FTS5 index")
        conn.execute("INSERT INTO log_lines_fts(log_lines_fts) VALUES ('rebuild')")
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()
    return url, time.perf_counter() - begin


async def embedding_rates(samples: int) -> dict[str, Any]:
    from vigil.llm.embeddings_lexical import LexicalEmbedder

    rows, _, _ = generate(samples, seed=11)
    texts = [r[7] for r in rows]
    out: dict[str, Any] = {"texts": len(texts)}

    async def measure(embedder: Any) -> float:
        await embedder.embed(texts[:8])  # load and warm
        begin = time.perf_counter()
        await embedder.embed(texts)
        return round(len(texts) / (time.perf_counter() - begin), 1)

    out["lexical"] = await measure(LexicalEmbedder())
    try:
        from vigil.llm.embeddings_local import LocalEmbedder, LocalModelUnavailable

        try:
            out["local_numpy"] = await measure(LocalEmbedder("numpy"))
        except LocalModelUnavailable as exc:
            out["local_numpy"] = f"not installed: {exc}"
        try:
            out["local_sentence_transformers"] = await measure(LocalEmbedder("sentence-transformers"))
        except (LocalModelUnavailable, ImportError) as exc:
            out["local_sentence_transformers"] = f"not installed: {exc}"
    except ImportError as exc:
        out["local_numpy"] = f"unavailable: {exc}"
    return out


async def run(
    lines: int, postgres_url: str, sqlite_lines: int, repeat: int, peer_repeat: int, embeddings: int
) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine(), "lines": lines, "repeat": repeat}
    now_ns = time.time_ns()
    err.print(f"generating {lines:,} lines")
    begin = time.perf_counter()
    rows, templates, rare = generate(lines, end_ns=now_ns)
    result["generate_s"] = round(time.perf_counter() - begin, 1)
    if postgres_url:
        url, name, load_s = await load_postgres(postgres_url, rows, templates)
        result["postgresql"] = {"load_s": round(load_s, 1)}
        db = Database(url)
        try:
            result["postgresql"].update(await run_queries(db, rare, now_ns, repeat, peer_repeat, "postgres"))
        finally:
            await db.close()
            await drop_postgres(postgres_url, name)
    if sqlite_lines:
        with TemporaryDirectory() as tmp:
            subset = rows if sqlite_lines >= lines else rows[:: max(1, lines // sqlite_lines)][:sqlite_lines]
            url, load_s = await load_sqlite(Path(tmp) / "vigil.db", subset, templates)
            result["sqlite"] = {"lines": len(subset), "load_s": round(load_s, 1)}
            db = Database(url)
            try:
                result["sqlite"].update(await run_queries(db, rare, now_ns, repeat, peer_repeat, "sqlite"))
            finally:
                await db.close()
    del rows
    if embeddings:
        err.print("measuring embedders")
        result["embeddings_per_s"] = await embedding_rates(embeddings)
    return result


def _table(result: dict[str, Any]) -> None:
    for engine in ("postgresql", "sqlite"):
        if engine not in result:
            continue
        data = result[engine]
        table = Table(title=f"{engine}: first page of 50, {data.get('lines', result['lines']):,} lines (ms)")
        for column in ("query", "rows", "p50", "p95", "scan p50", "scan p95", "speedup"):
            table.add_column(column, justify="right" if column != "query" else "left")
        for name, q in data["queries"].items():
            table.add_row(
                name, str(q["rows"]), f"{q['p50_ms']:.1f}", f"{q['p95_ms']:.1f}",
                f"{q['scan_p50_ms']:.1f}" if "scan_p50_ms" in q else "-",
                f"{q['scan_p95_ms']:.1f}" if "scan_p95_ms" in q else "-",
                f"{q['speedup_p50']}x" if "speedup_p50" in q else "-",
            )  # fmt: skip
        o = data["overall"]
        table.add_row("ALL", "", f"{o['p50_ms']:.1f}", f"{o['p95_ms']:.1f}", "", "", "")
        err.print(table)
    if "embeddings_per_s" in result:
        err.print(f"embeddings/s: {result['embeddings_per_s']}")


@app.command()
def main(
    lines: int = typer.Option(2_000_000, help="Lines to store and search"),
    postgres_url: str = typer.Option(
        os.environ.get("VIGIL_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
        help="An admin connection; a throwaway database is created and dropped. Empty: skip.",
    ),
    sqlite_lines: int = typer.Option(
        -1, help="Lines for the SQLite comparison (-1: same as --lines, 0: skip)"
    ),
    repeat: int = typer.Option(20, help="Timed runs of each query"),
    peer_repeat: int = typer.Option(3, help="Timed runs of each scan (slow by design)"),
    embeddings: int = typer.Option(500, help="Texts for the embeddings/s measurement (0: skip)"),
    json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout"),
) -> None:
    result = asyncio.run(
        run(lines, postgres_url, lines if sqlite_lines < 0 else sqlite_lines, repeat, peer_repeat, embeddings)
    )
    if json:
        print_json(result)
    else:
        _table(result)
