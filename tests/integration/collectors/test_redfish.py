"""The Redfish collector against sushy-emulator (real) and a local BMC with Power over HTTPS."""

from __future__ import annotations

import pytest

from tests.fakes.redfish_power import FakeRedfishBMC
from tests.integration.collectors.helpers import run_collector
from vigil.collectors.base import CollectError
from vigil.domain.metrics import Point

ROOT_CREDENTIALS = {"username": "root", "password": "calvin"}


def _by(points: list[Point], measurement: str) -> dict[str, Point]:
    key = {
        "redfish_temperature": "sensor",
        "redfish_fan": "fan",
        "redfish_psu": "psu",
        "redfish_system": "system",
        "redfish_power": "control",
    }[measurement]
    return {p.tags[key]: p for p in points if p.measurement == measurement}


async def test_sushy_emulator_systems_and_thermal_and_power_not_supported(redfish_url: str) -> None:
    result = await run_collector("redfish", redfish_url, {"auth": "none", "host": "fake-bmc"}, {})
    [system] = _by(result.points, "redfish_system").values()
    assert system.fields["power_state"] in ("On", "Off")
    assert system.fields["powered_on"] == int(system.fields["power_state"] == "On")
    assert system.fields["health_rollup"] == "OK"  # sushy spells it HealthRollUp
    temperatures = _by(result.points, "redfish_temperature")
    assert temperatures["CPU Temp"].fields["reading_c"] == 41.0
    assert temperatures["CPU Temp"].fields["upper_critical_c"] == 45.0
    assert temperatures["CPU Temp"].tags["context"] == "CPU"
    assert _by(result.points, "redfish_fan")["BaseBoard System Fan"].fields["speed_rpm"] == 2100.0
    assert {p.tags["host"] for p in result.points} == {"fake-bmc"}
    # The emulator has no Power resource: reported as unsupported, not a failure.
    assert any(path.endswith("/Power") for path in result.unsupported)
    assert _by(result.points, "redfish_power") == {}
    assert result.alert_signals == []


@pytest.mark.parametrize("auth", ["basic", "session"])
async def test_https_bmc_with_power_thermal_and_either_auth(bmc: FakeRedfishBMC, auth: str) -> None:
    result = await run_collector("redfish", bmc.url, {"auth": auth, "verify_tls": False}, ROOT_CREDENTIALS)
    power = _by(result.points, "redfish_power")["System Power"]
    assert power.fields == {
        "consumed_w": 412.0,
        "capacity_w": 1600.0,
        "average_w": 405.0,
        "min_w": 380.0,
        "max_w": 450.0,
    }
    psus = _by(result.points, "redfish_psu")
    assert psus["PSU1"].fields == {"capacity_w": 800.0, "output_w": 205.0, "input_v": 230.0, "health_code": 0}
    temperatures = _by(result.points, "redfish_temperature")
    assert set(temperatures) == {"CPU1 Temp", "Inlet Temp"}  # the absent sensor is skipped
    fans = _by(result.points, "redfish_fan")
    assert fans["Fan1"].fields["speed_rpm"] == 5400.0 and fans["Fan2"].fields["speed_pct"] == 38.0
    assert result.unsupported == []
    if auth == "session":
        assert (bmc.sessions_created, bmc.sessions_deleted) == (1, 1)  # logged out after the poll
        assert all(
            "x-auth-token" in r.headers for r in bmc.requests if r.path.startswith("/redfish/v1/Systems")
        )
    else:
        assert bmc.sessions_created == 0
        assert all(r.headers.get("authorization", "").startswith("Basic ") for r in bmc.requests[1:])


async def test_health_changes_raise_and_resolve_alert_signals(bmc: FakeRedfishBMC) -> None:
    config = {"verify_tls": False, "host": "web-07"}
    first = await run_collector("redfish", bmc.url, config, ROOT_CREDENTIALS)
    assert first.alert_signals == []
    bmc.psus[1]["Status"]["Health"] = "Critical"
    bmc.system_rollup = "Warning"
    second = await run_collector("redfish", bmc.url, config, ROOT_CREDENTIALS, first.new_state)
    raised = {s.title: s for s in second.alert_signals}
    assert set(raised) == {
        "Power supply PSU2 on web-07 is Critical",
        "System web-System.Embedded.1 on web-07 is Warning",
    }
    assert raised["Power supply PSU2 on web-07 is Critical"].severity == "critical"
    assert all(s.origin == "redfish" and s.host == "web-07" and not s.resolved for s in raised.values())
    assert _by(second.points, "redfish_psu")["PSU2"].fields["health_code"] == 2
    bmc.psus[1]["Status"]["Health"] = "OK"
    third = await run_collector("redfish", bmc.url, config, ROOT_CREDENTIALS, second.new_state)
    [resolved] = third.alert_signals
    assert (
        resolved.resolved
        and resolved.fingerprint == raised["Power supply PSU2 on web-07 is Critical"].fingerprint
    )


async def test_collections_are_followed_across_pages(bmc: FakeRedfishBMC) -> None:
    bmc.system_ids = ["A", "B", "C"]
    bmc.page_size = 1
    result = await run_collector("redfish", bmc.url, {"verify_tls": False}, ROOT_CREDENTIALS)
    assert set(_by(result.points, "redfish_system")) == {"A", "B", "C"}


async def test_missing_power_resource_is_not_an_error(bmc: FakeRedfishBMC) -> None:
    bmc.has_power = False
    result = await run_collector("redfish", bmc.url, {"verify_tls": False}, ROOT_CREDENTIALS)
    assert result.unsupported == ["/redfish/v1/Chassis/1/Power"]
    assert _by(result.points, "redfish_temperature")


async def test_self_signed_certificate_is_refused_unless_verify_tls_is_off(bmc: FakeRedfishBMC) -> None:
    with pytest.raises(CollectError, match="CERTIFICATE_VERIFY_FAILED"):
        await run_collector("redfish", bmc.url, {}, ROOT_CREDENTIALS)


async def test_wrong_password_is_a_clear_error_for_both_auth_modes(bmc: FakeRedfishBMC) -> None:
    wrong = {"username": "root", "password": "nope"}
    with pytest.raises(CollectError, match=r"401 .*check the credentials.*requires user authentication"):
        await run_collector("redfish", bmc.url, {"verify_tls": False}, wrong)
    with pytest.raises(CollectError, match=r"401 .*Invalid user name or password"):
        await run_collector("redfish", bmc.url, {"verify_tls": False, "auth": "session"}, wrong)


async def test_sessions_unsupported_says_to_use_basic(redfish_url: str) -> None:
    with pytest.raises(CollectError, match=r"use config\.auth 'basic'"):
        await run_collector("redfish", redfish_url, {"auth": "session"}, ROOT_CREDENTIALS)
