"""A collector worker in its own process, for the kill test: runs one scheduler on the settings
given in VIGIL_* variables until it is killed."""

from __future__ import annotations

import asyncio

from tests.integration.collectors.scheduling import FAST
from vigil.backends import Backends
from vigil.collectors.scheduler import CollectorScheduler
from vigil.config import load_settings


async def main() -> None:
    backends = Backends.from_settings(load_settings())
    await backends.bus.start()  # the scheduler needs the database, the bus and the secrets only
    scheduler = CollectorScheduler(backends, options=FAST)
    print("worker running", flush=True)
    await scheduler.run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main())
