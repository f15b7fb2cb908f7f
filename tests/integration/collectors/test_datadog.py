"""The Datadog collector against the local Datadog API (tests/fakes/datadog.py)."""

from __future__ import annotations

import time

import pytest

from tests.fakes.datadog import FakeDatadog
from tests.integration.collectors.helpers import run_collector
from vigil.collectors.base import CollectError, RateLimited

KEYS = {"api_key": "dd-api-key", "app_key": "dd-app-key"}
QUERY = "avg:system.cpu.user{env:prod} by {host}"


async def test_query_points_grouped_by_host_with_values_as_stored(datadog_fake: FakeDatadog) -> None:
    now = int(time.time())
    datadog_fake.add_series(
        "system.cpu.user", {"host": "web1", "env": "prod"}, [(now - 100, 10.0), (now - 80, None)]
    )
    datadog_fake.add_series("system.cpu.user", {"host": "web2", "env": "prod"}, [(now - 100, 30.0)])
    datadog_fake.add_series("system.cpu.user", {"host": "db1", "env": "staging"}, [(now - 100, 99.0)])
    result = await run_collector("datadog", datadog_fake.url, {"queries": [QUERY]}, KEYS)
    got = sorted((p.measurement, p.tags["host"], p.fields["value"], p.time_ns) for p in result.points)
    # web1's null value is skipped; staging is outside the scope.
    assert got == [
        ("datadog.system.cpu.user", "web1", 10.0, (now - 100) * 10**9),
        ("datadog.system.cpu.user", "web2", 30.0, (now - 100) * 10**9),
    ]
    [call] = datadog_fake.query_calls(QUERY)
    assert call.headers["dd-api-key"] == "dd-api-key" and call.headers["dd-application-key"] == "dd-app-key"
    assert int(call.params["to"]) - int(call.params["from"]) == 600  # lookback_s of the first poll


async def test_next_window_starts_lag_before_the_previous_end(datadog_fake: FakeDatadog) -> None:
    datadog_fake.add_recent_series("system.load.1", {"host": "web1"})
    config = {"queries": [{"query": "avg:system.load.1{*} by {host}", "measurement": "load1"}], "lag_s": 120}
    first = await run_collector("datadog", datadog_fake.url, config, KEYS)
    assert first.points and {p.measurement for p in first.points} == {"load1"}
    second = await run_collector("datadog", datadog_fake.url, config, KEYS, first.new_state)
    calls = datadog_fake.query_calls()
    assert int(calls[1].params["from"]) == first.new_state["metrics_to"] - 120
    # The overlap re-reads the same points, which the metric store simply overwrites.
    first_values = {p.time_ns: p.fields["value"] for p in first.points}
    overlap = {p.time_ns: p.fields["value"] for p in second.points if p.time_ns in first_values}
    assert overlap and all(first_values[t] == v for t, v in overlap.items())


async def test_wrong_keys_answer_403_and_the_error_says_so(datadog_fake: FakeDatadog) -> None:
    with pytest.raises(CollectError, match=r"403 from 127\.0\.0\.1/api/v1/query .*Forbidden"):
        await run_collector("datadog", datadog_fake.url, {"queries": [QUERY]}, {**KEYS, "app_key": "wrong"})


async def test_events_are_paged_until_a_short_page_and_not_repeated(datadog_fake: FakeDatadog) -> None:
    now = int(time.time())
    for i in range(1500):
        datadog_fake.add_event(f"deploy {i}", date_happened=now - 300 + i // 10, host="web1")
    datadog_fake.add_event(
        "[Triggered on {host:web2}] Disk almost full",
        date_happened=now - 5,
        host="web2",
        alert_type="error",
        text="/var at 95%",
    )
    config = {"events": True, "lookback_s": 600, "lag_s": 60}
    first = await run_collector("datadog", datadog_fake.url, config, KEYS)
    assert len(first.logs) == 1501
    assert [c.params["page"] for c in datadog_fake.calls("/api/v1/events")] == ["0", "1"]
    [signal] = first.alert_signals
    assert (signal.title, signal.host, signal.severity) == ("Disk almost full", "web2", "high")
    assert signal.labels["vendor"] == "datadog"
    # The next poll re-reads the last minute, but hands over only what is new.
    datadog_fake.add_event("[Recovered on {host:web2}] Disk almost full", host="web2", alert_type="success")
    second = await run_collector("datadog", datadog_fake.url, config, KEYS, first.new_state)
    assert [r.message.splitlines()[0] for r in second.logs] == ["[Recovered on {host:web2}] Disk almost full"]
    assert [s.resolved for s in second.alert_signals] == [True]


async def test_short_rate_limit_is_waited_out_and_long_one_ends_the_poll(datadog_fake: FakeDatadog) -> None:
    datadog_fake.add_recent_series("system.cpu.user", {"host": "web1", "env": "prod"})
    datadog_fake.rate_limit, datadog_fake.rate_period_s = 1, 1
    config = {"queries": [QUERY, "avg:system.cpu.user{*}"]}
    result = await run_collector("datadog", datadog_fake.url, config, KEYS)
    assert result.points
    statuses = len(datadog_fake.query_calls())
    assert statuses == 3  # the second query hit 429, waited for X-RateLimit-Reset, and retried

    datadog_fake.rate_limit, datadog_fake.rate_period_s = 1, 3600
    datadog_fake._period_start = time.time()  # a fresh hour, already used up below
    datadog_fake._period_count = 1
    with pytest.raises(RateLimited) as caught:
        await run_collector("datadog", datadog_fake.url, {"queries": [QUERY]}, KEYS)
    assert caught.value.retry_after_s is not None and 3500 < caught.value.retry_after_s <= 3600
    assert "Rate limit of" in str(caught.value)
