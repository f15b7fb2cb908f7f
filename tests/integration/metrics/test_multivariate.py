"""The host Isolation Forest service on both profiles: trained on a day of a host's metrics from
the metric store, it opens an ``isolation_forest`` finding for an unusual combination, resolves
it when the host is back to normal, and a new lease holder adopts the open finding."""

from __future__ import annotations

import math
import time

import numpy as np

from tests.integration.metrics.helpers import collected_findings
from vigil.backends import Backends
from vigil.collectors.leases import build_leases
from vigil.domain.metrics import Point
from vigil.metrics.findings import store_findings
from vigil.pipeline.stages.multivariate import HostModelService, MultivariateOptions, host_key

MINUTE = 60
END_S = int(time.time()) // 86400 * 86400 - 6 * 3600  # a fixed time of day: the same data every run
START_S = END_S - 24 * 3600


def _host_points(t: int, busy: float, load: float, mem: float, sent: float) -> list[Point]:
    ns = t * 1_000_000_000
    return [
        Point("cpu", {"usage_idle": 100.0 - busy}, {"host": "mv-01", "cpu": "cpu-total"}, ns),
        Point("system", {"load1": load}, {"host": "mv-01"}, ns),
        Point("mem", {"used_percent": mem}, {"host": "mv-01"}, ns),
        Point("net", {"bytes_sent": sent}, {"host": "mv-01", "interface": "eth0"}, ns),
    ]


def _normal(rng: np.random.Generator, t: int, sent: float) -> tuple[list[Point], float]:
    busy = 30 + 15 * math.sin(2 * math.pi * (t % 86400) / 86400) + rng.normal(0, 2)
    rate = busy * 1000 + rng.normal(0, 500)  # traffic follows the CPU
    sent += max(rate, 0.0) * MINUTE
    return _host_points(
        t, busy, busy / 25 + rng.normal(0, 0.1), 50 + 0.1 * busy + rng.normal(0, 0.5), sent
    ), sent


async def test_unusual_combination_opens_and_resolves(backends: Backends) -> None:
    rng = np.random.default_rng(11)
    points: list[Point] = []
    sent = 1e9
    for t in range(START_S, END_S - 6 * MINUTE, MINUTE):
        batch, sent = _normal(rng, t, sent)
        points += batch
    for t in range(END_S - 6 * MINUTE, END_S, MINUTE):
        # CPU pegged, yet no load and no traffic: nothing in the day looked like this
        sent += 100 * MINUTE
        points += _host_points(t, 85 + rng.normal(0, 1), 0.2, 52 + rng.normal(0, 0.5), sent)
    await backends.metrics.write(points)

    await backends.bus.ensure_group("test.findings.mv", "test")
    options = MultivariateOptions(hosts=("mv-01",))
    service = HostModelService(backends, options=options, findings_topic="test.findings.mv")
    opened = await service.tick(END_S + 1)
    assert [f.state for f in opened] == ["open"]
    finding = opened[0]
    assert finding.kind == "anomaly" and finding.key == host_key("mv-01") and finding.host == "mv-01"
    evidence = finding.evidence
    assert evidence["method"] == "isolation_forest" and evidence["methods"] == ["isolation_forest"]
    assert set(evidence["metrics"]) == {"cpu_busy", "mem_used", "load1", "net_out"}
    assert evidence["trained_rows"] > 1000
    assert "cpu_busy" in evidence["top_metrics"]
    assert evidence["peak"]["observed"]["cpu_busy"] > 80
    # three anomalous minutes in a row open it: from the first pegged minute (or the one before,
    # when that minute happens to be among the 1 % of normal rows the forest finds unusual)
    onset = (END_S - 6 * MINUTE) * 1_000_000_000
    assert onset - MINUTE * 1_000_000_000 <= evidence["opened_ns"] <= onset
    published = await collected_findings(backends.bus, "test.findings.mv")
    assert [f["state"] for f in published] == ["open"]

    # back to normal for five minutes: resolved
    later: list[Point] = []
    for t in range(END_S, END_S + 6 * MINUTE, MINUTE):
        batch, sent = _normal(rng, t, sent)
        later += batch
    await backends.metrics.write(later)
    resolved = await service.tick(END_S + 6 * MINUTE + 1)
    assert [f.state for f in resolved] == ["resolved"]
    assert resolved[0].evidence["opened_ns"] == evidence["opened_ns"]

    # a new holder of the lease picks up what is still open
    await store_findings(backends.db, opened)
    successor = HostModelService(backends, options=options, leases=build_leases(backends.settings))
    assert await successor._hold()
    assert successor.hosts["mv-01"].opened_ns == evidence["opened_ns"]
    await successor.leases.release(["metrics-multivariate"])


async def test_hosts_without_enough_history_get_no_model(backends: Backends) -> None:
    points = []
    rng = np.random.default_rng(2)
    sent = 0.0
    for t in range(END_S - 30 * MINUTE, END_S, MINUTE):  # half an hour only
        batch, sent = _normal(rng, t, sent)
        points += batch
    await backends.metrics.write(points)
    service = HostModelService(backends, options=MultivariateOptions(hosts=("mv-01",)))
    assert await service.tick(END_S + 1) == []
    assert service.hosts["mv-01"].model is None
