"""The collector scheduler on both profiles: publishing, health, backoff, changes, sharing the
work between workers, takeover after a crash, and state that survives a change of worker."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest

from tests.fakes.datadog import FakeDatadog
from tests.integration.collectors.scheduling import Fleet, PollLog, add_source, drain, points_of, wait_for
from tests.services import SnmpAgent
from vigil.backends import Backends
from vigil.domain.metrics import MetricQuery
from vigil.pipeline import topology
from vigil.store.models import Source

KEYS = {"api_key": "dd-api-key", "app_key": "dd-app-key"}


@pytest.fixture
async def fleet(backends: Backends) -> AsyncIterator[Fleet]:
    fleet = Fleet(backends)
    try:
        yield fleet
    finally:
        await fleet.close()


def _query(i: int) -> str:
    return f"avg:app.requests{{shard:s{i}}} by {{host}}"


def _datadog_config(i: int) -> dict[str, object]:
    return {"queries": [_query(i)], "lookback_s": 60, "lag_s": 0}


async def _source_row(backends: Backends, source_id: int) -> Source:
    async with backends.db.session() as session:
        row = await session.get(Source, source_id)
        assert row is not None
        return row


async def test_a_round_publishes_points_durably_and_records_health(
    backends: Backends, fleet: Fleet, datadog_fake: FakeDatadog
) -> None:
    datadog_fake.add_recent_series("app.requests", {"host": "web1", "shard": "s1"}, seconds=60, step=10)
    source_id = await add_source(
        backends, "dd-web", "datadog", datadog_fake.url, _datadog_config(1), KEYS, 30
    )
    scheduler = fleet.start("w1")
    await wait_for(lambda: scheduler.completed_polls >= 1, 10, "one poll")
    await fleet.stop("w1")

    published = points_of(await drain(backends, topology.METRICS))
    assert published and {source for source, _ in published} == {"dd-web"}
    expected = {p.time_ns for p in [pt for _, pt in published]}
    assert len(expected) == len(published) >= 5  # one per 10 s over the last minute
    # What the ingest stage would do with it: into the metric store, and queryable there.
    await backends.metrics.write([p for _, p in published])
    [series] = await backends.metrics.query(
        MetricQuery(
            "datadog.app.requests",
            "value",
            min(expected),
            max(expected) + 1,
            aggregation="count",
            group_by=("host",),
        )
    )
    assert series.tags == {"host": "web1"} and series.values == [len(published)]

    row = await _source_row(backends, source_id)
    assert row.status == "ok" and row.last_success_at is not None and row.last_error is None
    assert row.last_latency_ms is not None and row.last_latency_ms > 0


async def test_failures_are_recorded_and_backed_off(
    backends: Backends, fleet: Fleet, datadog_fake: FakeDatadog
) -> None:
    source_id = await add_source(
        backends,
        "dd-bad",
        "datadog",
        datadog_fake.url,
        _datadog_config(1),
        {**KEYS, "app_key": "revoked"},
        interval_s=1,
    )
    scheduler = fleet.start("w1")
    await wait_for(lambda: any(o.failures >= 2 for o in scheduler.owned.values()), 10, "two failures")
    owned = scheduler.owned[source_id]
    assert owned.last_attempt_at is not None
    # The next try is interval × 2 after this failed one ended.
    assert 2.0 <= owned.next_due - owned.last_attempt_at <= 3.0
    row = await _source_row(backends, source_id)
    assert row.status == "error" and "403" in (row.last_error or "") and "Forbidden" in (row.last_error or "")
    assert row.last_success_at is None
    await asyncio.sleep(1.5)
    # 1 s, then 2 s, then 4 s apart: within ~4.5 s of the first try, at most 3 attempts.
    assert len(datadog_fake.query_calls()) <= 3
    assert await drain(backends, topology.METRICS) == []


async def test_changes_are_noticed_within_seconds(
    backends: Backends, fleet: Fleet, datadog_fake: FakeDatadog
) -> None:
    source_id = await add_source(backends, "dd", "datadog", datadog_fake.url, _datadog_config(1), KEYS, 60)
    scheduler = fleet.start("w1")
    await wait_for(lambda: len(datadog_fake.query_calls(_query(1))) == 1, 10, "first poll")
    async with backends.db.session() as session:
        row = await session.get(Source, source_id)
        assert row is not None
        row.config = _datadog_config(2)
    # A different config is polled at once, without waiting for the 60 s interval.
    await wait_for(lambda: len(datadog_fake.query_calls(_query(2))) == 1, 5, "poll with the new config")
    async with backends.db.session() as session:
        row = await session.get(Source, source_id)
        assert row is not None
        row.enabled = False
    await wait_for(lambda: not scheduler.owned, 5, "the disabled source to be dropped")


async def test_two_workers_share_sources_poll_each_once_per_interval_and_take_over(
    backends: Backends, fleet: Fleet, datadog_fake: FakeDatadog, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls = PollLog()
    polls.install(monkeypatch)
    interval = 2  # leases last 1.5 s (FAST.min_lease_s), so a takeover fits in one interval
    ids = {}
    for i in range(12):
        ids[
            await add_source(
                backends, f"dd-{i}", "datadog", datadog_fake.url, _datadog_config(i), KEYS, interval
            )
        ] = _query(i)
    a, b = fleet.start("worker-a"), fleet.start("worker-b")
    await asyncio.sleep(4.6)

    owned_a, owned_b = set(a.owned), set(b.owned)
    assert owned_a and owned_b and owned_a.isdisjoint(owned_b) and owned_a | owned_b == set(ids)
    for source_id, query in ids.items():
        # Counted at the server: every source polled about once per interval...
        assert 2 <= len(datadog_fake.query_calls(query)) <= 3, (query, len(datadog_fake.query_calls(query)))
        # ... and never twice within one, whichever worker polled it.
        gaps = [later - earlier for earlier, later in itertools.pairwise(polls.completed[source_id])]
        assert min(gaps) >= interval * 0.95, (query, gaps)

    crashed_at = time.time()
    await fleet.crash("worker-a")
    await asyncio.sleep(interval + 1)
    assert set(b.owned) == set(ids)  # b took everything over
    for source_id in owned_a:
        starts = polls.completed[source_id]
        after = [t for t in starts if t > crashed_at]
        assert after, f"source {source_id} was not polled after worker-a died"
        # Taken over within one interval of the crash (plus scheduling slack on a busy machine).
        assert after[0] - crashed_at <= interval + 1.0, (source_id, after[0] - crashed_at)
        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        assert min(gaps) >= interval * 0.95, (source_id, gaps)


async def test_a_poll_cut_short_before_publishing_is_redone_by_the_next_owner(
    backends: Backends, fleet: Fleet, datadog_fake: FakeDatadog
) -> None:
    datadog_fake.add_recent_series("app.requests", {"host": "web1", "shard": "s1"}, seconds=60, step=10)
    # A 2 s interval makes leases last 1.5 s, so worker-b takes over quickly.
    await add_source(backends, "dd", "datadog", datadog_fake.url, _datadog_config(1), KEYS, 2)
    datadog_fake.delay_s = 10  # the first worker's request hangs...
    fleet.start("worker-a")
    await wait_for(lambda: len(datadog_fake.query_calls()) == 1, 10, "worker-a's request")
    await fleet.crash("worker-a")  # ... and the worker dies holding it
    datadog_fake.delay_s = 0
    b = fleet.start("worker-b")
    await wait_for(lambda: b.completed_polls == 1, 10, "worker-b's poll")
    await fleet.stop("worker-b")
    published = await drain(backends, topology.METRICS)
    # Exactly one poll's data: worker-a published nothing, worker-b polled again.
    assert len(published) == 1
    times = [p.time_ns for _, p in points_of(published)]
    assert len(times) == len(set(times)) >= 5


async def test_counter_state_follows_the_source_to_the_next_worker(
    backends: Backends, fleet: Fleet, snmp_agent: SnmpAgent
) -> None:
    source_id = await add_source(
        backends,
        "sw",
        "snmp",
        f"{snmp_agent.host}:{snmp_agent.port}",
        {"storage": False, "cpu": False},
        {"community": snmp_agent.community},
        interval_s=2,
    )
    a = fleet.start("worker-a")
    await wait_for(lambda: a.completed_polls == 1, 10, "worker-a's priming poll")
    await fleet.stop("worker-a")  # hands the source over (state saved after the poll)
    b = fleet.start("worker-b")
    await wait_for(lambda: b.completed_polls == 1, 10, "worker-b's poll")
    interfaces = [
        p for _, p in points_of(await drain(backends, topology.METRICS)) if p.measurement == "snmp_interface"
    ]
    lo = [p for p in interfaces if p.tags["if_name"] == "lo"]
    assert len(lo) == 2
    assert "in_bps" not in lo[0].fields  # worker-a primed the counters
    assert lo[1].fields["in_bps"] >= 0  # worker-b computed a rate from them
    assert (await _source_row(backends, source_id)).status == "ok"
