"""The relational store: one async engine for SQLite or PostgreSQL, and schema migrations."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every Vigil process.
_MIGRATION_LOCK_ID = 0x56494749


class DatabaseUnavailable(Exception):
    """The database cannot be reached."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while the worker writes; busy_timeout waits instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


# A pooled connection used this recently is taken as alive. SQLAlchemy's pool_pre_ping pings on
# every checkout, and asyncpg's ping is three round trips (begin, ";", rollback), added to the
# dozen of an alerting transaction. A connection that died within this window
# (a server restart) fails one statement; that error invalidates the whole pool, so the next
# checkouts reconnect.
IDLE_PING_S = 2.0


def _stamp_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    idle_since = record.info.pop("idle_since", None)
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_S:
        return  # new, or used moments ago
    try:
        dbapi_connection.ping()
    except Exception as exc:
        # The pool discards this connection and checks out another (a new one if need be).
        raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


def json_dumps(value: Any) -> str:
    """JSON columns are written with orjson (several times faster than ``json``, which showed up
    as a tenth of a busy worker's CPU); the standard library takes what orjson refuses."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def json_loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN, integers beyond 64 bits: valid to ``json``
        return json.loads(text)


class Database:
    def __init__(self, url: str, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split(":///", 1)[1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(
                url, echo=echo, json_serializer=json_dumps, json_deserializer=json_loads
            )
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_async_engine(
                url,
                echo=echo,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_use_lifo=True,  # a few hot connections; the idle rest get pinged
                json_serializer=json_dumps,
                json_deserializer=json_loads,
            )
            event.listen(self.engine.sync_engine.pool, "checkin", _stamp_idle)
            event.listen(self.engine.sync_engine.pool, "checkout", _ping_if_idle)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise DatabaseUnavailable(f"database unreachable: {exc}") from exc

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision``; safe when several processes start at once."""
        async with self.engine.connect() as conn:
            if not self.is_sqlite:
                await conn.execute(text(f"SELECT pg_advisory_lock({_MIGRATION_LOCK_ID})"))
            try:
                await conn.run_sync(_upgrade, revision)
                await conn.commit()
            finally:
                if not self.is_sqlite:
                    await conn.execute(text(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK_ID})"))
                    await conn.commit()

    async def current_revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current)

    async def close(self) -> None:
        await self.engine.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()
