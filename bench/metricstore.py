"""Metric stores: Vigil's embedded store (DuckDB in the data dir) against InfluxDB 1.x, through
the same MetricStore API, in one run on the same machine.

The data: ``--series`` series (tag ``series``) × one point a minute × ``--minutes`` (default one
day: 1,000 × 1,440 = 1.44 M points), float field ``value``, written in time order in batches of
``--batch`` points (Telegraf's default batch size is 1,000; 5,000 is the brief's).

Measured per store:
- write: points/s over the whole load, ``await store.write(batch)`` per batch;
- query_grouped: the day at 1-minute resolution, mean per bucket, GROUP BY the series tag
  (every series, every bucket: 1.44 M values back), best of ``--repeat`` runs;
- query_single: the same for one series (``WHERE series = ...``), best of ``--repeat`` × 5 runs.

Both stores must return the same numbers: the bench compares the grouped results value by value
and fails loudly if they differ.

Line protocol in (what Telegraf sends): the same points as ready-made line-protocol bodies,
- ``influx_raw``: POSTed to InfluxDB's /write (InfluxDB's own ingest rate, no Vigil in front);
- ``embedded_from_lp``: parsed by ``vigil.ingest.line_protocol.parse`` and written to a fresh
  embedded store (the embedded profile's ingest path, minus the event bus);
- ``parse``: the parser alone, on those bodies and on a Telegraf-like mix (cpu, mem, disk, system
  lines: 5-10 fields, floats and integers, 1-5 tags), best of 5 passes.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from bench._common import machine, print_json
from vigil.domain.metrics import MetricQuery, Point, Series
from vigil.ingest.line_protocol import format_lines, parse
from vigil.store.metrics.base import MetricStore
from vigil.store.metrics.embedded import EmbeddedMetricStore
from vigil.store.metrics.influx import InfluxMetricStore

app = typer.Typer(add_completion=False, help=__doc__)
err = Console(stderr=True)

START_NS = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z, a day boundary
MINUTE_NS = 60 * 10**9


def make_batches(series: int, minutes: int, batch: int, seed: int = 7) -> list[list[Point]]:
    """Points in time order (every series for minute 0, then minute 1, ...), cut into batches.
    Each series drifts around its own level, so means differ per series and per bucket."""
    rng = random.Random(seed)
    tags = [{"series": f"s{i:04d}", "dc": f"dc{i % 4}"} for i in range(series)]
    level = [rng.uniform(10, 90) for _ in range(series)]
    points: list[Point] = []
    for minute in range(minutes):
        stamp = START_NS + minute * MINUTE_NS
        for i in range(series):
            level[i] += rng.gauss(0, 0.5)
            points.append(Point("bench", {"value": round(level[i], 3)}, tags[i], stamp))
    return [points[i : i + batch] for i in range(0, len(points), batch)]


def telegraf_mix(lines: int = 5000) -> str:
    """A Telegraf-like batch: cpu, mem, disk and system lines in turn."""
    out = []
    for i in range(lines):
        host, stamp = f"web{i % 50:02d}", START_NS + i * 10**7
        kind = i % 4
        if kind == 0:
            out.append(
                f"cpu,cpu=cpu{i % 8},host={host} usage_guest=0,usage_guest_nice=0,usage_idle=98.{i % 97},"
                "usage_iowait=0.1,usage_irq=0,usage_nice=0,usage_softirq=0.05,usage_steal=0,usage_system=0.6,"
                f"usage_user=1.05 {stamp}"
            )
        elif kind == 1:
            out.append(
                f"mem,host={host} active={123456 + i}i,available=88888888i,available_percent=55.5,"
                "buffered=1234i,cached=5678i,free=99999i,inactive=1i,total=16000000000i,used=7000000i,"
                f"used_percent=44.4 {stamp}"
            )
        elif kind == 2:
            out.append(
                f"disk,device=sda1,fstype=ext4,host={host},mode=rw,path=/ free=1234567i,inodes_free=1i,"
                f"inodes_total=2i,inodes_used=3i,total=4i,used=5i,used_percent=12.5 {stamp}"
            )
        else:
            out.append(f"system,host={host} load1=0.5,load15=0.3,load5=0.4,n_cpus=8i,n_users=2i {stamp}")
    return "\n".join(out)


def parse_rate(bodies: list[str], passes: int = 5) -> float:
    """Lines per second through ``parse``, best of ``passes`` (CPU time of this process)."""
    lines = sum(body.count("\n") + 1 for body in bodies)
    best = math.inf
    for _ in range(passes):
        began = time.process_time()
        for body in bodies:
            result = parse(body)
            if result.errors:
                raise SystemExit(f"parse error in the bench data: {result.errors[0]}")
        best = min(best, time.process_time() - began)
    return lines / best


async def embedded_from_line_protocol(bodies: list[str], data_dir: Path) -> float:
    """Points/s from line-protocol bodies to a fresh embedded store: parse, then write."""
    store = EmbeddedMetricStore(data_dir)
    await store.start()
    try:
        points = 0
        began = time.perf_counter()
        for body in bodies:
            parsed = parse(body)
            await store.write(parsed.points)
            points += len(parsed.points)
        return points / (time.perf_counter() - began)
    finally:
        await store.close()


async def timed(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = await work()
    return time.perf_counter() - began, result


async def best_of(runs: int, work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(runs):
        elapsed, result = await timed(work)
        best = min(best, elapsed)
    return best, result


async def measure(
    name: str, store: MetricStore, batches: list[list[Point]], minutes: int, repeat: int
) -> tuple[dict[str, float], list[Series]]:
    await store.start()
    try:
        total = sum(len(b) for b in batches)
        began = time.perf_counter()
        for number, batch in enumerate(batches, 1):
            await store.write(batch)
            if number % 50 == 0:
                err.print(f"  {name}: wrote {number * len(batches[0]):,} / {total:,} points", highlight=False)
        write_s = time.perf_counter() - began
        end_ns = START_NS + minutes * MINUTE_NS
        grouped = MetricQuery("bench", "value", START_NS, end_ns, "mean", interval_s=60, group_by=("series",))
        single = MetricQuery(
            "bench",
            "value",
            START_NS,
            end_ns,
            "mean",
            interval_s=60,
            where=MetricQuery.where_from({"series": "s0001"}),
        )
        grouped_s, grouped_result = await best_of(repeat, lambda: store.query(grouped))
        single_s, single_result = await best_of(repeat * 5, lambda: store.query(single))
        if len(single_result) != 1 or len(single_result[0].values) != minutes:
            raise SystemExit(f"{name}: the single-series query returned {single_result!r:.200}")
        return {
            "write_points_per_s": total / write_s,
            "write_s": write_s,
            "query_grouped_ms": grouped_s * 1000,
            "query_single_ms": single_s * 1000,
        }, grouped_result
    finally:
        await store.close()


async def influx_raw_write(url: str, bodies: list[bytes], points: int) -> float:
    """InfluxDB's own ingest rate: the same points as prepared line protocol, one POST per batch."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await client.post("/query", data={"q": 'CREATE DATABASE "bench_raw"'})
        began = time.perf_counter()
        for body in bodies:
            response = await client.post(
                "/write", params={"db": "bench_raw", "precision": "ns"}, content=body
            )
            response.raise_for_status()
        elapsed = time.perf_counter() - began
    return points / elapsed


def compare(embedded: list[Series], influx: list[Series]) -> int:
    """Number of values compared; raises if the stores disagree."""
    by_tags = {s.tags["series"]: s for s in influx}
    if sorted(by_tags) != sorted(s.tags["series"] for s in embedded):
        raise SystemExit("the stores returned different series for the grouped query")
    compared = 0
    for ours in embedded:
        theirs = by_tags[ours.tags["series"]]
        if ours.times_ns != theirs.times_ns:
            raise SystemExit(f"bucket times differ for {ours.tags}")
        for a, b in zip(ours.values, theirs.values, strict=True):
            agree = a is b if a is None or b is None else math.isclose(a, b, rel_tol=1e-09)
            if not agree:
                raise SystemExit(f"values differ for {ours.tags}: {a} != {b}")
            compared += 1
    return compared


async def run(
    series: int, minutes: int, batch: int, repeat: int, influx_url: str | None, data_dir: Path
) -> dict[str, Any]:
    err.print(f"generating {series:,} series × {minutes:,} minutes ...")
    batches = make_batches(series, minutes, batch)
    # The bench's own 1.44 M points would otherwise be rescanned by every full garbage
    # collection during the measurements; a worker holds a batch or two, not a day of data.
    gc.collect()
    gc.freeze()
    results: dict[str, Any] = {
        "points": sum(len(b) for b in batches),
        "series": series,
        "minutes": minutes,
        "batch": batch,
        "machine": machine(),
    }

    async def with_influx(url: str) -> None:
        err.print("embedded store ...")
        embedded, embedded_rows = await measure(
            "embedded", EmbeddedMetricStore(data_dir / "embedded"), batches, minutes, repeat
        )
        err.print(f"InfluxDB at {url} ...")
        database = f"bench_{int(time.time())}"
        try:
            influx, influx_rows = await measure(
                "influxdb", InfluxMetricStore(url, database), batches, minutes, repeat
            )
            err.print("line protocol: InfluxDB /write, then parse + embedded store ...")
            bodies = [format_lines(batch) for batch in batches]
            raw = await influx_raw_write(url, [body.encode() for body in bodies], results["points"])
        finally:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                for name in (database, "bench_raw"):
                    await client.post("/query", data={"q": f'DROP DATABASE "{name}"'})
        from_lp = await embedded_from_line_protocol(bodies, data_dir / "embedded-lp")
        err.print("parser alone ...")
        results["compared_values"] = compare(embedded_rows, influx_rows)
        results["embedded"] = embedded
        results["influxdb"] = influx
        results["line_protocol"] = {
            "influx_raw_write_points_per_s": raw,
            "embedded_parse_and_write_points_per_s": from_lp,
            "parse_lines_per_s_bench_lines": parse_rate(bodies[:40]),
            "parse_lines_per_s_telegraf_mix": parse_rate([telegraf_mix()] * 4),
        }
        results["ratios"] = {
            "write_embedded_over_influx": embedded["write_points_per_s"] / influx["write_points_per_s"],
            "lp_ingest_embedded_over_influx_raw": from_lp / raw,
            "query_grouped_influx_over_embedded": influx["query_grouped_ms"] / embedded["query_grouped_ms"],
            "query_single_influx_over_embedded": influx["query_single_ms"] / embedded["query_single_ms"],
        }

    if influx_url:
        await with_influx(influx_url)
    else:
        from tests import services

        (data_dir / "influxdb").mkdir()
        with services.influxdb(data_dir / "influxdb") as url:
            await with_influx(url)
    return results


@app.command()
def main(
    series: int = typer.Option(1000, help="Number of series."),
    minutes: int = typer.Option(1440, help="Minutes of data, one point per series per minute."),
    batch: int = typer.Option(5000, help="Points per write."),
    repeat: int = typer.Option(
        3, help="Runs per query (best is kept; the single-series query runs 5× as often)."
    ),
    influx_url: str = typer.Option(
        None,
        help="Use this InfluxDB 1.x (the bench's databases are dropped afterwards) instead of starting "
        "one from `influxd` on the PATH.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Write and query throughput of the embedded metric store against InfluxDB."""
    with tempfile.TemporaryDirectory(prefix="vigil-bench-metricstore-") as tmp:
        results = asyncio.run(run(series, minutes, batch, repeat, influx_url, Path(tmp)))
    if json_output:
        print_json(results)
        return
    table = Table(title=f"Metric stores: {results['points']:,} points ({series:,} series × {minutes:,} min)")
    table.add_column("measure")
    table.add_column("embedded", justify="right")
    table.add_column("InfluxDB", justify="right")
    table.add_column("ratio", justify="right")
    e, i, r = results["embedded"], results["influxdb"], results["ratios"]
    lp = results["line_protocol"]
    table.add_row(
        "write Points, points/s",
        f"{e['write_points_per_s']:,.0f}",
        f"{i['write_points_per_s']:,.0f}",
        f"{r['write_embedded_over_influx']:.2f}×",
    )
    table.add_row(
        "line protocol in, points/s",
        f"{lp['embedded_parse_and_write_points_per_s']:,.0f}",
        f"{lp['influx_raw_write_points_per_s']:,.0f}",
        f"{r['lp_ingest_embedded_over_influx_raw']:.2f}×",
    )
    table.add_row(
        "1 day × 1 min, group by series (ms)",
        f"{e['query_grouped_ms']:,.0f}",
        f"{i['query_grouped_ms']:,.0f}",
        f"{r['query_grouped_influx_over_embedded']:.2f}× faster",
    )
    table.add_row(
        "1 day × 1 min, one series (ms)",
        f"{e['query_single_ms']:,.1f}",
        f"{i['query_single_ms']:,.1f}",
        f"{r['query_single_influx_over_embedded']:.2f}× faster",
    )
    Console().print(table)
    Console().print(f"both stores returned the same {results['compared_values']:,} values")
    Console().print(
        f"line protocol parser: {lp['parse_lines_per_s_telegraf_mix']:,.0f} lines/s on a Telegraf-like mix, "
        f"{lp['parse_lines_per_s_bench_lines']:,.0f} lines/s on the bench's lines"
    )
