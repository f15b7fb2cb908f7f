"""First run: an admin account, so a newcomer can log in straight away."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import func, select

from vigil.backends import Backends
from vigil.security import hash_password, new_password
from vigil.store.models import User


@dataclass(frozen=True)
class InitialAdmin:
    username: str
    password: str


async def ensure_admin(backends: Backends) -> InitialAdmin | None:
    """Create ``admin`` when there are no users yet; returns its credentials to print once.

    ``VIGIL_ADMIN_PASSWORD`` sets the password (for scripted set-ups); otherwise a random one is
    generated and also written to ``<data dir>/initial-admin-password`` (owner-readable only),
    since the console output may be gone by the time someone looks for it.
    """
    async with backends.db.session() as session:
        users = (await session.execute(select(func.count()).select_from(User))).scalar_one()
        if users:
            return None
        password = os.environ.get("VIGIL_ADMIN_PASSWORD") or new_password()
        session.add(
            User(username="admin", password_hash=hash_password(password), role="admin", is_active=True)
        )
    path = backends.settings.data_dir / "initial-admin-password"
    path.touch(mode=0o600)
    path.write_text(password + "\n")
    return InitialAdmin("admin", password)
