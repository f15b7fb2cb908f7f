"""The detect stage in a running pipeline, on both profiles: three days of synthetic metrics in
compressed time through the bus; a spike, a level shift and a slow leak each produce a finding
with the right evidence, a daily cycle alone produces none, findings are stored, baselines are
in the metric store, and a restarted stage continues exactly where it was."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from tests.integration.metrics.helpers import (
    SHIFT_AT,
    SPIKE_AT,
    START_S,
    STEP_S,
    N,
    collected_findings,
    forget_detector_state,
    make_fleet,
    run_detector,
    summary,
)
from vigil.analytics.anomaly import DetectorConfig
from vigil.backends import Backends
from vigil.domain.metrics import MetricQuery
from vigil.metrics.baselines import BASELINE_MEASUREMENT
from vigil.metrics.series import series_key
from vigil.store.models import FindingRecord, MetricDetectorState


def _at(index: int) -> int:
    return (START_S + index * STEP_S) * 1_000_000_000


async def test_spike_shift_and_leak_found_cycle_quiet(backends: Backends) -> None:
    fleet = make_fleet(quiet_hosts=1)
    await backends.bus.ensure_group("test.findings", "test")
    await run_detector(
        backends, fleet.messages(), topic="test.metrics", findings_topic="test.findings", store_findings=True
    )
    findings = await collected_findings(backends.bus, "test.findings")
    by_key: dict[str, list[dict]] = {}
    for f in findings:
        by_key.setdefault(f["key"], []).append(f)

    quiet = series_key("cpu", "usage_user", {"host": "web-01", "cpu": "cpu-total"})
    disk = series_key("disk", "used_percent", {"host": "web-03", "path": "/var", "device": "sdb1"})
    assert quiet not in by_key, by_key.get(quiet)
    assert disk not in by_key, by_key.get(disk)

    # The spike: opened within a few points of it, observed far above the expected band.
    spike_key = series_key("cpu", "usage_user", {"host": "api-01", "cpu": "cpu-total"})
    spike = [f for f in by_key[spike_key] if f["kind"] == "anomaly"]
    opened = [f for f in spike if f["state"] == "open"]
    assert len(opened) == 1
    first = opened[0]
    assert _at(SPIKE_AT) <= first["time_ns"] <= _at(SPIKE_AT + 5)
    evidence = first["evidence"]
    assert evidence["series"] == spike_key
    assert evidence["measurement"] == "cpu" and evidence["field"] == "usage_user"
    assert evidence["peak"]["observed"] > evidence["peak"]["upper"] > evidence["peak"]["expected"]
    assert evidence["peak"]["observed"] - evidence["peak"]["expected"] > 30
    assert {"zscore", "iqr"} <= set(evidence["methods"])
    assert first["score"] >= 0.6 and first["host"] == "api-01"
    assert "unusually high" in first["title"]
    assert [f["state"] for f in spike][-1] == "resolved"

    # The level shift: the CUSUM test fires; the finding resolves once the new level is learnt.
    shift_key = series_key("cpu", "usage_user", {"host": "db-01", "cpu": "cpu-total"})
    shift = [f for f in by_key[shift_key] if f["kind"] == "anomaly"]
    assert shift[0]["state"] == "open"
    assert _at(SHIFT_AT) <= shift[0]["time_ns"] <= _at(SHIFT_AT + 10)
    assert "level_shift" in shift[-1]["evidence"]["methods"]
    assert shift[-1]["evidence"]["peak"]["observed"] - shift[-1]["evidence"]["peak"]["expected"] > 10
    assert shift[-1]["state"] == "resolved"

    # The slow leak: a prediction towards 100 % with an interval around the true time.
    leak_key = series_key("mem", "used_percent", {"host": "app-02"})
    predictions = [f for f in by_key[leak_key] if f["kind"] == "prediction"]
    assert predictions and predictions[0]["state"] == "open"
    last = predictions[-1]
    assert last["state"] in ("open", "update")
    ev = last["evidence"]
    assert ev["threshold"] == 100.0 and ev["rule"] == "default:mem_used"
    now_s = last["time_ns"] / 1e9
    true_eta_s = (100.0 - (45.0 + (now_s - START_S) / 3600 * 0.4)) / 0.4 * 3600
    assert ev["eta_low_s"] <= true_eta_s * 1.15 and true_eta_s * 0.85 <= (ev["eta_high_s"] or np.inf)
    assert abs(ev["eta_s"] - true_eta_s) < 0.25 * true_eta_s
    assert 0.3 < ev["trend_per_hour"] < 0.5
    assert last["title"].startswith("memory on app-02 exhausted in ~")
    assert "(90% interval" in last["title"]

    # Stored: one row per occurrence, in the state its last event left it.
    async with backends.db.session() as session:
        rows = list((await session.execute(select(FindingRecord))).scalars())
        saved = set((await session.execute(select(MetricDetectorState.series_key))).scalars())
    assert {(r.kind, r.key) for r in rows} == {(f["kind"], f["key"]) for f in findings}
    assert len(rows) == len({(f["kind"], f["key"], f["evidence"]["opened_ns"]) for f in findings})
    spike_row = next(r for r in rows if r.key == spike_key)
    assert spike_row.state == "resolved" and spike_row.resolved_at is not None
    assert spike_row.score == max(f["score"] for f in spike)
    assert saved == {series_key(s.measurement, s.field, s.tags) for s in fleet.series}

    # Baselines: one point per minute after warm-up, with the band around the expected value.
    band = await backends.metrics.query(
        MetricQuery(
            BASELINE_MEASUREMENT,
            "expected",
            _at(0),
            _at(N),
            "count",
            where=(("host", ("web-01",)), ("series_field", ("usage_user",))),
        )
    )
    assert band and band[0].values[0] == N - DetectorConfig().warmup_points


async def test_restarted_stage_continues_exactly(backends: Backends) -> None:
    fleet = make_fleet(quiet_hosts=1)
    messages = fleet.messages()
    await backends.bus.ensure_group("test.findings.a", "test")
    await backends.bus.ensure_group("test.findings.b", "test")
    await run_detector(backends, messages, topic="test.metrics.a", findings_topic="test.findings.a")
    uninterrupted = summary(await collected_findings(backends.bus, "test.findings.a"))
    assert uninterrupted

    await forget_detector_state(backends)
    half = len(messages) // 2 + 3
    await run_detector(backends, messages[:half], topic="test.metrics.b", findings_topic="test.findings.b")
    # a new stage instance (as after a worker restart): state comes from the database
    await run_detector(backends, messages[half:], topic="test.metrics.b", findings_topic="test.findings.b")
    restarted = summary(await collected_findings(backends.bus, "test.findings.b"))
    assert restarted == uninterrupted
