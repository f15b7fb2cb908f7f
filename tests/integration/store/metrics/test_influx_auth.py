"""InfluxMetricStore against an InfluxDB 1.6 with authentication on (its own influxd, since the
session's runs without auth)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import services
from vigil.domain.metrics import MetricQuery, Point
from vigil.store.metrics.base import MetricStoreError
from vigil.store.metrics.influx import InfluxMetricStore

T0 = 1_700_000_000 * 10**9


@pytest.fixture(scope="module")
def secured_influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("influxd")
    if binary is None:
        services.unavailable("influxd not installed (Debian package `influxdb`)")
    workdir: Path = tmp_path_factory.mktemp("influxdb-auth")
    http_port, rpc_port = services.free_port(), services.free_port()
    config = services.INFLUX_CONFIG.format(dir=workdir, http_port=http_port, rpc_port=rpc_port)
    config = config.replace("[http]\n", "[http]\n  auth-enabled = true\n")
    (workdir / "influxdb.conf").write_text(config)
    process = services.spawn("influxd", [str(binary), "-config", str(workdir / "influxdb.conf")], workdir)
    url = f"http://127.0.0.1:{http_port}"
    try:
        services.wait_until(lambda: httpx.get(f"{url}/ping", timeout=1).status_code == 204, 30, "influxd")
        # With no user yet, InfluxDB lets anyone create the first admin.
        created = httpx.post(
            f"{url}/query", data={"q": "CREATE USER vigil WITH PASSWORD 's3cr3t' WITH ALL PRIVILEGES"}
        )
        created.raise_for_status()
        yield url
    finally:
        process.stop()


async def test_basic_auth_reads_and_writes(secured_influx: str) -> None:
    store = InfluxMetricStore(secured_influx, "secured", username="vigil", password="s3cr3t")
    await store.start()
    try:
        await store.write([Point("cpu", {"v": 2.0}, {"host": "a"}, T0)])
        series = await store.query(MetricQuery("cpu", "v", T0, T0 + 10**9))
        assert [s.values for s in series] == [[2.0]]
    finally:
        await store.close()


@pytest.mark.parametrize(("username", "password"), [("vigil", "wrong"), (None, None)])
async def test_bad_or_missing_credentials_are_reported(
    secured_influx: str, username: str | None, password: str | None
) -> None:
    store = InfluxMetricStore(secured_influx, "secured", username=username, password=password)
    try:
        with pytest.raises(MetricStoreError, match=re.escape("HTTP 401: ")) as raised:
            await store.start()
        assert "create_database" not in str(raised.value)
        with pytest.raises(MetricStoreError, match="401"):
            await store.write([Point("cpu", {"v": 1.0}, {}, T0)])
    finally:
        await store.close()
