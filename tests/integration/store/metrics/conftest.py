"""A fresh metric store of each kind per test: embedded in tmp_path, or an InfluxDB database of
its own on the session's influxd (dropped afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from vigil.store.metrics.base import MetricStore
from vigil.store.metrics.embedded import EmbeddedMetricStore
from vigil.store.metrics.influx import InfluxMetricStore


async def open_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> MetricStore:
    if kind == "embedded":
        # Small enough that the tests see data both compacted and recent.
        store: MetricStore = EmbeddedMetricStore(
            tmp_path / f"metrics-{uuid.uuid4().hex[:6]}", compact_rows=200
        )
    else:
        url = request.getfixturevalue("influx_url")
        store = InfluxMetricStore(url, f"vigil_contract_{uuid.uuid4().hex[:10]}")
    await store.start()
    return store


async def drop(store: MetricStore) -> None:
    await store.close()
    if isinstance(store, InfluxMetricStore):
        async with httpx.AsyncClient(base_url=store.url) as client:
            await client.post("/query", data={"q": f'DROP DATABASE "{store.database}"'})


@pytest.fixture(params=["embedded", "influxdb"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MetricStore]:
    opened = await open_store(request.param, tmp_path, request)
    try:
        yield opened
    finally:
        await drop(opened)


@pytest.fixture
async def both(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[MetricStore, MetricStore]]:
    embedded = await open_store("embedded", tmp_path, request)
    influx = await open_store("influxdb", tmp_path, request)
    try:
        yield embedded, influx
    finally:
        await drop(embedded)
        await drop(influx)
