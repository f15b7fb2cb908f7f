"""Log template mining: Vigil's miner against drain3 (defaults and LogPAI's tuned settings).

Every system folder under --data holds ``<S>_2k.log_structured.csv`` with the ``Content`` and the
ground-truth ``EventTemplate`` of each line. The contents are fed line by line in file order; a
line's predicted group is the final (resolved) id of its template, its predicted template that
template's final text. Metrics follow the LogPAI evaluators (loghub-2.0):

- GA: a line is correct iff its predicted group holds exactly the lines of its true group.
- PA: a line is correct iff its predicted template equals the true one, both with runs of
  ``<*>`` collapsed (``<*> <*>`` and ``<*><*>`` become ``<*>``) and whitespace normalised.
- FGA: F1 of group precision (correct groups / predicted groups) and recall (/ true groups).
- FTA: the same over templates: a predicted group counts when it is a correct group *and* its
  template text equals the true template.

Throughput is lines per second of the mining loop alone (CSV reading excluded), best of
``--repeat`` runs, for each parser on the same lines in the same process.
"""

from __future__ import annotations

import csv
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from bench._common import print_json, require_dir, shared_data

app = typer.Typer(add_completion=False, help=__doc__.split("\n")[0] if __doc__ else None)

# LogPAI's published Drain settings (logparser's Drain benchmark / loghub-2.0): per-system
# masking regexes, similarity threshold and tree depth. Used for the drain3_tuned run only;
# systems not listed here get drain3's defaults there too.
DRAIN_TUNED: dict[str, dict[str, Any]] = {
    "HDFS": {"regex": [r"blk_-?\d+", r"(\d+\.){3}\d+(:\d+)?"], "st": 0.5, "depth": 4},
    "Hadoop": {"regex": [r"(\d+\.){3}\d+"], "st": 0.5, "depth": 4},
    "Spark": {"regex": [r"(\d+\.){3}\d+", r"\b[KGTM]?B\b", r"([\w-]+\.){2,}[\w-]+"], "st": 0.5, "depth": 4},
    "Zookeeper": {"regex": [r"(/|)(\d+\.){3}\d+(:\d+)?"], "st": 0.5, "depth": 4},
    "BGL": {"regex": [r"core\.\d+"], "st": 0.5, "depth": 4},
    "HPC": {"regex": [r"=\d+"], "st": 0.5, "depth": 4},
    "Thunderbird": {"regex": [r"(\d+\.){3}\d+"], "st": 0.5, "depth": 4},
    "Windows": {"regex": [r"0x.*?\s"], "st": 0.7, "depth": 5},
    "Linux": {"regex": [r"(\d+\.){3}\d+", r"\d{2}:\d{2}:\d{2}"], "st": 0.39, "depth": 6},
    "Android": {
        "regex": [
            r"(/[\w-]+)+",
            r"([\w-]+\.){2,}[\w-]+",
            r"\b(\-?\+?\d+)\b|\b0[Xx][a-fA-F\d]+\b|\b[a-fA-F\d]{4,}\b",
        ],
        "st": 0.2,
        "depth": 6,
    },
    "HealthApp": {"regex": [], "st": 0.2, "depth": 4},
    "Apache": {"regex": [r"(\d+\.){3}\d+"], "st": 0.5, "depth": 4},
    "Proxifier": {
        "regex": [r"<\d+\ssec", r"([\w-]+\.)+[\w-]+(:\d+)?", r"\d{2}:\d{2}(:\d{2})*", r"[KGTM]B"],
        "st": 0.6,
        "depth": 3,
    },
    "OpenSSH": {"regex": [r"(\d+\.){3}\d+", r"([\w-]+\.){2,}[\w-]+"], "st": 0.6, "depth": 5},
    "OpenStack": {"regex": [r"((\d+\.){3}\d+,?)+", r"/.+?\s", r"\d+"], "st": 0.5, "depth": 5},
    "Mac": {"regex": [r"([\w-]+\.){2,}[\w-]+"], "st": 0.7, "depth": 6},
}

PARSERS = ("vigil", "drain3_default", "drain3_tuned")
METRICS = ("ga", "pa", "fga", "fta")

_WILDCARD_RUN = re.compile(r"<\*>(?:\s*<\*>)+")
_SPACES = re.compile(r"\s+")


# ---------------------------------------------------------------------------------- metrics


def normalize_template(template: str) -> str:
    """Whitespace collapsed to single spaces and runs of ``<*>`` collapsed to one."""
    return _WILDCARD_RUN.sub("<*>", _SPACES.sub(" ", template).strip())


def _groups(labels: Sequence[Hashable]) -> dict[Hashable, frozenset[int]]:
    members: dict[Hashable, list[int]] = defaultdict(list)
    for line, label in enumerate(labels):
        members[label].append(line)
    return {label: frozenset(lines) for label, lines in members.items()}


def _f1(correct: int, predicted: int, truth: int) -> float:
    precision = correct / predicted if predicted else 0.0
    recall = correct / truth if truth else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def grouping_accuracy(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """GA: share of lines whose predicted group is exactly their true group."""
    return _grouping(truth, predicted)[0]


def group_f1(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """FGA: F1 over groups (a predicted group is correct iff it equals a true group)."""
    return _grouping(truth, predicted)[1]


def _grouping(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> tuple[float, float]:
    if len(truth) != len(predicted):
        raise ValueError("truth and predicted must label the same lines")
    if not truth:
        return 0.0, 0.0
    true_groups = set(_groups(truth).values())
    predicted_groups = _groups(predicted).values()
    correct_groups = [g for g in predicted_groups if g in true_groups]
    correct_lines = sum(len(g) for g in correct_groups)
    return correct_lines / len(truth), _f1(len(correct_groups), len(predicted_groups), len(true_groups))


def parsing_accuracy(truth_templates: Sequence[str], predicted_templates: Sequence[str]) -> float:
    """PA: share of lines whose predicted template equals the true one (normalised)."""
    if len(truth_templates) != len(predicted_templates):
        raise ValueError("truth and predicted must label the same lines")
    if not truth_templates:
        return 0.0
    correct = sum(
        normalize_template(t) == normalize_template(p)
        for t, p in zip(truth_templates, predicted_templates, strict=True)
    )
    return correct / len(truth_templates)


def template_f1(
    truth_templates: Sequence[str], predicted: Sequence[Hashable], predicted_templates: Sequence[str]
) -> float:
    """FTA: F1 over templates: a predicted group counts iff it is exactly a true group and its
    template text equals that group's true template."""
    truth = [normalize_template(t) for t in truth_templates]
    true_by_lines = {lines: label for label, lines in _groups(truth).items()}
    predicted_groups = _groups(predicted)
    correct = 0
    for lines in predicted_groups.values():
        label = true_by_lines.get(lines)
        if label is not None and normalize_template(predicted_templates[min(lines)]) == label:
            correct += 1
    return _f1(correct, len(predicted_groups), len(true_by_lines))


def score(
    truth_templates: Sequence[str], predicted: Sequence[Hashable], predicted_templates: Sequence[str]
) -> dict[str, float]:
    """GA, PA, FGA and FTA of one parse; true groups are the lines sharing a true template."""
    truth = [normalize_template(t) for t in truth_templates]
    ga, fga = _grouping(truth, predicted)
    return {
        "ga": ga,
        "pa": parsing_accuracy(truth, predicted_templates),
        "fga": fga,
        "fta": template_f1(truth, predicted, predicted_templates),
    }


# ---------------------------------------------------------------------------------- parsers


@dataclass(frozen=True)
class Parse:
    groups: list[Hashable]
    templates: list[str]
    seconds: float


def parse_vigil(lines: Sequence[str]) -> Parse:
    from vigil.analytics.logtemplates import TemplateMiner

    miner = TemplateMiner()
    add = miner.add
    started = time.perf_counter()
    ids = [add(line).template_id for line in lines]
    seconds = time.perf_counter() - started
    final = [miner.resolve(i) for i in ids]
    text = {i: miner.template(i) for i in set(final)}
    return Parse(list(final), [text[i] for i in final], seconds)


def parse_drain3(lines: Sequence[str], settings: dict[str, Any] | None) -> Parse:
    from drain3 import TemplateMiner as DrainMiner
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()
    config.profiling_enabled = False
    if settings is not None:
        config.drain_sim_th = settings["st"]
        config.drain_depth = settings["depth"]
        # mask_with "*" renders as "<*>" with drain3's default "<" ">" prefix/suffix.
        config.masking_instructions = [MaskingInstruction(rx, "*") for rx in settings["regex"]]
    miner = DrainMiner(config=config)
    add = miner.add_log_message
    started = time.perf_counter()
    ids = [add(line)["cluster_id"] for line in lines]
    seconds = time.perf_counter() - started
    clusters = {c.cluster_id: c.get_template() for c in miner.drain.clusters}
    return Parse(list(ids), [clusters[i] for i in ids], seconds)


# ---------------------------------------------------------------------------------- runner


def discover(data: Path) -> dict[str, Path]:
    """System name → structured CSV, for every folder of ``data`` that holds one."""
    found: dict[str, Path] = {}
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        candidates = sorted(folder.glob("*_structured.csv"))
        preferred = [c for c in candidates if c.name.startswith(folder.name)]
        if candidates:
            found[folder.name] = (preferred or candidates)[0]
    return found


def load(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        rows = list(csv.DictReader(handle))
    return [r["Content"] for r in rows], [r["EventTemplate"] for r in rows]


def run_system(
    lines: list[str], truth: list[str], system: str, repeat: int
) -> dict[str, dict[str, float]]:
    runners: dict[str, Callable[[], Parse]] = {
        "vigil": lambda: parse_vigil(lines),
        "drain3_default": lambda: parse_drain3(lines, None),
        "drain3_tuned": lambda: parse_drain3(lines, DRAIN_TUNED.get(system)),
    }
    results: dict[str, dict[str, float]] = {}
    for name, runner in runners.items():
        parse = runner()
        best = parse.seconds
        for _ in range(repeat - 1):
            best = min(best, runner().seconds)
        metrics = score(truth, parse.groups, parse.templates)
        metrics["lines_per_s"] = len(lines) / best if best > 0 else float("inf")
        metrics["seconds"] = best
        results[name] = metrics
    return results


def aggregate(per_system: dict[str, dict[str, dict[str, float]]]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for parser in PARSERS:
        systems = {s: r[parser] for s, r in per_system.items()}
        count = len(systems) or 1
        average = {m: sum(r[m] for r in systems.values()) / count for m in METRICS}
        total_seconds = sum(r["seconds"] for r in systems.values())
        total_lines = sum(r["lines_per_s"] * r["seconds"] for r in systems.values())
        # Throughput over all systems together: total lines / total mining time.
        average["lines_per_s"] = total_lines / total_seconds if total_seconds else 0.0
        report[parser] = {
            "average": {k: round(v, 4) if k in METRICS else round(v) for k, v in average.items()},
            "systems": {
                s: {**{m: round(r[m], 4) for m in METRICS}, "lines_per_s": round(r["lines_per_s"])}
                for s, r in systems.items()
            },
        }
    return report


def render(report: dict[str, Any], console: Console) -> None:
    table = Table(title="Log template mining (loghub 2k): Vigil vs drain3")
    for column in ("system", "parser", "GA", "PA", "FGA", "FTA", "lines/s"):
        table.add_column(column, justify="left" if column in ("system", "parser") else "right")
    for system in [*report["vigil"]["systems"], "average"]:
        for parser in PARSERS:
            m = report[parser]["average"] if system == "average" else report[parser]["systems"][system]
            table.add_row(
                system if parser == PARSERS[0] else "",
                parser,
                *(f"{m[k]:.3f}" for k in METRICS),
                f"{m['lines_per_s']:,}",
                style="bold" if system == "average" else None,
                end_section=parser == PARSERS[-1],
            )
    console.print(table)
    vigil_rate = report["vigil"]["average"]["lines_per_s"]
    ratios = ", ".join(
        f"vigil / {parser} = {vigil_rate / max(report[parser]['average']['lines_per_s'], 1):.2f}x"
        for parser in PARSERS[1:]
    )
    console.print(f"throughput ratio (same lines, same run): {ratios}")


@app.command()
def main(
    data: Path = typer.Option(
        None, "--data", help="Folder with one sub-folder per system (default: shared loghub2k)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object and nothing else."),
    repeat: int = typer.Option(3, "--repeat", min=1, help="Timing runs per parser (best is kept)."),
) -> None:
    """Mine every system under DATA with Vigil and drain3; report GA, PA, FGA, FTA and lines/s."""
    folder = require_dir(data or shared_data("loghub2k"), "loghub2k data")
    systems = discover(folder)
    if not systems:
        raise SystemExit(f"no <system>/*_structured.csv found under {folder}")
    progress = Console(stderr=True)
    per_system: dict[str, dict[str, dict[str, float]]] = {}
    for system, path in systems.items():
        lines, truth = load(path)
        if not json_output:
            progress.log(f"{system}: {len(lines)} lines")
        per_system[system] = run_system(lines, truth, system, repeat)
    report = aggregate(per_system)
    if json_output:
        print_json(report)
    else:
        render(report, Console())


if __name__ == "__main__":  # pragma: no cover
    app(args=sys.argv[1:])
