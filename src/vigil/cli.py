"""The `vigil` command line."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from vigil.config import Settings, SettingsError, load_settings
from vigil.pipeline.roles import ROLES, check_roles
from vigil.runtime import freeze_startup_heap

app = typer.Typer(
    name="vigil",
    help="Vigil: open-source AIOps. Ingest telemetry, detect anomalies, predict exhaustion, "
    "group alerts into incidents, explain root cause and run remediations.\n\n"
    "Settings come from VIGIL_* environment variables (or a .env file): leave the URLs unset "
    "for the embedded profile (one process, no servers); set VIGIL_DATABASE_URL, "
    "VIGIL_REDIS_URL, VIGIL_INFLUX_URL and VIGIL_CHROMA_URL for the distributed one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
log = logging.getLogger("vigil")

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"

HostOption = typer.Option("127.0.0.1", "--host", help="Address to listen on.")
PortOption = typer.Option(8080, "--port", help="Port to listen on.")
DataDirOption = typer.Option(
    None, "--data-dir", help="Data directory (default ./.vigil, or VIGIL_DATA_DIR).", show_default=False
)


def _settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    """Settings, or exit with one clear line naming the bad setting."""
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        _fail(exc)
    from vigil.observability import configure_logging

    configure_logging(settings.log_level, settings.log_json)
    return settings


def _print_backends(settings: Settings) -> None:
    table = Table(title=f"Vigil backends ({settings.profile} profile)", show_header=True)
    table.add_column("part")
    table.add_column("backend")
    for part, backend in settings.backend_summary().items():
        table.add_row(part, backend)
    console.print(table)


@contextlib.contextmanager
def _signals(on_stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM/SIGINT start a graceful stop; a second SIGINT exits at once."""
    loop = asyncio.get_running_loop()
    seen: list[int] = []

    def handler(sig: int) -> None:
        if seen and sig == signal.SIGINT:
            console.print("second interrupt: exiting now")
            raise SystemExit(130)
        seen.append(sig)
        log.info("received %s: finishing in-flight work, then exiting", signal.Signals(sig).name)
        on_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handler, sig)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        asyncio.run(main())
    except SettingsError as exc:
        _fail(exc)


def _fail(exc: Exception) -> NoReturn:
    """One line on stderr, never wrapped (log scrapers and people both want it whole)."""
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from None


def _uvicorn_server(api: Any, host: str, port: int) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        # Vigil handles signals itself, so the API and the worker stop together.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        api,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=True,
        # Live-update frames are small JSON sent to many clients: compressing each one per client
        # (permessage-deflate) took a quarter of the API's CPU under fan-out, for little gain.
        ws_per_message_deflate=False,
    )
    return Server(config)


@app.command()
def up(
    host: str = HostOption,
    port: int = PortOption,
    data_dir: Path | None = DataDirOption,
    demo: bool = typer.Option(False, "--demo", help="Also run the simulated fleet (vigil demo)."),
) -> None:
    """Run everything in one process: the API and the pipeline worker.

    Uses the embedded profile unless URLs are configured: data stays in the data directory
    across restarts. Prints the URL and, on first run, the admin credentials.
    """
    settings = _settings(data_dir)
    _print_backends(settings)

    async def main() -> None:
        from vigil.api.app import create_app
        from vigil.backends import Backends
        from vigil.bootstrap import ensure_admin
        from vigil.pipeline.worker import build_runner

        backends = Backends.from_settings(settings)
        await backends.start()
        admin = await ensure_admin(backends)
        runner = build_runner(backends)
        server = _uvicorn_server(create_app(backends, manage_backends=False), host, port)
        freeze_startup_heap()
        extra_tasks: list[asyncio.Task[None]] = []

        def stop() -> None:
            server.should_exit = True
            runner.stopping.set()

        with _signals(stop):
            await runner.start()
            serving = asyncio.create_task(server.serve())
            while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no event
                await asyncio.sleep(0.05)
            if serving.done():
                await serving  # startup failed (port in use...): surface the error
            url = f"http://{host}:{port}"
            console.print(f"\n[bold green]Vigil is running[/bold green] at {url}  (API docs: {url}/docs)")
            if admin:
                console.print(
                    f"First run: log in as [bold]{admin.username}[/bold] with password "
                    f"[bold]{admin.password}[/bold] (also saved in "
                    f"{settings.data_dir / 'initial-admin-password'})"
                )
            if demo:
                from vigil.demo.fleet import run_demo_in_process

                extra_tasks.append(asyncio.create_task(run_demo_in_process(backends, url, runner.stopping)))
            console.print("Press Ctrl+C to stop.\n")
            await serving
            runner.stopping.set()
            await runner.stop()
            for task in extra_tasks:
                task.cancel()
            await asyncio.gather(*extra_tasks, return_exceptions=True)
        await backends.close()

    _run(main)


@app.command()
def api(host: str = HostOption, port: int = PortOption, data_dir: Path | None = DataDirOption) -> None:
    """Run the API server only (scale out with several `vigil api` behind a load balancer).

    Serves /api/v1, the webhooks, WebSockets, /docs, /healthz, /readyz, /metrics, and a built
    web UI at / when VIGIL_WEB_DIR names one. Run `vigil worker` processes for the pipeline.
    """
    settings = _settings(data_dir)
    _print_backends(settings)

    async def main() -> None:
        from vigil.api.app import create_app
        from vigil.backends import Backends
        from vigil.bootstrap import ensure_admin

        backends = Backends.from_settings(settings)
        await backends.start()
        admin = await ensure_admin(backends)
        if admin:
            console.print(f"First run: admin password [bold]{admin.password}[/bold]")
        server = _uvicorn_server(create_app(backends, manage_backends=False), host, port)
        freeze_startup_heap()

        def stop() -> None:
            server.should_exit = True

        with _signals(stop):
            console.print(f"Vigil API listening on http://{host}:{port}")
            await server.serve()
        await backends.close()

    _run(main)


@app.command()
def worker(
    data_dir: Path | None = DataDirOption,
    name: str | None = typer.Option(None, "--name", help="Consumer name (default host-pid-random)."),
    roles: str = typer.Option(
        ",".join(ROLES),
        "--roles",
        help="Comma-separated parts of the pipeline to run: ingest (storage, log mining, "
        "collectors), alerting (dedup, silences, incidents, notifications), enrich (root-cause "
        "evidence), metrics (anomalies, predictions). Every role must run in some worker.",
    ),
) -> None:
    """Run the pipeline worker only: collectors and every stage (ingest, detect, predict,
    correlate, enrich). Run several for throughput and failover: they share work through bus
    consumer groups and leases; `--roles` splits the stages over processes (e.g. a worker with
    only `alerting` keeps live updates fast). On SIGTERM the worker stops taking messages,
    finishes and acks what it holds, then exits."""
    chosen = [role.strip() for role in roles.split(",") if role.strip()]
    try:
        check_roles(chosen)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--roles") from None
    settings = _settings(data_dir, worker_name=name)
    _print_backends(settings)

    async def main() -> None:
        from vigil.backends import Backends
        from vigil.pipeline.worker import build_runner

        backends = Backends.from_settings(settings)
        await backends.start()
        runner = build_runner(backends, chosen)
        freeze_startup_heap()
        with _signals(runner.stopping.set):
            console.print(f"Vigil worker {runner.consumer} started ({', '.join(chosen)})")
            await runner.run_until_stopped()
        await backends.close()
        console.print("worker stopped cleanly")

    _run(main)


@app.command()
def demo(
    url: str = typer.Option("http://127.0.0.1:8080", "--url", help="Base URL of the Vigil API to send to."),
    token: str = typer.Option(
        ...,
        "--token",
        envvar="VIGIL_DEMO_TOKEN",
        help="An ingest token (scope 'ingest'), e.g. from POST /api/v1/sources/{id}/tokens. Used for "
        "every endpoint and as the public key of the Sentry DSN.",
    ),
    speed: float = typer.Option(
        1.0, "--speed", min=0.001, help="Simulated seconds per real second (60: an hour a minute)."
    ),
    backfill: float = typer.Option(
        0.0, "--backfill", min=0.0, help="Hours of history to send first, as fast as Vigil takes it."
    ),
    hosts: int = typer.Option(20, "--hosts", min=6, help="Number of hosts in the fleet."),
    seed: int = typer.Option(1, "--seed", help="Same seed, same fleet and same telemetry."),
    duration: float | None = typer.Option(
        None,
        "--duration",
        min=0.0,
        help="Stop after this many real seconds of live sending (default: run on).",
    ),
    interval: float = typer.Option(
        10.0, "--interval", min=0.1, help="Simulated seconds between metric samples (Telegraf's default: 10)."
    ),
    sentry_project: int = typer.Option(
        1, "--sentry-project", min=1, help="Project id in the Sentry DSN (Vigil records it with each error)."
    ),
) -> None:
    """Simulate a fleet of ~20 hosts sending telemetry to a running Vigil.

    Everything goes through Vigil's real ingestion endpoints, as real agents send it:

    - Telegraf metrics (line protocol and JSON) to /webhooks/telegraf
    - logs to /webhooks/logs: nginx, Apache, sshd, kernel OOM killer, systemd,
      PostgreSQL, Java and Python stack traces, Kubernetes JSON, cron, Cisco...
    - exceptions through the real sentry-sdk (DSN: http://<token>@<host>/<project>)
    - Prometheus alerts to /webhooks/alertmanager

    Scripted incidents, relative to going live (they recur every few hours):

    - +20 s: a bad deploy of `checkout`, then an error burst for 15 min
    - +30 s: a switch port flapping for 20 min
    - +80 s: app-02 OOM-killed after a memory leak
    - +4 min: a CPU spike on db-01 for 10 min
    - +40 min: /var on web-03 full (it has been filling for 8 h)

    Examples:

    - vigil demo --token vgl_... --backfill 24  (a day of history, then real time)
    - vigil demo --token vgl_... --speed 60 --duration 120  (2 simulated hours)

    `vigil up --demo` runs the same fleet inside Vigil, with its own sources and tokens.
    """
    from vigil.observability import configure_logging

    configure_logging("INFO", False)

    async def main() -> None:
        from vigil.demo.runner import DemoOptions, DemoRunner
        from vigil.demo.sender import DemoError, DemoTokens, HttpSink

        try:
            options = DemoOptions(
                hosts=hosts, seed=seed, speed=speed, backfill_s=backfill * 3600, duration_s=duration,
                interval_s=interval,
            )  # fmt: skip
        except ValueError as exc:
            _fail(exc)
        stopping = asyncio.Event()
        sink = HttpSink(url, DemoTokens.single(token, str(sentry_project)), stopping)
        runner = DemoRunner(options, sink, progress=lambda text: console.print(text, highlight=False))
        console.print(f"Simulated fleet → {url}")
        try:
            with _signals(stopping.set):
                await runner.run(stopping)
        except DemoError as exc:
            _fail(exc)
        finally:
            await sink.close()
        console.print(f"sent {sink.stats.summary()}")

    _run(main)


@app.command()
def migrate(data_dir: Path | None = DataDirOption) -> None:
    """Create or upgrade the relational schema to the latest version, then exit.

    `vigil up`, `vigil api` and `vigil worker` migrate on start as well; this is for deploy
    pipelines that migrate once before rolling out. Safe to run concurrently.
    """
    settings = _settings(data_dir)

    async def main() -> None:
        from vigil.store.db import Database

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.effective_database_url)
        try:
            try:
                await db.ping()
            except Exception as exc:
                raise SettingsError(f"VIGIL_DATABASE_URL: cannot use it: {exc}") from exc
            before = await db.current_revision()
            await db.migrate()
            after = await db.current_revision()
        finally:
            await db.close()
        console.print(f"schema at revision {after} (was {before or 'empty'})")

    _run(main)


def _bench_names() -> list[str]:
    if not BENCH_DIR.is_dir():
        return []
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_"))


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
)
def bench(ctx: typer.Context, name: str = typer.Argument("list", help="Benchmark name, or 'list'.")) -> None:
    """Run a benchmark from bench/ side by side with its peer: `vigil bench <name> [--json]`.

    `vigil bench list` shows the benchmarks; `vigil bench <name> --help` explains one.
    """
    names = _bench_names()
    if name in ("list", "--help", "-h"):
        typer.echo("Benchmarks (vigil bench <name> --help for details):")
        for n in names:
            typer.echo(f"  {n}")
        return
    if name not in names:
        typer.echo(f"unknown benchmark {name!r}; available: {', '.join(names) or 'none'}", err=True)
        raise typer.Exit(2)
    sys.path.insert(0, str(BENCH_DIR.parent))
    module = importlib.import_module(f"bench.{name}")
    module.app(args=list(ctx.args), prog_name=f"vigil bench {name}")


def main() -> None:
    app()
