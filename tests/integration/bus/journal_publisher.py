"""Publishes numbered messages through a journaled MemoryBus from several concurrent tasks,
printing each number once its publish has returned, until it is killed (crash test helper).

Usage: python journal_publisher.py JOURNAL_PATH TOPIC
"""

from __future__ import annotations

import asyncio
import sys
from itertools import count
from pathlib import Path

from vigil.bus.base import BusOptions
from vigil.bus.memory import MemoryBus

PUBLISHERS = 8


async def main(journal: Path, topic: str) -> None:
    bus = MemoryBus(BusOptions(), journal_path=journal)
    await bus.start()
    numbers = count()

    async def publish_forever() -> None:
        while True:
            number = next(numbers)
            await bus.publish(topic, str(number).encode())
            sys.stdout.write(f"{number}\n")
            sys.stdout.flush()

    await asyncio.gather(*(publish_forever() for _ in range(PUBLISHERS)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
