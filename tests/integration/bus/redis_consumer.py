"""A RedisBus consumer in its own process, for the kill test. For each message it prints
``got <payload> <deliveries> <unix time>``, holds it for --hold-ms, acks it and prints
``done <payload> <deliveries>``. With --exit-when-idle-ms it exits after that long without a
message; otherwise it runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from vigil.bus.base import BusOptions
from vigil.bus.redis import RedisBus


async def main(args: argparse.Namespace) -> None:
    bus = RedisBus(args.url, BusOptions(visibility_timeout_ms=args.visibility_ms), prefix=args.prefix)
    await bus.start()
    last_message = time.monotonic()
    while args.exit_when_idle_ms is None or time.monotonic() - last_message < args.exit_when_idle_ms / 1000:
        for message in await bus.consume(args.topic, args.group, args.name, count=1, block_ms=100):
            payload = message.payload.decode()
            print(f"got {payload} {message.deliveries} {time.time():.3f}", flush=True)
            await asyncio.sleep(args.hold_ms / 1000)
            await bus.ack(args.topic, args.group, [message.id])
            print(f"done {payload} {message.deliveries}", flush=True)
            last_message = time.monotonic()
    await bus.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("--url", "--prefix", "--topic", "--group", "--name"):
        parser.add_argument(name, required=True)
    parser.add_argument("--visibility-ms", type=int, required=True)
    parser.add_argument("--hold-ms", type=int, default=0)
    parser.add_argument("--exit-when-idle-ms", type=int)
    asyncio.run(main(parser.parse_args()))
