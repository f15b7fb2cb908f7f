"""SNMP sample → points: counter wraps, HC counters, discontinuities, status alerts, storage."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.collectors.snmp import (
    SnmpCollector,
    SnmpConfig,
    SnmpCredentials,
    SnmpSample,
    build_result,
    counter_delta,
    parse_target,
    speed_bps,
    uptime_delta_s,
)
from vigil.domain.metrics import Point

TARGET = "10.0.0.5:161"
SECOND = 1_000_000_000


def _if_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "descr": "eth0",
        "name": "eth0",
        "type": 6,
        "speed": 1_000_000_000,
        "high_speed": 1000,
        "admin": 1,
        "oper": 1,
        "in_octets": 1000,
        "out_octets": 2000,
        "in_ucast": 10,
        "out_ucast": 20,
        "in_errors": 0,
        "out_errors": 0,
        "in_discards": 0,
        "out_discards": 0,
        "hc_in_octets": 1000,
        "hc_out_octets": 2000,
        "hc_in_ucast": 10,
        "hc_out_ucast": 20,
        "discontinuity": 0,
    }
    row.update(overrides)
    return row


def _sample(
    uptime: int, wall_s: float, interfaces: dict[int, dict[str, Any]] | None = None, **kwargs: Any
) -> SnmpSample:
    return SnmpSample(
        uptime_ticks=uptime,
        sys_name="sw1",
        interfaces=interfaces if interfaces is not None else {1: _if_row()},
        wall_ns=int(wall_s * SECOND),
        **kwargs,
    )


def _point(points: list[Point], measurement: str, **tags: str) -> Point:
    found = [
        p for p in points if p.measurement == measurement and all(p.tags.get(k) == v for k, v in tags.items())
    ]
    assert len(found) == 1, f"{measurement} {tags}: {found}"
    return found[0]


def _two_polls(
    first: dict[int, dict[str, Any]],
    second: dict[int, dict[str, Any]],
    *,
    dt_ticks: int = 1000,
    config: SnmpConfig | None = None,
) -> tuple[Any, Any]:
    config = config or SnmpConfig()
    one = build_result(_sample(50_000, 100.0, first), {}, target=TARGET, config=config)
    two = build_result(
        _sample(50_000 + dt_ticks, 100.0 + dt_ticks / 100, second),
        one.new_state,
        target=TARGET,
        config=config,
    )
    return one, two


def test_counter_delta_handles_one_wrap_of_32_and_64_bit_counters() -> None:
    assert counter_delta(150, 100, 32) == 50
    assert counter_delta(10, 2**32 - 10, 32) == 20
    assert counter_delta(5, 2**64 - 5, 64) == 10


def test_uptime_delta_detects_restart_but_accepts_a_timeticks_wrap() -> None:
    assert uptime_delta_s(2_000, 1_000, 10.0) == 10.0
    assert uptime_delta_s(100, 50_000_000, 10.0) is None  # went back: the agent restarted
    assert uptime_delta_s(500, 2**32 - 500, 10.0) == 10.0  # wrapped after ~497 days


def test_first_poll_only_primes_counters() -> None:
    result = build_result(_sample(50_000, 100.0), {}, target=TARGET, config=SnmpConfig())
    interface = _point(result.points, "snmp_interface", if_name="eth0")
    assert "in_bps" not in interface.fields
    assert interface.fields["oper_status"] == 1 and interface.fields["speed_bps"] == 10**9
    assert result.new_state["interfaces"]["1"]["c"]["in_octets"] == 1000


def test_rates_use_hc_counters_and_agent_uptime_for_time() -> None:
    _, two = _two_polls(
        {1: _if_row()},
        {
            1: _if_row(
                hc_in_octets=1000 + 1_250_000,
                hc_out_octets=2000 + 125_000,
                in_octets=7,
                out_octets=9,
                hc_in_ucast=10 + 1000,
                in_errors=5,
            )
        },
    )
    fields = _point(two.points, "snmp_interface", if_name="eth0").fields
    # 1.25 MB in 10 s = 1 Mbit/s; the 32-bit counters (which went "backwards") are ignored.
    assert fields["in_bps"] == pytest.approx(1_000_000)
    assert fields["out_bps"] == pytest.approx(100_000)
    assert fields["in_pps"] == pytest.approx(100)
    assert fields["in_errors_ps"] == pytest.approx(0.5)
    assert fields["in_util_pct"] == pytest.approx(0.1)


def test_32_bit_counter_wrap_gives_the_true_rate() -> None:
    no_hc = {"hc_in_octets": None, "hc_out_octets": None, "hc_in_ucast": None, "hc_out_ucast": None}
    _, two = _two_polls(
        {1: _if_row(in_octets=2**32 - 1000, **no_hc)},
        {1: _if_row(in_octets=4000, **no_hc)},
    )
    fields = _point(two.points, "snmp_interface", if_name="eth0").fields
    assert fields["in_bps"] == pytest.approx(5000 * 8 / 10)


def test_a_wrap_faster_than_the_link_is_a_reset_and_is_discarded() -> None:
    no_hc = {"hc_in_octets": None, "hc_out_octets": None, "hc_in_ucast": None, "hc_out_ucast": None}
    slow = {"speed": 10_000_000, "high_speed": 10}
    _, two = _two_polls(
        {1: _if_row(in_octets=3_000_000_000, **no_hc, **slow)},
        {1: _if_row(in_octets=100, **no_hc, **slow)},  # "wrap" of ~1.3 GB in 10 s on 10 Mbit/s
    )
    fields = _point(two.points, "snmp_interface", if_name="eth0").fields
    assert "in_bps" not in fields and "out_bps" not in fields
    assert fields["up"] == 1  # the status is still reported


def test_agent_restart_discards_counters_and_is_flagged() -> None:
    config = SnmpConfig()
    one = build_result(_sample(90_000_000, 100.0), {}, target=TARGET, config=config)
    two = build_result(
        _sample(500, 110.0, {1: _if_row(hc_in_octets=50)}), one.new_state, target=TARGET, config=config
    )
    assert _point(two.points, "snmp_system").fields["restarted"] == 1
    assert "in_bps" not in _point(two.points, "snmp_interface", if_name="eth0").fields
    # ... and the restart sample primes the next poll.
    three = build_result(
        _sample(1500, 120.0, {1: _if_row(hc_in_octets=50 + 1000)}),
        two.new_state,
        target=TARGET,
        config=config,
    )
    assert _point(three.points, "snmp_interface", if_name="eth0").fields["in_bps"] == pytest.approx(800)


def test_counter_discontinuity_time_change_discards_that_interface_only() -> None:
    _, two = _two_polls(
        {1: _if_row(), 2: _if_row(name="eth1")},
        {1: _if_row(hc_in_octets=2000, discontinuity=4242), 2: _if_row(name="eth1", hc_in_octets=2000)},
    )
    assert "in_bps" not in _point(two.points, "snmp_interface", if_name="eth0").fields
    assert _point(two.points, "snmp_interface", if_name="eth1").fields["in_bps"] == pytest.approx(800)


def test_switching_between_32_and_64_bit_counters_discards_the_sample() -> None:
    _, two = _two_polls(
        {1: _if_row()},
        {1: _if_row(hc_in_octets=None, hc_out_octets=None, in_octets=5000)},
    )
    assert "in_bps" not in _point(two.points, "snmp_interface", if_name="eth0").fields


def test_oper_status_down_on_an_admin_up_interface_alerts_and_up_resolves() -> None:
    config = SnmpConfig()
    one = build_result(_sample(1000, 10.0), {}, target=TARGET, config=config)
    assert one.alert_signals == []
    down = build_result(
        _sample(2000, 20.0, {1: _if_row(oper=2)}), one.new_state, target=TARGET, config=config
    )
    [signal] = down.alert_signals
    assert signal.origin == "snmp" and not signal.resolved and signal.host == "sw1"
    assert "eth0" in signal.title and "down" in signal.title
    assert signal.fingerprint == f"snmp:{TARGET}:ifIndex=1:oper"
    still_down = build_result(
        _sample(3000, 30.0, {1: _if_row(oper=2)}), down.new_state, target=TARGET, config=config
    )
    assert still_down.alert_signals == []  # no repeat while it stays down
    up = build_result(_sample(4000, 40.0), still_down.new_state, target=TARGET, config=config)
    [resolved] = up.alert_signals
    assert resolved.resolved and resolved.fingerprint == signal.fingerprint


def test_administratively_down_interfaces_do_not_alert() -> None:
    result = build_result(
        _sample(1000, 10.0, {1: _if_row(admin=2, oper=2)}), {}, target=TARGET, config=SnmpConfig()
    )
    assert result.alert_signals == []


def test_storage_used_percent_in_bytes_and_negative_integer32_values() -> None:
    storage = {
        31: {"type": "1.3.6.1.2.1.25.2.1.4", "descr": "/", "units": 4096, "size": 1000, "used": 250},
        32: {
            "type": "1.3.6.1.2.1.25.2.1.2",
            "descr": "Physical memory",
            "units": 1024,
            "size": -2,
            "used": 10,
        },
        33: {"type": "1.3.6.1.2.1.25.2.1.3", "descr": "Swap space", "units": 1024, "size": 0, "used": 0},
    }
    result = build_result(_sample(1000, 10.0, {}, storage=storage), {}, target=TARGET, config=SnmpConfig())
    root = _point(result.points, "snmp_storage", storage="/")
    assert root.tags["storage_type"] == "fixed_disk"
    assert root.fields["used_pct"] == 25.0 and root.fields["size_bytes"] == 4_096_000
    memory = _point(result.points, "snmp_storage", storage="Physical memory")
    assert memory.fields["size_bytes"] == (2**32 - 2) * 1024  # Integer32 read back as unsigned
    assert "used_pct" not in _point(result.points, "snmp_storage", storage="Swap space").fields


def test_cpu_from_processor_load_and_raw_ticks() -> None:
    config = SnmpConfig()
    raw1 = {"user": 100, "nice": 0, "system": 50, "idle": 850, "wait": 0, "steal": 0}
    raw2 = {"user": 160, "nice": 0, "system": 70, "idle": 870, "wait": 0, "steal": 0}
    one = build_result(
        _sample(1000, 10.0, {}, processor_loads=[10, 30], cpu_raw=raw1), {}, target=TARGET, config=config
    )
    cpu = _point(one.points, "snmp_cpu")
    assert cpu.fields == {"load_pct": 20.0, "processors": 2}
    two = build_result(_sample(2000, 20.0, {}, cpu_raw=raw2), one.new_state, target=TARGET, config=config)
    assert _point(two.points, "snmp_cpu").fields["usage_pct"] == pytest.approx(80.0)


def test_host_tag_is_sysname_unless_configured() -> None:
    result = build_result(_sample(1, 1.0), {}, target=TARGET, config=SnmpConfig(host="core-switch"))
    assert {p.tags["host"] for p in result.points} == {"core-switch"}
    assert {p.tags["agent"] for p in result.points} == {TARGET}


def test_speed_prefers_high_speed_when_if_speed_saturates() -> None:
    assert speed_bps({"speed": 4294967295, "high_speed": 10000}) == 10_000_000_000
    assert speed_bps({"speed": 100_000_000, "high_speed": 100}) == 100_000_000
    assert speed_bps({"speed": 10_000_000}) == 10_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10.0.0.5", ("10.0.0.5", 161)), ("sw1:1161", ("sw1", 1161)), ("[::1]:162", ("::1", 162))],
)
def test_parse_target(text: str, expected: tuple[str, int]) -> None:
    assert parse_target(text) == expected


def test_check_names_the_missing_credential() -> None:
    collector = SnmpCollector()
    with pytest.raises(ValueError, match=r"credentials\.community"):
        collector.check("sw1", SnmpConfig(), SnmpCredentials())
    with pytest.raises(ValueError, match=r"config\.username"):
        collector.check("sw1", SnmpConfig(version="3"), SnmpCredentials(auth_key="12345678"))
    with pytest.raises(ValueError, match=r"credentials\.priv_key"):
        collector.check("sw1", SnmpConfig(version="3", username="u"), SnmpCredentials(auth_key="12345678"))
    with pytest.raises(ValueError, match="target"):
        collector.check("sw1:notaport", SnmpConfig(), SnmpCredentials(community="public"))
    assert collector.check("sw1", SnmpConfig(), SnmpCredentials(community="public")) == "sw1:161"


def test_traffic_above_the_nominal_speed_without_a_wrap_is_kept() -> None:
    # Loopback and virtual interfaces report a nominal ifSpeed they routinely exceed.
    slow = {"speed": 10_000_000, "high_speed": 10}
    _, two = _two_polls({1: _if_row(**slow)}, {1: _if_row(hc_in_octets=1000 + 50_000_000, **slow)})
    assert _point(two.points, "snmp_interface", if_name="eth0").fields["in_bps"] == pytest.approx(40_000_000)
