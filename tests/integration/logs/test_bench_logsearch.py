"""`vigil bench logsearch` runs end to end on a small load and drops its throwaway database."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from bench import logsearch
from tests import services


async def test_bench_measures_both_databases_and_cleans_up(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = uuid.uuid4()
    monkeypatch.setattr(logsearch.uuid, "uuid4", lambda: run_id)  # so we know its database name
    admin = services.POSTGRES_ADMIN_DSN.replace("postgresql://", "postgresql+asyncpg://")
    # No embeddings here: loading the local model's reference runtime (torch) alone takes a minute.
    result = await logsearch.run(3000, admin, 3000, repeat=2, peer_repeat=1, embeddings=0)
    for engine in ("postgresql", "sqlite"):
        queries = result[engine]["queries"]
        assert set(queries) == {name for name, _ in logsearch.query_mix("x", 0)}
        assert queries["token, very rare"]["rows"] == 3  # the rare token is in exactly three lines
        assert queries["word, common"]["rows"] == 50
        assert all(q["p95_ms"] >= q["p50_ms"] > 0 for q in queries.values())
        assert "scan_p50_ms" in queries["phrase"] and "scan_p50_ms" not in queries["filter: host"]

    conn = await asyncpg.connect(services.POSTGRES_ADMIN_DSN)
    try:
        left = await conn.fetch(
            "SELECT 1 FROM pg_database WHERE datname = $1", f"vigil_bench_logsearch_{run_id.hex[:8]}"
        )
    finally:
        await conn.close()
    assert left == []
