"""The real services the suite depends on can be started (fails loudly in CI when missing)."""

import httpx

from tests.services import SnmpAgent


def test_influxdb_answers_ping(influx_url: str) -> None:
    assert httpx.get(f"{influx_url}/ping").status_code == 204


def test_chroma_answers_heartbeat(chroma_url: str) -> None:
    assert "nanosecond heartbeat" in httpx.get(f"{chroma_url}/api/v2/heartbeat").json()


def test_snmpd_started(snmp_agent: SnmpAgent) -> None:
    assert snmp_agent.port > 0


def test_redfish_emulator_serves_root(redfish_url: str) -> None:
    assert httpx.get(f"{redfish_url}/redfish/v1/").json()["@odata.id"] == "/redfish/v1/"
