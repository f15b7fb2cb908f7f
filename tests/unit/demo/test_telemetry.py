"""The fleet's telemetry is valid in every wire format Vigil reads, varied, and reproducible."""

from __future__ import annotations

import re
from collections import Counter

import orjson
import pytest

from vigil.demo.fleet import Fleet, build_fleet
from vigil.demo.scenarios import HOUR, MINUTE, TIMELINE, Timeline
from vigil.demo.telemetry import (
    alert_notifications,
    error_reports,
    fleet_points,
    line_protocol,
    log_lines,
    telegraf_json,
)
from vigil.domain.metrics import Point
from vigil.ingest.alertmanager import parse_alertmanager
from vigil.ingest.line_protocol import format_lines, parse
from vigil.ingest.logs import LogDefaults, parse_json_logs
from vigil.ingest.telegraf_json import parse_telegraf_json

ANCHOR = 1_780_000_000.0
NOW_NS = int(ANCHOR * 1e9)


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return build_fleet(20, 1)


@pytest.fixture(scope="module")
def timeline() -> Timeline:
    return Timeline(ANCHOR, TIMELINE, 1)


def all_points(fleet: Fleet, timeline: Timeline, times: list[float]) -> list[Point]:
    return [p for t in times for points in fleet_points(fleet, t, timeline).values() for p in points]


def test_line_protocol_parses_back_to_the_same_points(fleet: Fleet, timeline: Timeline) -> None:
    # around the incidents too: full disk, OOM, flapping link, CPU spike
    times = [ANCHOR - HOUR, ANCHOR + 40, ANCHOR + 80, ANCHOR + 5 * MINUTE, ANCHOR + 41 * MINUTE]
    points = all_points(fleet, timeline, times)
    body = line_protocol(points)
    result = parse(body)
    assert result.errors == []
    assert len(result.points) == len(points)
    for sent, got in zip(points, result.points, strict=True):
        assert (got.measurement, got.tags, got.fields, got.time_ns) == (
            sent.measurement, sent.tags, sent.fields, sent.time_ns,
        )  # fmt: skip
    # byte for byte what Vigil's own formatter (InfluxDB's rules) would write
    assert body.decode() == format_lines(points) + "\n"
    assert {p.measurement for p in points} == {
        "cpu",
        "mem",
        "disk",
        "system",
        "net",
        "nginx",
        "interface",
        "snmp",
    }
    assert all(
        isinstance(p.fields[k], int) for p in points if p.measurement == "mem" for k in ("total", "used")
    )


def test_telegraf_json_parses_with_second_timestamps(fleet: Fleet, timeline: Timeline) -> None:
    points = all_points(fleet, timeline, [ANCHOR - 600, ANCHOR])
    parsed, errors = parse_telegraf_json(telegraf_json(points), None, NOW_NS)
    assert errors == []
    assert len(parsed) == len(points)
    assert parsed[0].time_ns == points[0].time_ns  # whole seconds, as Telegraf's default
    assert parsed[0].fields == points[0].fields
    document = orjson.loads(telegraf_json(points[:1]))
    assert set(document["metrics"][0]) == {"name", "tags", "fields", "timestamp"}


def test_every_host_reports_the_telegraf_basics(fleet: Fleet, timeline: Timeline) -> None:
    by_host = fleet_points(fleet, ANCHOR, timeline)
    assert set(by_host) == {h.name for h in fleet.hosts}
    for host in fleet.hosts:
        kinds = {p.measurement for p in by_host[host.name]}
        expected = {"interface", "snmp"} if host.role == "switch" else {"cpu", "mem", "disk", "system", "net"}
        assert expected <= kinds, host.name
        assert all(p.tags["host"] == host.name for p in by_host[host.name])
    cpu = [p.fields for points in by_host.values() for p in points if p.measurement == "cpu"]
    assert all(abs(sum(float(v) for v in f.values()) - 100) < 0.01 for f in cpu)  # shares of 100 %


def test_counters_only_go_up(fleet: Fleet, timeline: Timeline) -> None:
    series: dict[tuple[str, str], list[int]] = {}
    for k in range(60):
        for points in fleet_points(fleet, ANCHOR - HOUR + k * 120, timeline).values():
            for p in points:
                if p.measurement == "net":
                    series.setdefault((p.tags["host"], "bytes_recv"), []).append(int(p.fields["bytes_recv"]))
                if p.measurement == "system":
                    series.setdefault((p.tags["host"], "uptime"), []).append(int(p.fields["uptime"]))
    assert series
    assert all(values == sorted(values) and values[0] < values[-1] for values in series.values())


def test_log_records_are_valid_ndjson_for_the_logs_webhook(fleet: Fleet, timeline: Timeline) -> None:
    lines = log_lines(fleet, timeline, ANCHOR - 30 * MINUTE, ANCHOR + 20 * MINUTE)
    body = b"\n".join(orjson.dumps(line.record()) for line in lines)
    records, errors = parse_json_logs(body, LogDefaults(source="demo"), NOW_NS)
    assert errors == []
    assert len(records) == len(lines) > 500
    times = [r.time_ns for r in records]
    assert times == sorted(times)
    assert all((ANCHOR - 30 * MINUTE) * 1e9 < t <= (ANCHOR + 20 * MINUTE + 60) * 1e9 for t in times)
    assert all(r.host and r.service and r.level for r in records)
    assert {r.host for r in records} >= {h.name for h in fleet.hosts}


# One pattern per kind of log the brief asks for; each must appear in the first twenty minutes.
LOG_FORMATS = {
    "nginx access": r'^\S+ - - \[[\w/:]+ \+0000\] "(GET|POST) \S+ HTTP/1.1" \d{3} \d+ ".*" ".*" rt=',
    "apache access": r'^\S+ - - \[.+\] "GET \S+ HTTP/1.1" \d{3} (\d+|-) "',
    "sshd": r"^(Accepted publickey for|Failed password for invalid user) ",
    "kernel OOM killer": r"^Out of memory: Killed process \d+ \(java\) total-vm:\d+kB",
    "systemd": r"^orders\.service: Main process exited, code=killed, status=9/KILL$",
    "postgres": r"^[\d-]{10} [\d:]{8}\.\d{3} UTC \[\d+\] LOG:  duration: [\d.]+ ms  statement: SELECT",
    "java stack trace": r"java\.lang\.OutOfMemoryError: Java heap space\n\tat java\.base/",
    "python traceback": r"Traceback \(most recent call last\):\n  File \"/srv/checkout/checkout/api\.py\"",
    "deploy": r"^Deploying checkout 2\.15\.0 \(commit [0-9a-f]{7}\)",
    "cisco link": r"%LINK-3-UPDOWN: Interface GigabitEthernet1/0/24, changed state to down",
    "bonding": r"bond0: \(slave eth1\): link status definitely down",
    "5xx access": r'"POST /api/checkout/orders HTTP/1.1" 500 ',
    "cron": r"CMD \(   cd / && run-parts --report /etc/cron\.hourly\)",
}


def test_varied_real_looking_log_formats(fleet: Fleet, timeline: Timeline) -> None:
    lines = log_lines(fleet, timeline, ANCHOR - 2 * HOUR, ANCHOR + 20 * MINUTE)
    messages = [line.message for line in lines]
    missing = [name for name, pattern in LOG_FORMATS.items()
               if not any(re.search(pattern, m) for m in messages)]  # fmt: skip
    assert missing == []
    k8s = [line for line in lines if "kubernetes" in line.attributes]
    assert k8s and all(line.message == "request completed" and "status" in line.attributes for line in k8s)
    levels = Counter(line.level for line in lines)
    assert {"info", "warning", "error"} <= set(levels)


def test_disk_full_errors_come_near_the_end_of_the_fill(fleet: Fleet, timeline: Timeline) -> None:
    fill = next(i for i in TIMELINE if i.kind == "disk_fill")
    peak = ANCHOR + fill.peak_s

    def no_space(a: float, b: float) -> list[str]:
        return [
            line.host
            for line in log_lines(fleet, timeline, a, b)
            if "No space left on device" in line.message
        ]

    assert no_space(ANCHOR - 2 * HOUR, peak - 30 * MINUTE) == []
    near = no_space(peak - 15 * MINUTE, peak + 10 * MINUTE)
    assert len(near) > 20 and set(near) == {"web-03"}
    assert no_space(ANCHOR + fill.end_s + 60, ANCHOR + fill.end_s + HOUR) == []


def test_baseline_is_mostly_quiet(fleet: Fleet) -> None:
    """With no incidents scripted, a day of logs is chatter with a few benign warnings."""
    quiet = Timeline(ANCHOR, (), 1)
    lines = log_lines(fleet, quiet, ANCHOR - 86400, ANCHOR)
    levels = Counter(line.level for line in lines)
    assert 5_000 < len(lines) < 20_000  # ~10 lines a minute over the fleet
    assert levels["info"] / len(lines) > 0.9
    assert levels["critical"] == 0
    assert 0 < levels["error"] < 0.01 * len(lines)
    reports = error_reports(fleet, quiet, ANCHOR - 86400, ANCHOR)
    assert 50 < len(reports) < 300 and {r.problem for r in reports} == {"gateway_timeout", "smtp_refused",
                                                                        "bad_page_param"}  # fmt: skip
    assert alert_notifications(quiet, ANCHOR - 86400, ANCHOR) == []


def test_error_reports_follow_the_bad_deploy(fleet: Fleet, timeline: Timeline) -> None:
    deploy = next(i for i in TIMELINE if i.kind == "bad_deploy")
    reports = error_reports(fleet, timeline, ANCHOR, ANCHOR + deploy.end_s + 10 * MINUTE)
    burst = [r for r in reports if r.problem in ("missing_currency", "quantity_none")]
    assert len(burst) == pytest.approx(0.5 * (deploy.end_s - deploy.peak_s), rel=0.25)
    assert {r.release for r in burst} == {"2.15.0"} and {r.host for r in burst} == {"app-01", "app-03"}
    assert all(ANCHOR + deploy.peak_s <= r.t < ANCHOR + deploy.end_s for r in burst)
    assert Counter(r.problem for r in burst).most_common(1)[0][0] == "missing_currency"


def test_alertmanager_payloads_are_version_4_and_parse(timeline: Timeline) -> None:
    payloads = alert_notifications(timeline, ANCHOR, ANCHOR + 20 * MINUTE, renotify_at=ANCHOR + 10)
    signals = [s for p in payloads for s in parse_alertmanager(orjson.dumps(p), "demo-alertmanager")]
    assert all(p["version"] == "4" and len(p["alerts"]) == 1 for p in payloads)
    names = Counter((s.title.split(":")[0], "resolved" if s.resolved else "firing") for s in signals)
    assert names[("NodeFilesystemAlmostFull", "firing")] == 1  # re-sent at renotify_at
    assert names[("SNMPInterfaceDown", "firing")] >= 5 and names[("SNMPInterfaceDown", "resolved")] >= 5
    assert names[("HostHighCpuLoad", "firing")] == 1 and names[("HostHighCpuLoad", "resolved")] == 1
    down = [s for s in signals if s.title.startswith("SNMPInterfaceDown")]
    assert {s.host for s in down} == {"sw-core-01"} and {s.severity for s in down} == {"critical"}
    assert len({s.fingerprint for s in down}) == 1  # the same alert, firing and resolving


def test_same_seed_same_telemetry_other_seed_other(fleet: Fleet, timeline: Timeline) -> None:
    a, b = ANCHOR - 20 * MINUTE, ANCHOR + 5 * MINUTE
    first = (
        line_protocol(all_points(fleet, timeline, [a, b])),
        [x.record() for x in log_lines(fleet, timeline, a, b)],
    )
    again_fleet, again_timeline = build_fleet(20, 1), Timeline(ANCHOR, TIMELINE, 1)
    again = (line_protocol(all_points(again_fleet, again_timeline, [a, b])),
             [x.record() for x in log_lines(again_fleet, again_timeline, a, b)])  # fmt: skip
    assert first == again
    other_fleet, other_timeline = build_fleet(20, 2), Timeline(ANCHOR, TIMELINE, 2)
    assert line_protocol(all_points(other_fleet, other_timeline, [a, b])) != first[0]
