"""Alembic environment: runs on the connection Vigil hands over (SQLite or PostgreSQL)."""

from __future__ import annotations

from alembic import context

from vigil.store.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `alembic` run by hand, which needs a URL
    raise RuntimeError("run migrations with `vigil migrate`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
