"""Vigil on both profiles: every integration test that asks for ``backends`` (or anything built
on it) runs twice — embedded (SQLite, in-process bus, embedded metric and vector stores) and
distributed (PostgreSQL, Redis, InfluxDB, Chroma server).

Each test gets isolated state cheaply: a copy of a migrated SQLite file or a PostgreSQL database
cloned from a migrated template, its own Redis key prefix, InfluxDB database and Chroma
collection prefix.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import services
from vigil.backends import Backends
from vigil.config import Settings
from vigil.security import hash_password
from vigil.store.db import Database
from vigil.store.models import User
from vigil.store.vectors.chroma import ChromaVectorStore

PROFILES = ["embedded", "distributed"]
ADMIN_PASSWORD = "admin-password-for-tests"
# Hashed once: argon2 is deliberately slow, and every test creates users.
ADMIN_PASSWORD_HASH = hash_password(ADMIN_PASSWORD)
OTHER_PASSWORD_HASH = hash_password("x" * 12)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "vigil.db"

    async def build() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await db.migrate()
        await db.close()

    asyncio.run(build())
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_url: str) -> str:
    """The session database, migrated once; per-test databases are cloned from it."""

    async def build() -> None:
        db = Database(postgres_url)
        await db.migrate()
        await db.close()

    asyncio.run(build())
    return postgres_url


@pytest.fixture
def postgres_clone(postgres_template: str) -> Iterator[str]:
    template = postgres_template.rsplit("/", 1)[1]
    name = f"{template}_{uuid.uuid4().hex[:8]}"
    # CREATE DATABASE ... TEMPLATE needs no other session connected to the template.
    services._asyncpg_run(
        services.POSTGRES_ADMIN_DSN,
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{template}' "
        "AND pid <> pg_backend_pid()",
    )
    services._asyncpg_run(services.POSTGRES_ADMIN_DSN, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield postgres_template.rsplit("/", 1)[0] + "/" + name
    finally:
        services._asyncpg_run(services.POSTGRES_ADMIN_DSN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(profile: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    common: dict[str, Any] = {
        "data_dir": data_dir,
        "bus_visibility_timeout_ms": 1000,
        "secret_key": "test-secret-key",
    }
    if profile == "embedded":
        shutil.copy(request.getfixturevalue("sqlite_template"), data_dir / "vigil.db")
        return Settings(**common)
    return Settings(
        **common,
        database_url=request.getfixturevalue("postgres_clone"),
        redis_url=request.getfixturevalue("redis_url"),
        redis_prefix=request.getfixturevalue("redis_prefix"),
        influx_url=request.getfixturevalue("influx_url"),
        influx_database=f"vigil_{uuid.uuid4().hex[:10]}",
        chroma_url=request.getfixturevalue("chroma_url"),
    )


@pytest.fixture
async def backends(settings: Settings) -> AsyncIterator[Backends]:
    b = Backends.from_settings(settings)
    if isinstance(b.vectors, ChromaVectorStore) and settings.chroma_url:
        b.vectors.collection_prefix = f"t{uuid.uuid4().hex[:8]}_"
    await b.start()
    try:
        yield b
    finally:
        await b.close()


@dataclass
class Api:
    """An authenticated client of a Vigil app running in-process, plus helpers."""

    client: httpx.AsyncClient
    backends: Backends

    async def token(
        self, role: str = "admin", scopes: tuple[str, ...] | None = None, username: str | None = None
    ) -> str:
        """A bearer token of a new user with ``role`` (scopes default to all the role allows)."""
        from vigil.api.auth import ROLE_SCOPES
        from vigil.api.routes.tokens import issue_token

        async with self.backends.db.session() as session:
            user = User(
                username=username or f"{role}-{uuid.uuid4().hex[:6]}",
                role=role,
                password_hash=OTHER_PASSWORD_HASH,
                is_active=True,
            )
            session.add(user)
            await session.flush()
            _, secret = await issue_token(session, user.id, "test", list(scopes or sorted(ROLE_SCOPES[role])))
        return secret

    def as_token(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self.client._transport,
            base_url=str(self.client.base_url),
            headers={"Authorization": f"Bearer {token}"},
        )

    def anonymous(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.client._transport, base_url=str(self.client.base_url))


@pytest.fixture
async def api(backends: Backends) -> AsyncIterator[Api]:
    from vigil.api.app import create_app

    async with backends.db.session() as session:
        session.add(User(username="admin", role="admin", password_hash=ADMIN_PASSWORD_HASH, is_active=True))
    app = create_app(backends, manage_backends=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vigil.test") as anonymous:
        helper = Api(anonymous, backends)
        admin = helper.as_token(await helper.token("admin", username="root"))
        async with admin:
            yield Api(admin, backends)
