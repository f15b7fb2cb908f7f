"""The `vigil` command line."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import typer

app = typer.Typer(
    name="vigil",
    help="Vigil: open-source AIOps. Ingest telemetry, detect anomalies, predict exhaustion, "
    "group alerts into incidents, explain root cause and run remediations.",
    no_args_is_help=True,
    add_completion=False,
)

@app.callback()
def _root() -> None:
    """Vigil: open-source AIOps."""


BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def _bench_names() -> list[str]:
    if not BENCH_DIR.is_dir():
        return []
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_"))


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    help="Run a benchmark from bench/ side by side with its peer: `vigil bench <name> [--json]`. "
    "`vigil bench list` shows the benchmarks; `vigil bench <name> --help` explains one.",
)
def bench(ctx: typer.Context, name: str = typer.Argument("list", help="Benchmark name, or 'list'.")) -> None:
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
