"""The bus contract, run against every implementation (see conftest.py for the kinds)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.bus.helpers import VISIBILITY_MS, BusFactory
from vigil.bus.base import DEAD_LETTER_TOPIC, Bus, BusSaturated, Message

VISIBILITY_S = VISIBILITY_MS / 1000


def payloads(messages: list[Message]) -> list[bytes]:
    return [m.payload for m in messages]


async def test_implements_the_protocol(bus: Bus) -> None:
    assert isinstance(bus, Bus)
    await bus.ping()


async def test_publish_consume_ack(bus: Bus) -> None:
    await bus.ensure_group("events", "stage")
    first = await bus.publish("events", b"one")
    rest = await bus.publish_many("events", [b"two", b"three"])

    messages = await bus.consume("events", "stage", "c1", count=10, block_ms=1000)

    assert payloads(messages) == [b"one", b"two", b"three"]
    assert [m.id for m in messages] == [first, *rest]
    assert all(m.topic == "events" and m.deliveries == 1 for m in messages)
    await bus.ack("events", "stage", [m.id for m in messages])
    stats = await bus.group_stats("events", "stage")
    assert (stats.pending, stats.lag) == (0, 0)
    # Acked messages stay acked past the visibility timeout.
    await asyncio.sleep(VISIBILITY_S * 1.2)
    assert await bus.consume("events", "stage", "c2", block_ms=100) == []


async def test_ids_increase_within_a_topic(bus: Bus) -> None:
    ids = [await bus.publish("events", b"x") for _ in range(5)]
    ids += await bus.publish_many("events", [b"y"] * 5)

    def key(message_id: str) -> tuple[int, int]:
        ms, seq = message_id.split("-")
        return int(ms), int(seq)

    assert [key(i) for i in ids] == sorted({key(i) for i in ids})


async def test_publish_many_of_nothing_publishes_nothing(bus: Bus) -> None:
    await bus.ensure_group("events", "stage")
    assert await bus.publish_many("events", []) == []
    assert (await bus.group_stats("events", "stage")).lag == 0


async def test_a_new_group_starts_at_the_beginning(bus: Bus) -> None:
    await bus.publish_many("events", [b"a", b"b"])
    await bus.ensure_group("events", "late")
    await bus.ensure_group("events", "late")  # idempotent: does not move the group

    assert payloads(await bus.consume("events", "late", "c1", block_ms=100)) == [b"a", b"b"]


async def test_consume_creates_a_missing_group(bus: Bus) -> None:
    await bus.publish("events", b"a")
    assert payloads(await bus.consume("events", "fresh", "c1", block_ms=100)) == [b"a"]


async def test_two_groups_each_see_every_message(bus: Bus) -> None:
    await bus.ensure_group("events", "detect")
    await bus.ensure_group("events", "archive")
    sent = [f"m{i}".encode() for i in range(20)]
    await bus.publish_many("events", sent)

    for group in ("detect", "archive"):
        got = await bus.consume("events", group, "c1", count=100, block_ms=100)
        assert payloads(got) == sent
        await bus.ack("events", group, [m.id for m in got])


async def test_members_of_a_group_split_the_work(bus: Bus) -> None:
    await bus.ensure_group("events", "stage")
    sent = {f"m{i}".encode() for i in range(10)}
    await bus.publish_many("events", sorted(sent))

    first = await bus.consume("events", "stage", "worker-1", count=4, block_ms=100)
    second = await bus.consume("events", "stage", "worker-2", count=100, block_ms=100)
    third = await bus.consume("events", "stage", "worker-3", count=100, block_ms=50)

    assert len(first) == 4 and len(second) == 6 and third == []
    assert set(payloads(first)) | set(payloads(second)) == sent
    assert not set(payloads(first)) & set(payloads(second))
    assert (await bus.group_stats("events", "stage")).consumers >= 2


async def test_unacked_message_is_redelivered_after_the_visibility_timeout(bus: Bus) -> None:
    await bus.ensure_group("events", "stage")
    await bus.publish("events", b"job")
    [held] = await bus.consume("events", "stage", "dies", block_ms=100)
    delivered_at = time.monotonic()

    # Not before the timeout: the holder may still be working on it.
    assert await bus.consume("events", "stage", "survivor", block_ms=50) == []

    [again] = await bus.consume("events", "stage", "survivor", block_ms=3000)
    waited = time.monotonic() - delivered_at

    assert (again.id, again.payload, again.deliveries) == (held.id, b"job", 2)
    assert waited >= VISIBILITY_S * 0.9
    await bus.ack("events", "stage", [again.id])
    stats = await bus.group_stats("events", "stage")
    assert (stats.pending, stats.lag) == (0, 0)


async def test_retry_limit_dead_letters_then_replay_returns_it(make_bus: BusFactory) -> None:
    bus = await make_bus(max_deliveries=2)
    await bus.ensure_group("events", "stage")
    await bus.publish("events", b"poison")
    assert (await bus.consume("events", "stage", "c1", block_ms=100))[0].deliveries == 1
    assert (await bus.consume("events", "stage", "c2", block_ms=3000))[0].deliveries == 2

    # The third delivery would exceed max_deliveries: it goes to the dead letters instead.
    assert await bus.consume("events", "stage", "c3", block_ms=int(VISIBILITY_MS * 2.5)) == []

    [letter] = await bus.list_dead_letters()
    assert (letter.topic, letter.group, letter.payload) == ("events", "stage", b"poison")
    assert letter.deliveries == 2
    assert "deliveries" in letter.reason
    assert abs(letter.dead_at_ms - time.time() * 1000) < 10_000
    assert await bus.dead_letter_count() == 1
    assert await bus.get_dead_letter(letter.id) == letter
    assert (await bus.group_stats("events", "stage")).pending == 0

    new_id = await bus.replay_dead_letter(letter.id)

    assert await bus.list_dead_letters() == []
    assert await bus.dead_letter_count() == 0
    [replayed] = await bus.consume("events", "stage", "c4", block_ms=1000)
    assert (replayed.id, replayed.payload, replayed.deliveries) == (new_id, b"poison", 1)
    with pytest.raises(KeyError):
        await bus.replay_dead_letter(letter.id)


async def test_explicit_dead_letter(bus: Bus) -> None:
    await bus.ensure_group("events", "stage")
    await bus.publish_many("events", [b"fine", b"not json"])
    fine, poison = await bus.consume("events", "stage", "c1", block_ms=100)
    await bus.ack("events", "stage", [fine.id])

    await bus.dead_letter(poison, "stage", "invalid payload: not json")

    [letter] = await bus.list_dead_letters()
    assert (letter.topic, letter.group, letter.payload, letter.reason, letter.deliveries) == (
        "events", "stage", b"not json", "invalid payload: not json", 1)
    assert (await bus.group_stats("events", "stage")).pending == 0
    await asyncio.sleep(VISIBILITY_S * 1.2)
    assert await bus.consume("events", "stage", "c2", block_ms=100) == []


async def test_unknown_dead_letters(bus: Bus) -> None:
    assert await bus.get_dead_letter("123-0") is None
    assert await bus.get_dead_letter("not an id") is None
    with pytest.raises(KeyError):
        await bus.replay_dead_letter("123-0")


async def test_dead_letters_list_oldest_first_up_to_limit(bus: Bus) -> None:
    await bus.ensure_group("events", "stage")
    await bus.publish_many("events", [b"a", b"b", b"c"])
    for message in await bus.consume("events", "stage", "c1", block_ms=100):
        await bus.dead_letter(message, "stage", "bad")

    assert [d.payload for d in await bus.list_dead_letters(limit=2)] == [b"a", b"b"]
    assert await bus.dead_letter_count() == 3


async def test_group_stats_count_lag_and_pending(bus: Bus) -> None:
    await bus.ensure_group("events", "stage")
    await bus.publish_many("events", [b"m"] * 5)
    stats = await bus.group_stats("events", "stage")
    assert (stats.topic, stats.group) == ("events", "stage")
    assert (stats.lag, stats.pending, stats.consumers) == (5, 0, 0)

    taken = await bus.consume("events", "stage", "c1", count=2, block_ms=100)
    stats = await bus.group_stats("events", "stage")
    assert (stats.lag, stats.pending, stats.consumers) == (3, 2, 1)

    await bus.ack("events", "stage", [taken[0].id])
    stats = await bus.group_stats("events", "stage")
    assert (stats.lag, stats.pending) == (3, 1)

    with pytest.raises(KeyError):
        await bus.group_stats("events", "nobody")
    with pytest.raises(KeyError):
        await bus.group_stats("no-such-topic", "stage")


async def test_saturation_refuses_publishing_beyond_the_backlog_limit(make_bus: BusFactory) -> None:
    bus = await make_bus(max_backlog=5)
    await bus.ensure_group("events", "slow")
    await bus.ensure_group("events", "fast")
    await bus.publish_many("events", [b"m"] * 4)
    # The fast group being done does not help: the slowest group counts.
    fast = await bus.consume("events", "fast", "c1", block_ms=100)
    await bus.ack("events", "fast", [m.id for m in fast])
    await bus.publish("events", b"m")

    with pytest.raises(BusSaturated) as refused:
        await bus.publish("events", b"one too many")
    assert (refused.value.topic, refused.value.backlog, refused.value.limit) == ("events", 5, 5)
    with pytest.raises(BusSaturated):
        await bus.publish_many("events", [b"x"])

    # Pending counts too: consumed but unacked is still unprocessed.
    slow = await bus.consume("events", "slow", "c1", count=2, block_ms=100)
    with pytest.raises(BusSaturated):
        await bus.publish("events", b"m")

    await bus.ack("events", "slow", [m.id for m in slow])
    await bus.publish_many("events", [b"m", b"m"])
    with pytest.raises(BusSaturated):
        await bus.publish("events", b"m")


async def test_saturation_without_groups_counts_the_topic_length(make_bus: BusFactory) -> None:
    bus = await make_bus(max_backlog=3)
    await bus.publish_many("nobody-listens", [b"a", b"b", b"c"])
    with pytest.raises(BusSaturated):
        await bus.publish("nobody-listens", b"d")
    await bus.publish("other-topic", b"unaffected")


async def test_broadcast_reaches_every_subscriber_from_subscription_on(bus: Bus) -> None:
    await bus.broadcast("alerts", b"before anyone listened")
    async with bus.subscribe("alerts", "incidents") as both, bus.subscribe("alerts") as alerts_only:
        await bus.broadcast("alerts", b"a1")
        await bus.broadcast("incidents", b"i1")
        await bus.broadcast("other", b"nobody")
        await bus.broadcast("alerts", b"a2")

        got_both = [await asyncio.wait_for(anext(both), 2) for _ in range(3)]
        got_alerts = [await asyncio.wait_for(anext(alerts_only), 2) for _ in range(2)]

    assert got_both == [("alerts", b"a1"), ("incidents", b"i1"), ("alerts", b"a2")]
    assert got_alerts == [("alerts", b"a1"), ("alerts", b"a2")]


async def test_subscription_ends_when_closed(bus: Bus) -> None:
    subscription = bus.subscribe("alerts")
    async with subscription:
        await bus.broadcast("alerts", b"x")
        assert await asyncio.wait_for(anext(subscription), 2) == ("alerts", b"x")
    with pytest.raises(StopAsyncIteration):
        await anext(subscription)


async def test_blocking_consume_wakes_on_publish(bus: Bus) -> None:
    await bus.ensure_group("events", "stage")
    waiting = asyncio.create_task(bus.consume("events", "stage", "c1", block_ms=5000))
    await asyncio.sleep(0.2)
    assert not waiting.done()

    published_at = time.monotonic()
    await bus.publish("events", b"wake up")
    messages = await asyncio.wait_for(waiting, 5)
    latency = time.monotonic() - published_at

    assert payloads(messages) == [b"wake up"]
    assert latency < 0.1


async def test_blocking_consume_gives_up_after_block_ms(bus: Bus) -> None:
    await bus.ensure_group("events", "stage")
    started = time.monotonic()
    assert await bus.consume("events", "stage", "c1", block_ms=300) == []
    assert 0.25 <= time.monotonic() - started < 1.5


async def test_the_dead_letter_topic_is_reserved(bus: Bus) -> None:
    with pytest.raises(ValueError):
        await bus.publish(DEAD_LETTER_TOPIC, b"x")
    with pytest.raises(ValueError):
        await bus.consume(DEAD_LETTER_TOPIC, "g", "c", block_ms=0)


async def test_concurrent_replays_of_one_dead_letter_publish_it_once(bus: Bus) -> None:
    await bus.ensure_group("events", "stage")
    await bus.publish("events", b"poison")
    [message] = await bus.consume("events", "stage", "c1", block_ms=100)
    await bus.dead_letter(message, "stage", "bad")
    [letter] = await bus.list_dead_letters()

    outcomes = await asyncio.gather(
        *(bus.replay_dead_letter(letter.id) for _ in range(3)), return_exceptions=True
    )

    assert sum(isinstance(o, str) for o in outcomes) == 1
    assert sum(isinstance(o, KeyError) for o in outcomes) == 2
    assert payloads(await bus.consume("events", "stage", "c1", block_ms=100)) == [b"poison"]


async def test_dead_lettering_an_acked_message_does_nothing(bus: Bus) -> None:
    await bus.ensure_group("events", "stage")
    await bus.publish("events", b"fine")
    [message] = await bus.consume("events", "stage", "c1", block_ms=100)
    await bus.ack("events", "stage", [message.id])

    await bus.dead_letter(message, "stage", "too late")

    assert await bus.dead_letter_count() == 0
