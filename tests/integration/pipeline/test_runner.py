"""The worker runner on both buses: ack, retry, dead letters, crash restarts, graceful stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tests.integration.conftest import Api
from vigil.backends import Backends
from vigil.bus.base import Message
from vigil.pipeline.runner import BatchOutcome, PoisonMessage, Runner

TOPIC = "test.runner"


@dataclass
class RecordingStage:
    name: str = "recorder"
    topic: str = TOPIC
    group: str = "recorder"
    batch_size: int = 10
    seen: list[bytes] = field(default_factory=list)
    fail_first: set[bytes] = field(default_factory=set)  # fail these once, then succeed
    poison: set[bytes] = field(default_factory=set)
    crash_times: int = 0  # raise from handle this many times (a "store down" crash)
    delay_s: float = 0.0
    batch_interval_s: float = 0.0
    batches: list[int] = field(default_factory=list)  # size of each batch handled
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        self.started.set()
        self.batches.append(len(messages))
        if self.crash_times > 0:
            self.crash_times -= 1
            raise ConnectionError("store is down")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        outcome = BatchOutcome()
        for message in messages:
            if message.payload in self.poison:
                outcome.failed[message.id] = PoisonMessage("cannot parse")
            elif message.payload in self.fail_first and message.deliveries == 1:
                outcome.failed[message.id] = RuntimeError("transient")
            else:
                self.seen.append(message.payload)
        return outcome


async def _wait_for(predicate: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_messages_are_acked_retried_and_dead_lettered(backends: Backends) -> None:
    stage = RecordingStage(fail_first={b"flaky"}, poison={b"garbage"})
    runner = Runner(backends.bus, [stage], block_ms=100)
    await runner.start()
    try:
        await backends.bus.publish_many(TOPIC, [b"a", b"flaky", b"garbage", b"b"])
        # "flaky" comes back after the visibility timeout (1 s in tests) and then succeeds.
        await _wait_for(lambda: sorted(stage.seen) == [b"a", b"b", b"flaky"])
        stats = await backends.bus.group_stats(TOPIC, stage.group)
        assert stats.lag == 0
        letters = await backends.bus.list_dead_letters()
        assert [(d.payload, d.group) for d in letters] == [(b"garbage", "recorder")]
        assert "cannot parse" in letters[0].reason
    finally:
        await runner.stop()


async def test_crashed_stage_restarts_with_backoff_and_loses_nothing(backends: Backends) -> None:
    stage = RecordingStage(crash_times=2)
    runner = Runner(backends.bus, [stage], block_ms=100, max_backoff_s=1.0)
    await runner.start()
    try:
        await backends.bus.publish(TOPIC, b"survivor")
        await _wait_for(lambda: stage.seen == [b"survivor"], within_s=15)
        assert stage.crash_times == 0
    finally:
        await runner.stop()


async def test_stop_finishes_and_acks_in_flight_work(backends: Backends) -> None:
    stage = RecordingStage(delay_s=0.5)
    runner = Runner(backends.bus, [stage], block_ms=100)
    await runner.start()
    await backends.bus.publish(TOPIC, b"in-flight")
    await asyncio.wait_for(stage.started.wait(), 5)
    await runner.stop()  # while the batch is still being handled
    assert stage.seen == [b"in-flight"]
    stats = await backends.bus.group_stats(TOPIC, stage.group)
    assert (stats.pending, stats.lag) == (0, 0)


async def test_a_batch_interval_takes_a_trickle_in_few_batches_and_stops_promptly(
    backends: Backends,
) -> None:
    stage = RecordingStage(batch_size=1000, batch_interval_s=0.5)
    runner = Runner(backends.bus, [stage], block_ms=100)
    await runner.start()
    sent = [f"m{i}".encode() for i in range(30)]
    try:
        for payload in sent:  # one message every 40 ms: 1.2 s in all
            await backends.bus.publish(TOPIC, payload)
            await asyncio.sleep(0.04)
        await _wait_for(lambda: len(stage.seen) == len(sent))
        assert sorted(stage.seen) == sorted(sent)
        assert len(stage.batches) <= 5  # about one batch per 0.5 s, not one per message
        assert max(stage.batches) > 1
    finally:
        begin = asyncio.get_running_loop().time()
        await runner.stop()
    assert asyncio.get_running_loop().time() - begin < 1.0  # the wait ends with the stop


async def test_dead_letters_are_listed_and_replayed_through_the_api(api: Api) -> None:
    bus = api.backends.bus
    stage = RecordingStage(poison={b"bad"})
    runner = Runner(bus, [stage], block_ms=100)
    await runner.start()
    try:
        await bus.publish(TOPIC, b"bad")
        await _wait_for(lambda: stage.started.is_set())
        letters: list[dict[str, object]] = []

        async def listed() -> bool:
            nonlocal letters
            letters = (await api.client.get("/api/v1/deadletters")).json()
            return bool(letters)

        for _ in range(100):
            if await listed():
                break
            await asyncio.sleep(0.05)
        assert letters and letters[0]["payload_preview"] == "bad" and letters[0]["topic"] == TOPIC
        stage.poison.clear()  # the operator fixed the cause; replay it
        replayed = await api.client.post(f"/api/v1/deadletters/{letters[0]['id']}/replay")
        assert replayed.status_code == 200, replayed.text
        await _wait_for(lambda: stage.seen == [b"bad"])
        assert (await api.client.get("/api/v1/deadletters")).json() == []
        missing = await api.client.post("/api/v1/deadletters/0-0/replay")
        assert missing.status_code == 404
        audit = (await api.client.get("/api/v1/audit", params={"action": "deadletter.replay"})).json()
        assert len(audit["items"]) == 1
    finally:
        await runner.stop()
