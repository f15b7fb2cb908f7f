#!/usr/bin/env python3
"""Developer tool: write a new Alembic revision from the difference between the models and a
database at head. Usage: scripts/make-migration.py <rev-id> "<message>"

Autogenerate compares against a throwaway SQLite database; review the result, and make sure it
runs on PostgreSQL too (the test suite migrates both).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile

from alembic import command

from vigil.store.db import Database, alembic_config


async def main(rev_id: str, message: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/scratch.db")
        await db.migrate()
        async with db.engine.connect() as conn:
            await conn.run_sync(
                lambda c: command.revision(
                    alembic_config(c), message=message, autogenerate=True, rev_id=rev_id
                )
            )
        await db.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
