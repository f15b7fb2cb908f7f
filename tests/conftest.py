"""Session-wide real services. See tests/services.py for how each one is started."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `bench` and `tests` importable as packages
    sys.path.insert(0, str(REPO_ROOT))

from tests import services  # noqa: E402


@pytest.fixture(scope="session")
def influx_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with services.influxdb(tmp_path_factory.mktemp("influxdb")) as url:
        yield url


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with services.chroma_server(tmp_path_factory.mktemp("chroma")) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with services.postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    services.redis_available()
    return services.REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = services.redis_prefix()
    yield prefix
    services.redis_cleanup(prefix)


@pytest.fixture(scope="session")
def snmp_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.SnmpAgent]:
    with services.snmpd(tmp_path_factory.mktemp("snmpd")) as agent:
        yield agent


@pytest.fixture(scope="session")
def redfish_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with services.redfish_emulator(tmp_path_factory.mktemp("redfish")) as url:
        yield url
