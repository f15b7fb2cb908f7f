"""Buses for the contract suite: the in-process bus with and without its journal, and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.bus.helpers import VISIBILITY_MS, BusFactory
from vigil.bus.base import Bus, BusOptions
from vigil.bus.memory import MemoryBus
from vigil.bus.redis import RedisBus


@pytest.fixture(params=["memory", "memory-journal", "redis"])
def bus_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_bus(
    bus_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[BusFactory]:
    """Started buses of this test's kind with the given BusOptions fields; closed afterwards."""
    redis_url = request.getfixturevalue("redis_url") if bus_kind == "redis" else ""
    redis_prefix = request.getfixturevalue("redis_prefix") if bus_kind == "redis" else ""
    buses: list[Bus] = []

    async def make(**fields: Any) -> Bus:
        options = BusOptions(**{"visibility_timeout_ms": VISIBILITY_MS, **fields})
        bus: Bus
        if bus_kind == "memory":
            bus = MemoryBus(options)
        elif bus_kind == "memory-journal":
            bus = MemoryBus(options, journal_path=tmp_path / f"bus-{len(buses)}.sqlite")
        else:
            bus = RedisBus(redis_url, options, prefix=redis_prefix)
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()


@pytest.fixture
async def bus(make_bus: BusFactory) -> Bus:
    return await make_bus()
