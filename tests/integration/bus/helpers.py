"""Shared by the bus tests (kept out of conftest.py so tests can import it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from vigil.bus.base import Bus

# Short enough that the redelivery tests take well under a second each.
VISIBILITY_MS = 300

BusFactory = Callable[..., Awaitable[Bus]]
