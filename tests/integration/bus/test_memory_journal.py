"""The in-process bus's journal: what was accepted survives a restart or a SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.integration.bus.helpers import VISIBILITY_MS
from vigil.bus.base import BusOptions, BusUnavailable, Message
from vigil.bus.memory import MemoryBus, parse_id

PUBLISHER = Path(__file__).with_name("journal_publisher.py")


async def open_bus(journal: Path, max_deliveries: int = 5) -> MemoryBus:
    options = BusOptions(visibility_timeout_ms=VISIBILITY_MS, max_deliveries=max_deliveries)
    bus = MemoryBus(options, journal_path=journal)
    await bus.start()
    return bus


def payloads(messages: list[Message]) -> list[bytes]:
    return [m.payload for m in messages]


async def test_restart_redelivers_unacked_messages_only(tmp_path: Path) -> None:
    journal = tmp_path / "bus.sqlite"
    bus = await open_bus(journal)
    await bus.ensure_group("events", "stage")
    await bus.publish_many("events", [b"a", b"b", b"c"])
    a, b, c = await bus.consume("events", "stage", "c1", block_ms=100)
    await bus.ack("events", "stage", [a.id])
    await bus.close()

    bus = await open_bus(journal)
    # The holder died with the old process, so there is no visibility timeout to wait for.
    again = await bus.consume("events", "stage", "c2", block_ms=0)

    assert [(m.id, m.payload, m.deliveries) for m in again] == [(b.id, b"b", 2), (c.id, b"c", 2)]
    await bus.ack("events", "stage", [m.id for m in again])
    assert await bus.consume("events", "stage", "c2", block_ms=50) == []
    await bus.close()


async def test_restart_keeps_unconsumed_messages_groups_and_dead_letters(tmp_path: Path) -> None:
    journal = tmp_path / "bus.sqlite"
    bus = await open_bus(journal)
    await bus.ensure_group("events", "stage")
    await bus.ensure_group("events", "idle")
    first_ids = await bus.publish_many("events", [b"poison", b"later"])
    [poison] = await bus.consume("events", "stage", "c1", count=1, block_ms=100)
    await bus.dead_letter(poison, "stage", "bad input")
    await bus.close()

    bus = await open_bus(journal)
    stats = await bus.group_stats("events", "stage")
    assert (stats.lag, stats.pending) == (1, 0)
    assert (await bus.group_stats("events", "idle")).lag == 2
    [letter] = await bus.list_dead_letters()
    assert (letter.payload, letter.reason) == (b"poison", "bad input")
    [later] = await bus.consume("events", "stage", "c1", block_ms=0)
    assert later.payload == b"later"
    await bus.ack("events", "stage", [later.id])

    replayed_id = await bus.replay_dead_letter(letter.id)
    new_id = await bus.publish("events", b"new")
    # Ids keep increasing across the restart.
    assert parse_id(first_ids[-1]) < parse_id(replayed_id) < parse_id(new_id)
    await bus.close()

    bus = await open_bus(journal)
    assert await bus.dead_letter_count() == 0
    assert payloads(await bus.consume("events", "stage", "c1", block_ms=0)) == [b"poison", b"new"]
    await bus.close()


async def test_delivery_counts_survive_a_restart(tmp_path: Path) -> None:
    journal = tmp_path / "bus.sqlite"
    bus = await open_bus(journal, max_deliveries=1)
    await bus.publish("events", b"crashes the worker")
    await bus.consume("events", "stage", "c1", block_ms=100)
    await bus.close()

    # Already delivered max_deliveries times: after the restart it is a dead letter, so a
    # message that crashes its worker cannot crash it forever.
    bus = await open_bus(journal, max_deliveries=1)
    assert await bus.consume("events", "stage", "c1", block_ms=0) == []
    [letter] = await bus.list_dead_letters()
    assert (letter.payload, letter.deliveries) == (b"crashes the worker", 1)
    await bus.close()


async def test_processed_messages_leave_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / "bus.sqlite"
    bus = await open_bus(journal)
    await bus.ensure_group("events", "one")
    await bus.ensure_group("events", "two")
    await bus.publish_many("events", [b"m"] * 50)
    for group in ("one", "two"):
        done = await bus.consume("events", group, "c1", count=100, block_ms=100)
        await bus.ack("events", group, [m.id for m in done[:30]])
    await bus.close()

    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (20,)
        assert db.execute("SELECT count(*) FROM pending").fetchone() == (40,)

    bus = await open_bus(journal)
    for group in ("one", "two"):
        rest = await bus.consume("events", group, "c1", count=100, block_ms=0)
        assert len(rest) == 20
        await bus.ack("events", group, [m.id for m in rest])
    await bus.close()

    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM pending").fetchone() == (0,)


async def test_concurrent_publishes_share_transactions(tmp_path: Path) -> None:
    bus = await open_bus(tmp_path / "bus.sqlite")
    await asyncio.gather(*(bus.publish("events", str(i).encode()) for i in range(500)))
    assert bus.journal_batches < 50
    got = await bus.consume("events", "stage", "c1", count=1000, block_ms=0)
    assert sorted(int(m.payload) for m in got) == list(range(500))
    await bus.close()


async def test_sigkilled_publisher_loses_nothing_it_confirmed(tmp_path: Path) -> None:
    journal = tmp_path / "bus.sqlite"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(PUBLISHER), str(journal), "events", stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    confirmed: set[int] = set()
    try:
        while len(confirmed) < 300:
            line = await asyncio.wait_for(process.stdout.readline(), 15)
            assert line, "publisher exited early"
            confirmed.add(int(line))
    finally:
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
    # Whatever was printed before the kill was confirmed too.
    confirmed |= {int(line) for line in (await process.stdout.read()).split()}

    bus = await open_bus(journal)
    recovered = [int(m.payload) for m in await bus.consume("events", "g", "c", count=100_000, block_ms=0)]
    await bus.close()

    assert len(recovered) == len(set(recovered))
    assert confirmed <= set(recovered)


async def test_a_journal_serves_one_bus_at_a_time(tmp_path: Path) -> None:
    journal = tmp_path / "bus.sqlite"
    bus = await open_bus(journal)
    with pytest.raises(BusUnavailable, match="in use"):
        await open_bus(journal)
    await bus.close()
    await (await open_bus(journal)).close()
