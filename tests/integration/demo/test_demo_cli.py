"""`vigil demo` as a user runs it: a separate process pointed at a running Vigil with a token."""

from __future__ import annotations

import asyncio
import sys

from tests.integration.conftest import Api
from tests.integration.demo.conftest import drain
from tests.live_server import LiveServer
from vigil.demo.fleet import ensure_demo_sources
from vigil.domain.metrics import MetricQuery
from vigil.pipeline.stages.ingestion import ingestion_stages


async def vigil_demo(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vigil", "demo", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_vigil_demo_sends_to_a_running_vigil_and_explains_a_refused_token(
    api: Api, live: LiveServer
) -> None:
    tokens = await ensure_demo_sources(api.backends)
    code, output = await vigil_demo(
        "--url", live.url, "--token", tokens.telegraf, "--hosts", "6", "--seed", "3",
        "--backfill", "0.25", "--speed", "60", "--interval", "30", "--duration", "1",
    )  # fmt: skip
    assert code == 0, output
    assert "backfilling 0.25 h of history" in output and "sent " in output
    assert "0 failed" in output and "0 partly refused" in output
    await drain(api.backends, ingestion_stages(api.backends))
    series = await api.backends.metrics.query(
        MetricQuery("mem", "used_percent", 0, 2**62, aggregation="count", group_by=("host",))
    )
    assert len(series) == 5 and all((s.values[0] or 0) >= 15 for s in series)  # 5 Linux hosts, 15 min+

    code, output = await vigil_demo("--url", live.url, "--token", "vgl_not-a-token", "--duration", "1")
    assert code == 2
    assert "error: " in output and "the ingest token was refused (401)" in output
