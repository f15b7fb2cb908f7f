"""The scripted incidents happen on schedule and have the shapes the brief promises."""

from __future__ import annotations

import itertools
import statistics

import pytest

from vigil.demo.fleet import Fleet, build_fleet
from vigil.demo.scenarios import HOUR, MINUTE, TIMELINE, Incident, Timeline, describe
from vigil.demo.telemetry import cpu_busy, disk_used_pct, host_points, mem_used_pct
from vigil.domain.metrics import FieldValue

ANCHOR = 1_780_000_000.0  # a fixed "going live" time keeps every run identical
SEED = 1


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return build_fleet(20, SEED)


@pytest.fixture(scope="module")
def timeline() -> Timeline:
    return Timeline(ANCHOR, TIMELINE, SEED)


def incident(kind: str) -> Incident:
    return next(i for i in TIMELINE if i.kind == kind)


def field_of(
    fleet: Fleet, timeline: Timeline, host: str, measurement: str, field: str, t: float, **tags: str
) -> FieldValue:
    host_ = fleet.host(host)
    assert host_ is not None
    for point in host_points(host_, t, timeline, SEED):
        if point.measurement == measurement and all(point.tags.get(k) == v for k, v in tags.items()):
            return point.fields[field]
    raise AssertionError(f"no {measurement}.{field} {tags} on {host}")


def test_occurrences_repeat_after_the_first_and_never_before_it(timeline: Timeline) -> None:
    deploy = incident("bad_deploy")
    assert deploy.repeat_s is not None
    assert timeline.occurrence_at(deploy, ANCHOR + deploy.start_s - 1) is None
    first = timeline.occurrence_at(deploy, ANCHOR + deploy.start_s + 1)
    assert first is not None and first.number == 0
    assert timeline.occurrence_at(deploy, ANCHOR + deploy.end_s + 1) is None
    second = timeline.occurrence_at(deploy, ANCHOR + deploy.repeat_s + deploy.start_s + 1)
    assert second is not None and second.number == 1
    # nothing an hour or a day before the script starts: the backfill is quiet baseline
    assert timeline.occurrence_at(deploy, ANCHOR - deploy.repeat_s + deploy.start_s + 1) is None
    between = timeline.occurrences_between(deploy, ANCHOR - 10 * HOUR, ANCHOR + deploy.repeat_s + 60)
    assert [o.number for o in between] == [0, 1]


def test_web03_var_fills_up_to_100_percent_on_schedule(fleet: Fleet, timeline: Timeline) -> None:
    fill = incident("disk_fill")
    assert fill.host == "web-03"
    start, peak, end = ANCHOR + fill.start_s, ANCHOR + fill.peak_s, ANCHOR + fill.end_s
    host = fleet.host("web-03")
    assert host is not None
    var = next(d for d in host.disks if d.path == "/var")

    def used(t: float) -> float:
        return disk_used_pct(host, var, t, timeline, SEED)

    before = [used(start - k * 600) for k in range(1, 12)]
    assert 35 < statistics.mean(before) < 47  # the usual level before it starts filling
    hourly = [statistics.mean(used(start + h * HOUR + k * 300) for k in range(12)) for h in range(8)]
    assert all(b > a for a, b in itertools.pairwise(hourly)), hourly  # rises hour after hour
    assert used(start + 0.5 * (peak - start)) == pytest.approx(70, abs=3)  # linear through the middle
    assert used(peak - 20 * MINUTE) > 97
    assert all(used(t) == 100.0 for t in (peak, peak + 60, end - 1))  # full until the cleanup
    assert used(end + 60) < 50  # cleaned up
    # and the metric Telegraf reports carries it, with used + free = total
    reported = field_of(fleet, timeline, "web-03", "disk", "used_percent", peak + 30, path="/var")
    assert reported == 100.0
    assert field_of(fleet, timeline, "web-03", "disk", "free", peak + 30, path="/var") == 0
    # other disks stay put
    root = next(d for d in host.disks if d.path == "/")
    assert abs(disk_used_pct(host, root, peak, timeline, SEED) - root.base_pct) < 2


def test_app02_memory_leaks_until_the_oom_kill_then_recovers(fleet: Fleet, timeline: Timeline) -> None:
    leak = incident("memory_leak")
    assert leak.host == "app-02"
    host = fleet.host("app-02")
    assert host is not None
    start, peak, end = ANCHOR + leak.start_s, ANCHOR + leak.peak_s, ANCHOR + leak.end_s
    samples = [mem_used_pct(host, start + k * (peak - start) / 10, timeline, SEED) for k in range(10)]
    assert samples[0] < 55
    assert samples[-1] > 85
    assert all(b > a - 1.5 for a, b in itertools.pairwise(samples))  # rises (noise aside)
    assert mem_used_pct(host, peak - 5, timeline, SEED) > 93
    assert mem_used_pct(host, peak + 10, timeline, SEED) < 45  # killed
    assert mem_used_pct(host, end + 600, timeline, SEED) < 60  # restarted, back to normal
    # app-04 runs the same service without the leak
    other = fleet.host("app-04")
    assert other is not None and mem_used_pct(other, peak - 5, timeline, SEED) < 60


def test_db01_cpu_spikes_for_ten_minutes(fleet: Fleet, timeline: Timeline) -> None:
    spike = incident("cpu_spike")
    assert spike.host == "db-01"
    host = fleet.host("db-01")
    assert host is not None
    start, end = ANCHOR + spike.start_s, ANCHOR + spike.end_s
    assert end - start == pytest.approx(10 * MINUTE)
    during = [cpu_busy(host, t, timeline, SEED)[0] for t in range(int(start) + 40, int(end), 20)]
    assert min(during) > 75
    # a whole day around it for the baseline: never near the spike level
    day = [cpu_busy(host, ANCHOR - 86400 + k * 300, timeline, SEED)[0] for k in range(288)]
    assert max(day) < 45
    assert max(day) - min(day) > 5  # there is a daily cycle to be quiet about
    assert cpu_busy(host, end + 60, timeline, SEED)[0] < 45


def test_switch_port_flaps_with_matching_metrics_and_alerts(fleet: Fleet, timeline: Timeline) -> None:
    flap = incident("link_flap")
    occurrence = timeline.occurrence_at(flap, ANCHOR + flap.start_s + 1)
    assert occurrence is not None
    spells = timeline.down_intervals(occurrence)
    assert len(spells) >= 5  # a real flap, not one outage
    assert all(occurrence.peak <= a < b <= occurrence.end for a, b in spells)
    interface = str(flap.params["interface"])
    status = {
        t: field_of(fleet, timeline, "sw-core-01", "interface", "ifOperStatus", t, ifDescr=interface)
        for t in (spells[0][0] + 1, spells[0][1] + 1, spells[1][0] + 1)
    }
    assert list(status.values()) == [2, 1, 2]
    # the other ports stay up
    assert field_of(fleet, timeline, "sw-core-01", "interface", "ifOperStatus", spells[0][0] + 1,
                    ifName="Te1/1/1") == 1  # fmt: skip
    # octet counters never go backwards across the outages
    octets = [
        field_of(fleet, timeline, "sw-core-01", "interface", "ifHCInOctets", occurrence.start + k * 15,
                 ifDescr=interface)
        for k in range(90)
    ]  # fmt: skip
    assert octets == sorted(octets)
    alerts = [a for a in timeline.alert_intervals(occurrence.start, occurrence.end)
              if a.labels["alertname"] == "SNMPInterfaceDown"]  # fmt: skip
    assert [(a.starts, a.ends) for a in alerts] == list(spells)


def test_checkout_release_changes_with_the_bad_deploy_and_its_fix(timeline: Timeline) -> None:
    deploy = incident("bad_deploy")
    assert timeline.release("checkout", ANCHOR) == "2.14.3"
    assert timeline.release("checkout", ANCHOR + deploy.start_s + 1) == "2.15.0"
    assert timeline.release("checkout", ANCHOR + deploy.end_s + 1) == "2.15.1"
    assert deploy.repeat_s is not None
    assert timeline.release("checkout", ANCHOR + deploy.repeat_s + deploy.start_s + 1) == "2.16.0"
    assert timeline.release("storefront", ANCHOR) == "1.8.2"


def test_prometheus_alerts_fire_and_resolve_with_the_incidents(timeline: Timeline) -> None:
    fill, spike = incident("disk_fill"), incident("cpu_spike")
    alerts = {a.labels["alertname"]: a for a in timeline.alert_intervals(ANCHOR - 1, ANCHOR + 20 * MINUTE)}
    disk = alerts["NodeFilesystemAlmostFull"]
    assert disk.starts < ANCHOR  # already firing when the demo goes live
    assert disk.ends == ANCHOR + fill.end_s
    assert disk.labels["instance"] == "web-03:9100"
    cpu = alerts["HostHighCpuLoad"]
    assert cpu.starts == ANCHOR + spike.start_s + 2 * MINUTE and cpu.ends == ANCHOR + spike.end_s
    assert "SNMPInterfaceDown" in alerts


def test_what_a_newcomer_sees_in_the_first_two_minutes(timeline: Timeline) -> None:
    """The script's promise: several incidents become visible right after going live."""
    early = {i.kind for i in TIMELINE if 0 <= i.peak_s <= 2 * MINUTE}
    assert early == {"memory_leak", "bad_deploy", "link_flap"}
    firing_at_start = [a.labels["alertname"] for a in timeline.alert_intervals(ANCHOR - 1, ANCHOR)]
    assert firing_at_start == ["NodeFilesystemAlmostFull"]


def test_schedule_is_described_for_people() -> None:
    lines = describe(Timeline(0.0))
    assert len(lines) == len(TIMELINE)
    assert lines[0].startswith("-8h → +40m → +1h10m  disk fill on web-03")


def test_incidents_must_be_ordered_and_shorter_than_their_period() -> None:
    with pytest.raises(ValueError, match="start <= peak <= end"):
        Incident("x", "cpu_spike", "db-01", start_s=10, peak_s=5, end_s=20)
    with pytest.raises(ValueError, match="repeat_s"):
        Incident("x", "cpu_spike", "db-01", start_s=0, peak_s=5, end_s=20, repeat_s=10)
