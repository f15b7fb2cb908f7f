"""Pooled PostgreSQL connections are pinged only after sitting idle (``IDLE_PING_S``): a
connection the server dropped meanwhile is replaced without the caller seeing an error, and a
server restart between two quick uses fails one statement, after which the pool reconnects."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text

from vigil.store import db as db_module
from vigil.store.db import Database

pytestmark = pytest.mark.distributed


async def _backend_pid(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(postgres_url: str, pid: int) -> None:
    admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_an_idle_connection_the_server_dropped_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(postgres_url, pool_size=1)
    try:
        dropped = await _backend_pid(db)
        await _terminate(postgres_url, dropped)
        monkeypatch.setattr(db_module, "IDLE_PING_S", 0.0)  # it has been idle long enough
        assert await _backend_pid(db) != dropped  # no error: the ping found it dead
    finally:
        await db.close()


async def test_a_connection_used_moments_ago_is_not_pinged_and_recovers_after_one_error(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(postgres_url, pool_size=2)
    monkeypatch.setattr(db_module, "IDLE_PING_S", 3600.0)
    try:
        dropped = await _backend_pid(db)
        await _terminate(postgres_url, dropped)
        # Not pinged: the statement meets the closed connection (asyncpg reports that as an
        # interface or internal error, depending on when it notices).
        with pytest.raises(Exception):  # noqa: B017
            await _backend_pid(db)
        assert await _backend_pid(db) != dropped  # the error invalidated it; a new one serves
    finally:
        await db.close()
