"""The SNMP collector against a real Net-SNMP agent (v2c and v3 with SHA/AES)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.integration.collectors.helpers import run_collector
from tests.services import SnmpAgent
from vigil.collectors.base import CollectError, CollectResult
from vigil.domain.metrics import Point


def _v2c(agent: SnmpAgent) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"version": "2c", "timeout_s": 2, "retries": 1}, {"community": agent.community}


def _v3(agent: SnmpAgent) -> tuple[dict[str, Any], dict[str, Any]]:
    config = {"version": "3", "username": agent.v3_user, "auth_protocol": "SHA", "priv_protocol": "AES"}
    return config, {"auth_key": agent.v3_auth_key, "priv_key": agent.v3_priv_key}


def _by(points: list[Point], measurement: str) -> list[Point]:
    return [p for p in points if p.measurement == measurement]


async def _two_polls(agent: SnmpAgent, config: dict[str, Any], credentials: dict[str, Any]) -> CollectResult:
    target = f"{agent.host}:{agent.port}"
    first = await run_collector("snmp", target, config, credentials)
    assert first.new_state["interfaces"], "the agent has interfaces (lo at least)"
    # Net-SNMP caches interface counters for a few seconds; wait until they can have moved.
    await asyncio.sleep(1.2)
    return await run_collector("snmp", target, config, credentials, first.new_state)


@pytest.mark.parametrize("version", ["v2c", "v3"])
async def test_polls_system_interfaces_storage_and_cpu(snmp_agent: SnmpAgent, version: str) -> None:
    config, credentials = (_v2c if version == "v2c" else _v3)(snmp_agent)
    result = await _two_polls(snmp_agent, config, credentials)

    [system] = _by(result.points, "snmp_system")
    assert system.tags["host"] == "test-agent"  # sysName from the agent's config
    assert system.fields["uptime_s"] > 0 and system.fields["restarted"] == 0
    assert "load1" in system.fields  # UCD-SNMP laLoad, parsed from a string

    interfaces = {p.tags["if_name"]: p for p in _by(result.points, "snmp_interface")}
    assert "lo" in interfaces
    lo = interfaces["lo"]
    assert lo.fields["oper_status"] == 1 and lo.fields["up"] == 1
    # Second poll: rates from the previous counters (the loopback carries our own SNMP traffic).
    assert lo.fields["in_bps"] >= 0 and lo.fields["in_pps"] >= 0
    assert {"out_bps", "in_errors_ps", "out_discards_ps"} <= set(lo.fields)

    storage = {p.tags["storage"]: p for p in _by(result.points, "snmp_storage")}
    root = storage["/"]
    assert root.tags["storage_type"] == "fixed_disk"
    assert 0 < root.fields["used_pct"] < 100
    assert root.fields["size_bytes"] > root.fields["used_bytes"] > 0
    assert storage["Physical memory"].tags["storage_type"] == "ram"

    assert result.alert_signals == []  # every admin-up interface here is up


async def test_cpu_usage_from_raw_ticks_once_the_agent_refreshes_them(snmp_agent: SnmpAgent) -> None:
    # Net-SNMP refreshes its CPU tick counters every few seconds; until it does, the previous
    # sample stays the baseline. hrProcessorLoad appears once the agent has a minute of history.
    config, credentials = _v2c(snmp_agent)
    target = f"{snmp_agent.host}:{snmp_agent.port}"
    result = await run_collector(
        "snmp", target, {**config, "interfaces": False, "storage": False}, credentials
    )
    for _ in range(12):
        cpu = _by(result.points, "snmp_cpu")
        if cpu and "usage_pct" in cpu[0].fields:
            break
        await asyncio.sleep(1)
        result = await run_collector(
            "snmp", target, {**config, "interfaces": False, "storage": False}, credentials, result.new_state
        )
    [cpu_point] = _by(result.points, "snmp_cpu")
    assert 0 <= cpu_point.fields["usage_pct"] <= 100
    if "load_pct" in cpu_point.fields:
        assert 0 <= cpu_point.fields["load_pct"] <= 100 and cpu_point.fields["processors"] >= 1


async def test_wrong_community_times_out_with_a_clear_error(snmp_agent: SnmpAgent) -> None:
    with pytest.raises(CollectError, match="No SNMP response"):
        await run_collector(
            "snmp",
            f"{snmp_agent.host}:{snmp_agent.port}",
            {"timeout_s": 0.5, "retries": 0},
            {"community": "nope"},
        )


async def test_v3_wrong_keys_and_unknown_user_are_refused(snmp_agent: SnmpAgent) -> None:
    target = f"{snmp_agent.host}:{snmp_agent.port}"
    config, credentials = _v3(snmp_agent)
    config = {**config, "timeout_s": 1, "retries": 0}
    with pytest.raises(CollectError, match=r"(?i)digest|authentic"):
        await run_collector("snmp", target, config, {**credentials, "auth_key": "wrong-auth-pass"})
    with pytest.raises(CollectError, match=r"(?i)unknown usm user"):
        await run_collector("snmp", target, {**config, "username": "nobody"}, credentials)


async def test_only_the_selected_groups_are_polled(snmp_agent: SnmpAgent) -> None:
    config, credentials = _v2c(snmp_agent)
    result = await run_collector(
        "snmp",
        f"{snmp_agent.host}:{snmp_agent.port}",
        {**config, "interfaces": False, "storage": False},
        credentials,
    )
    assert {p.measurement for p in result.points} <= {"snmp_system", "snmp_cpu"}
    assert result.new_state["interfaces"] == {}
