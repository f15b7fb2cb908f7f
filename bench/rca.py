"""RCA accuracy: top-1 and top-3 of the ranked cause on scripted incidents with a known cause.

Incidents follow the demo fleet's failure shapes (``vigil.demo.scenarios``: disk_fill,
memory_leak → OOM kills, bad_deploy → error burst, cpu_spike, link_flap on a switch) with
randomised hosts, timings, detection lags and missing signals, plus confounders around each:
unrelated anomalies elsewhere, an unrelated release, generic log noise on the affected host, old
open predictions, and generic symptoms on the affected host that begin *before* the cause shows.
Each incident is turned into the records the stores would hold (alerts carrying findings, log
templates, error groups, releases), then into evidence and hypotheses by the same code the
enrich stage runs.

Peers, on the same evidence: "earliest signal" (the candidate whose first signal came first, a
timeline reading) and "strongest signal" (the candidate with the highest anomaly score, what a
"most anomalous metric" view shows). With a model configured (``--llm-url``/``--llm-model`` or
``VIGIL_LLM_*``) the model picks among the ranked candidates with cited evidence; its pick is its
top-1, followed by the rules' order for top-3. Without one that column is skipped.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench._common import machine, print_json
from vigil.analytics.rca_ranking import Evidence, Hypothesis, Scope, group_candidates, rank
from vigil.rca.evidence import AlertRecord, ErrorGroupRecord, ReleaseRecord, TemplateRecord, build_evidence

app = typer.Typer(add_completion=False, help=__doc__)

SHAPES = ("disk_fill", "memory_leak", "bad_deploy", "cpu_spike", "link_flap")
MIN = 60.0
T0 = 1_714_557_600.0

WEB = [f"web-{i:02d}" for i in range(1, 7)]
APP = [f"app-{i:02d}" for i in range(1, 5)]
DB = ["db-01", "db-02"]
SWITCHES = ["sw-01", "sw-02"]
BATCH = ["batch-01", "batch-02"]
SERVICES = {"web": WEB, "checkout": APP[:2], "payments": APP[2:], "payments-db": DB[:1], "search": DB[1:]}
DEPENDS = {"web": {"checkout", "search"}, "checkout": {"payments"}, "payments": {"payments-db"}}


@dataclass(frozen=True)
class Cause:
    """What counts as naming the cause: one of these candidate keys, or (deploys) any candidate
    holding evidence of the bad release."""

    keys: frozenset[str]
    release: str | None = None

    def matches(self, h: Hypothesis, evidence: dict[str, Evidence]) -> bool:
        if h.key in self.keys:
            return True
        return self.release is not None and any(
            evidence[i].release == self.release or evidence[i].subject == self.release for i in h.evidence_ids
        )


@dataclass
class Scenario:
    name: str
    shape: str
    start: float
    hosts: set[str]
    services: set[str]
    cause: Cause
    alerts: list[AlertRecord] = field(default_factory=list)
    templates: list[TemplateRecord] = field(default_factory=list)
    errors: list[ErrorGroupRecord] = field(default_factory=list)
    releases: list[ReleaseRecord] = field(default_factory=list)


class Builder:
    """Records for one scenario; the incident's own alerts are marked and define its scope."""

    def __init__(self, rng: random.Random, scenario: Scenario) -> None:
        self.rng = rng
        self.s = scenario
        self._ids = iter(range(1, 10_000))

    def at(self, lo_min: float, hi_min: float) -> float:
        return self.s.start + self.rng.uniform(lo_min, hi_min) * MIN

    def finding(
        self,
        kind: str,
        title: str,
        onset: float,
        *,
        host: str | None = None,
        service: str | None = None,
        in_incident: bool = False,
        score: float | None = None,
        **evidence: Any,
    ) -> None:
        origin = {"anomaly": "anomaly", "prediction": "predictive"}.get(kind, "log")
        self.s.alerts.append(
            AlertRecord(
                id=next(self._ids),
                origin=origin,
                title=title,
                severity="high",
                first_seen=onset,
                host=host,
                service=service,
                evidence=(
                    {
                        "type": "finding",
                        "kind": kind,
                        "key": f"{kind}:{title}",
                        "score": score if score is not None else round(self.rng.uniform(0.7, 0.99), 2),
                        **evidence,
                    },
                ),
                incident_id=1 if in_incident else None,
            )
        )
        if in_incident:
            self.s.hosts.update([host] if host else [])
            self.s.services.update([service] if service else [])

    def prediction(self, what: str, onset: float, runs_out: float, measurement: str, **kw: Any) -> None:
        """A forecast made at ``onset`` for a resource that really runs out at ``runs_out``,
        with the forecaster's usual error (-20 % .. +30 %)."""
        eta = max(600.0, (runs_out - onset) * self.rng.uniform(0.8, 1.3))
        when = f"{eta / 3600:.1f} h" if eta < 2 * 86400 else f"{eta / 86400:.0f} days"
        self.finding(
            "prediction",
            f"{what} in ~{when}",
            onset,
            measurement=measurement,
            field="used_percent",
            eta_s=round(eta),
            **kw,
        )

    def metric(self, measurement: str, field_: str, title: str, onset: float, **kw: Any) -> None:
        self.finding("anomaly", title, onset, measurement=measurement, field=field_, **kw)

    def log(self, kind: str, title: str, onset: float, failure_type: str, **kw: Any) -> None:
        self.finding(kind, title, onset, failure_type=failure_type, template_id=next(self._ids), **kw)

    def external(
        self,
        origin: str,
        title: str,
        onset: float,
        *,
        host: str | None = None,
        service: str | None = None,
        in_incident: bool = False,
        severity: str = "high",
    ) -> None:
        self.s.alerts.append(
            AlertRecord(
                next(self._ids),
                origin,
                title,
                severity,
                onset,
                host=host,
                service=service,
                incident_id=1 if in_incident else None,
            )
        )
        if in_incident:
            self.s.hosts.update([host] if host else [])
            self.s.services.update([service] if service else [])

    def release(self, service: str, version: str, onset: float, previous: str, host: str | None) -> None:
        self.s.releases.append(ReleaseRecord(service, version, onset, previous, host))

    def error_group(self, title: str, onset: float, service: str, host: str, release: str | None) -> None:
        self.s.errors.append(
            ErrorGroupRecord(
                next(self._ids),
                title,
                onset,
                onset + 10 * MIN,
                count=self.rng.randint(20, 500),
                first_release=release,
                last_release=release,
                host=host,
                service=service,
            )
        )


def _service_of(host: str) -> str | None:
    return next((s for s, hosts in SERVICES.items() if host in hosts), None)


# --- failure shapes ------------------------------------------------------------------------------


def disk_fill(b: Builder) -> Cause:
    host = b.rng.choice(WEB + APP + DB)
    service = _service_of(host)
    if b.rng.random() < 0.6:
        b.prediction(
            f"/var on {host} reaches 100%", b.at(-600, -120), b.s.start, "disk", host=host, score=0.8
        )
    b.metric(
        "disk",
        "used_percent",
        f"disk used_percent on {host} /var",
        b.at(-60, -8),
        host=host,
        in_incident=b.rng.random() < 0.6,
    )
    if b.rng.random() < 0.75:
        b.log(
            "new_error_template",
            "New error log pattern (disk_space): write <*> failed: No space left on device",
            b.at(-4, 1),
            "disk_space",
            host=host,
            service=service,
            in_incident=True,
        )
    b.log(
        "log_burst",
        f"Burst of 'request <*> failed with status 500' on {host}",
        b.at(-1, 2),
        "none",
        host=host,
        service=service,
        in_incident=True,
    )
    if service:
        b.metric(
            "http",
            "latency_p99",
            f"http latency_p99 on {service}",
            b.at(0, 3),
            service=service,
            in_incident=True,
        )
    return Cause(frozenset({f"disk_space@{host}"}))


def memory_leak(b: Builder) -> Cause:
    host = b.rng.choice(APP + WEB)
    service = _service_of(host)
    b.metric(
        "mem",
        "used_percent",
        f"mem used_percent on {host} (trend)",
        b.at(-180, -25),
        host=host,
        in_incident=b.rng.random() < 0.5,
        method="trend",
    )
    if b.rng.random() < 0.5:
        b.prediction(f"memory on {host} exhausted", b.at(-150, -40), b.s.start, "mem", host=host, score=0.75)
    if b.rng.random() < 0.8:
        b.log(
            "new_error_template",
            "New error log pattern (out_of_memory): Out of memory: Killed process <*> (java)",
            b.at(-3, 0.5),
            "out_of_memory",
            host=host,
            in_incident=True,
        )
    b.log(
        "log_burst",
        f"Burst of '{service or 'java'} main process exited, code=killed' on {host}",
        b.at(-1, 2),
        "service_crash",
        host=host,
        service=service,
        in_incident=True,
    )
    if service:
        b.metric(
            "http",
            "error_rate",
            f"http 5xx error rate on {service}",
            b.at(0, 3),
            service=service,
            in_incident=True,
        )
    return Cause(frozenset({f"out_of_memory@{host}"}))


def bad_deploy(b: Builder) -> Cause:
    service = b.rng.choice(["checkout", "payments", "web"])
    host = b.rng.choice(SERVICES[service])
    major, minor = b.rng.randint(1, 5), b.rng.randint(0, 20)
    version, previous = f"{service}@{major}.{minor + 1}.0", f"{service}@{major}.{minor}.3"
    deployed = b.at(-12, -3)
    if b.rng.random() < 0.85:  # error events carried the release
        b.release(service, version, deployed + b.rng.uniform(0.2, 1.5) * MIN, previous, host)
    for _ in range(b.rng.randint(1, 3)):
        exc = b.rng.choice(
            [
                "KeyError: 'currency'",
                "TypeError: NoneType has no attribute 'id'",
                "ValueError: invalid literal for int()",
                "AttributeError: 'Cart' has no 'total'",
            ]
        )
        b.error_group(exc, deployed + b.rng.uniform(0.5, 4) * MIN, service, host, version)
    b.log(
        "log_burst",
        f"Burst of 'payment failed: <*>' on {service}",
        b.at(-2, 1),
        "none",
        host=host,
        service=service,
        in_incident=True,
    )
    b.metric(
        "http",
        "latency_p99",
        f"http latency_p99 on {service}",
        b.at(-1, 2),
        service=service,
        in_incident=True,
    )
    if b.rng.random() < 0.5:
        b.metric("cpu", "usage_user", f"cpu usage_user on {host}", b.at(-1, 3), host=host, in_incident=True)
    return Cause(frozenset({f"release:{service}:{version}"}), release=version)


def cpu_spike(b: Builder) -> Cause:
    host = b.rng.choice(APP + DB + WEB)
    service = _service_of(host)
    b.metric(
        "cpu",
        "usage_user",
        f"cpu usage_user on {host}",
        b.at(-6, -1),
        host=host,
        in_incident=b.rng.random() < 0.7,
        score=round(b.rng.uniform(0.85, 0.99), 2),
    )
    if b.rng.random() < 0.5:
        b.metric("system", "load1", f"system load1 on {host}", b.at(-4, 0), host=host)
    if service:
        b.metric(
            "http",
            "latency_p99",
            f"http latency_p99 on {service}",
            b.at(0, 3),
            service=service,
            in_incident=True,
        )
        if b.rng.random() < 0.5:
            b.log(
                "log_burst",
                f"Burst of 'request timed out after <*> ms' on {service}",
                b.at(0, 4),
                "timeout",
                service=service,
                in_incident=True,
            )
    return Cause(frozenset({f"cpu@{host}"}))


def link_flap(b: Builder) -> Cause:
    switch = b.rng.choice(SWITCHES)
    port = f"Gi0/{b.rng.randint(1, 48)}"
    in_incident = b.rng.random() < 0.7
    first = b.at(-10, -2)
    for k in range(b.rng.randint(2, 5)):
        b.external(
            "snmp",
            f"Interface {port} on {switch} changed to down (ifOperStatus)",
            first + k * 40,
            host=switch,
            in_incident=in_incident and k == 0,
        )
    if b.rng.random() < 0.6:
        b.metric("net", "err_in", f"interface {port} input errors on {switch}", b.at(-8, 0), host=switch)
    service = b.rng.choice(["checkout", "payments", "web"])
    for host in b.rng.sample(SERVICES[service], k=min(2, len(SERVICES[service]))):
        b.log(
            "log_burst",
            f"Burst of 'connection to <*> timed out' on {host}",
            b.at(0, 3),
            "timeout",
            host=host,
            service=service,
            in_incident=True,
        )
    b.metric(
        "http", "latency_p99", f"http latency_p99 on {service}", b.at(0, 3), service=service, in_incident=True
    )
    return Cause(frozenset({f"network@{switch}"}))


FAILURES: dict[str, Callable[[Builder], Cause]] = {
    "disk_fill": disk_fill,
    "memory_leak": memory_leak,
    "bad_deploy": bad_deploy,
    "cpu_spike": cpu_spike,
    "link_flap": link_flap,
}


# --- confounders ---------------------------------------------------------------------------------


def confound(b: Builder) -> None:
    elsewhere = [h for h in WEB + APP + DB + BATCH if h not in b.s.hosts]
    incident_host = next(iter(sorted(b.s.hosts)), b.rng.choice(APP))
    options = [
        "unrelated_anomaly",
        "unrelated_release",
        "log_noise",
        "old_prediction",
        "early_symptom",
        "external_alert",
    ]
    for choice in b.rng.sample(options, k=b.rng.randint(1, 3)):
        if choice == "unrelated_anomaly":
            host = b.rng.choice(elsewhere)
            measurement, field_ = b.rng.choice(
                [
                    ("cpu", "usage_user"),
                    ("mem", "used_percent"),
                    ("disk", "used_percent"),
                    ("net", "bytes_recv"),
                ]
            )
            b.metric(
                measurement, field_, f"{measurement} {field_} on {host}", b.at(-90, -5), host=host, score=0.97
            )
        elif choice == "unrelated_release":
            service = b.rng.choice([s for s in SERVICES if s not in b.s.services] or ["search"])
            host = b.rng.choice(SERVICES[service])
            version = f"{service}@9.{b.rng.randint(0, 9)}.0"
            onset = b.at(-60, -5)
            b.release(service, version, onset, f"{service}@9.0.0", host)
            if b.rng.random() < 0.4:
                b.error_group("DeprecationWarning: old API", onset + 2 * MIN, service, host, version)
        elif choice == "log_noise":
            b.log(
                "log_burst",
                f"Burst of 'GET /health 200 <*> ms' on {incident_host}",
                b.at(-40, -5),
                "none",
                host=incident_host,
                score=0.9,
            )
        elif choice == "old_prediction":
            host = b.rng.choice(elsewhere)
            b.prediction(
                f"/data on {host} reaches 100%",
                b.at(-4000, -2000),
                b.s.start + 5 * 86400,
                "disk",
                host=host,
                score=0.6,
            )
        elif choice == "early_symptom":
            b.metric(
                "http",
                "latency_p50",
                f"http latency_p50 blip on {incident_host}",
                b.at(-120, -30),
                host=incident_host,
                score=0.75,
            )
        else:
            service = b.rng.choice(list(SERVICES))
            b.external(
                "alertmanager", f"HighRequestRate {service}", b.at(-30, 5), service=service, severity="medium"
            )


def make_scenarios(count: int, seed: int) -> list[Scenario]:
    rng = random.Random(seed)
    scenarios = []
    for i in range(count):
        shape = SHAPES[i % len(SHAPES)]
        start = T0 + i * 86_400.0
        scenario = Scenario(f"{shape}-{i // len(SHAPES):03d}", shape, start, set(), set(), Cause(frozenset()))
        builder = Builder(rng, scenario)
        scenario.cause = FAILURES[shape](builder)
        confound(builder)
        scenarios.append(scenario)
    return scenarios


def scope_of(s: Scenario) -> Scope:
    runs_on = {svc: frozenset(hosts) for svc, hosts in SERVICES.items()}
    depends = {svc: frozenset(callees) for svc, callees in DEPENDS.items()}
    # The switches carry every service's traffic: inventory states them as a dependency.
    for switch in SWITCHES:
        runs_on[f"net:{switch}"] = frozenset({switch})
    depends = {svc: callees | {f"net:{sw}" for sw in SWITCHES} for svc, callees in depends.items()}
    for svc in SERVICES:
        depends.setdefault(svc, frozenset({f"net:{sw}" for sw in SWITCHES}))
    return Scope(s.start, frozenset(s.hosts), frozenset(s.services), runs_on, depends)


def evidence_of(s: Scenario) -> list[Evidence]:
    return build_evidence(
        alerts=s.alerts,
        templates=s.templates,
        error_groups=s.errors,
        releases=s.releases,
        window_start=s.start - 2 * 3600,
    )


# --- peers ---------------------------------------------------------------------------------------


def earliest_signal(evidence: Sequence[Evidence], _: Scope) -> list[str]:
    groups = group_candidates(evidence)
    return sorted(groups, key=lambda k: (min(e.onset for e in groups[k]), k))


def strongest_signal(evidence: Sequence[Evidence], _: Scope) -> list[str]:
    groups = group_candidates(evidence)
    return sorted(groups, key=lambda k: (-max(e.score for e in groups[k]), k))


def hits(
    order: Sequence[str], hypotheses: dict[str, Hypothesis], ev: dict[str, Evidence], cause: Cause
) -> int:
    """1-based position of the first correct candidate in ``order``, 0 if none."""
    for position, key in enumerate(order, start=1):
        if cause.matches(hypotheses[key], ev):
            return position
    return 0


@dataclass
class Tally:
    top1: int = 0
    top3: int = 0
    total: int = 0

    def add(self, position: int) -> None:
        self.total += 1
        self.top1 += position == 1
        self.top3 += 1 <= position <= 3

    def as_dict(self) -> dict[str, Any]:
        return {
            "top1": round(self.top1 / self.total, 4) if self.total else None,
            "top3": round(self.top3 / self.total, 4) if self.total else None,
            "n": self.total,
        }


async def model_orders(
    scenarios: Sequence[Scenario],
    provider: str,
    url: str | None,
    model: str,
    api_key: str | None,
    progress: Callable[[], None],
) -> tuple[list[list[str] | None], dict[str, Any]]:
    from vigil.config import load_settings
    from vigil.llm.factory import build_llm
    from vigil.llm.usage import MemoryUsage
    from vigil.rca.explain import model_explanation

    settings = load_settings(llm_provider=provider, llm_base_url=url, llm_model=model, llm_api_key=api_key)
    usage = MemoryUsage()
    llm = build_llm(settings, usage)
    assert llm is not None
    orders: list[list[str] | None] = []
    fallbacks = 0
    try:
        for s in scenarios:
            evidence = evidence_of(s)
            scope = scope_of(s)
            hypotheses = rank(evidence, scope)
            try:
                explanation = await model_explanation(llm, f"{s.shape} incident", hypotheses, evidence, scope)
            except Exception:
                fallbacks += 1
                orders.append(None)
            else:
                chosen = hypotheses[(explanation.chosen_rank or 1) - 1].key
                orders.append([chosen] + [h.key for h in hypotheses if h.key != chosen])
            progress()
    finally:
        await llm.aclose()
    totals = usage.totals().get("rca", {})
    return orders, {
        "model": f"{provider}:{model}",
        "fallbacks_to_rules": fallbacks,
        "invalid_outputs": totals.get("invalid_outputs", 0),
        "prompt_tokens": totals.get("prompt_tokens", 0),
        "completion_tokens": totals.get("completion_tokens", 0),
    }


@app.command()
def main(
    scenarios: int = typer.Option(250, "--scenarios", help="Scripted incidents (spread over the 5 shapes)."),
    seed: int = typer.Option(7, "--seed", help="Random seed of the scenario generator."),
    llm_url: str = typer.Option(None, "--llm-url", help="LLM base URL (OpenAI-compatible …/v1 or Ollama)."),
    llm_model: str = typer.Option(None, "--llm-model", help="Model name; enables the with-LLM column."),
    llm_provider: str = typer.Option("openai", "--llm-provider", help="openai (compatible) or ollama."),
    llm_api_key: str = typer.Option(None, "--llm-api-key", envvar="VIGIL_LLM_API_KEY", help="API key."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object and nothing else."),
) -> None:
    """Top-1/top-3 accuracy of the ranked root cause, Vigil's ranking vs timeline and score peers."""
    import os

    err = Console(stderr=True)
    cases = make_scenarios(scenarios, seed)
    tallies: dict[str, dict[str, Tally]] = {
        name: {shape: Tally() for shape in (*SHAPES, "all")}
        for name in ("vigil", "earliest_signal", "strongest_signal", "vigil_llm")
    }
    candidates: list[int] = []
    begin = time.perf_counter()
    with Progress(console=err, transient=True, disable=json_out) as progress:
        task = progress.add_task("ranking", total=len(cases))
        for s in cases:
            evidence = evidence_of(s)
            scope = scope_of(s)
            hypotheses = rank(evidence, scope)
            by_key = {h.key: h for h in hypotheses}
            by_id = {e.id: e for e in evidence}
            candidates.append(len(hypotheses))
            for name, order in (
                ("vigil", [h.key for h in hypotheses]),
                ("earliest_signal", earliest_signal(evidence, scope)),
                ("strongest_signal", strongest_signal(evidence, scope)),
            ):
                position = hits(order, by_key, by_id, s.cause)
                tallies[name][s.shape].add(position)
                tallies[name]["all"].add(position)
            progress.advance(task)
    rank_ms = (time.perf_counter() - begin) * 1000 / max(1, len(cases))

    model = llm_model or (os.environ.get("VIGIL_LLM_MODEL") if os.environ.get("VIGIL_LLM_PROVIDER") else None)
    llm_info: dict[str, Any] = {"skipped": "no LLM configured (pass --llm-url and --llm-model)"}
    if model:
        provider = llm_provider if llm_model else os.environ.get("VIGIL_LLM_PROVIDER", "openai")
        url = llm_url or os.environ.get("VIGIL_LLM_BASE_URL")
        with Progress(console=err, transient=True, disable=json_out) as progress:
            task = progress.add_task(f"asking {model}", total=len(cases))
            orders, llm_info = asyncio.run(
                model_orders(cases, provider, url, model, llm_api_key, lambda: progress.advance(task))
            )
        for s, model_order in zip(cases, orders, strict=True):
            evidence = evidence_of(s)
            hypotheses = {h.key: h for h in rank(evidence, scope_of(s))}
            by_id = {e.id: e for e in evidence}
            position = hits(model_order, hypotheses, by_id, s.cause) if model_order else 0
            tallies["vigil_llm"][s.shape].add(position)
            tallies["vigil_llm"]["all"].add(position)

    result: dict[str, Any] = {
        "benchmark": "rca",
        "scenarios": len(cases),
        "seed": seed,
        "mean_candidates": round(sum(candidates) / len(candidates), 1) if candidates else 0,
        "rank_ms_per_incident": round(rank_ms, 3),
        "accuracy": {
            name: {shape: t.as_dict() for shape, t in per.items()}
            for name, per in tallies.items()
            if name != "vigil_llm" or model
        },
        "llm": llm_info,
        "machine": machine(),
    }
    if json_out:
        print_json(result)
        return
    table = Table(title=f"RCA accuracy on {len(cases)} scripted incidents (seed {seed})")
    table.add_column("shape")
    columns = ["vigil", "earliest_signal", "strongest_signal", "vigil_llm"]
    for name in columns:
        table.add_column(f"{name} top-1 / top-3", justify="right")
    for shape in (*SHAPES, "all"):
        row = [shape]
        for name in columns:
            if name == "vigil_llm" and not model:
                row.append("skipped: no LLM configured")
                continue
            t = tallies[name][shape].as_dict()
            row.append(f"{t['top1']:.0%} / {t['top3']:.0%}")
        table.add_row(*row)
    Console().print(table)
    Console().print(
        f"mean candidates per incident: {result['mean_candidates']}; "
        f"ranking: {result['rank_ms_per_incident']} ms per incident"
    )
    if model:
        Console().print(f"LLM: {llm_info}")
    else:
        Console().print("with LLM: skipped: no LLM configured (pass --llm-url and --llm-model)")
