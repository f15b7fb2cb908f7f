"""The ThousandEyes collector against the local API v7 (tests/fakes/thousandeyes.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fakes.thousandeyes import FakeThousandEyes
from tests.integration.collectors.helpers import run_collector
from vigil.collectors.base import CollectError, RateLimited

TOKEN = {"token": "te-token"}


def _rounds(te: FakeThousandEyes, test_id: str, count: int, *, http: bool = False) -> list[int]:
    start = int(time.time()) - 600
    rounds = [start + 60 * i for i in range(count)]
    for round_id in rounds:
        te.add_network_round(test_id, round_id, ("12", "Frankfurt"), avgLatency=20 + round_id % 7)
        if http:
            te.add_http_round(test_id, round_id, ("12", "Frankfurt"), responseTime=100)
    return rounds


async def test_results_of_every_page_become_points(thousandeyes_fake: FakeThousandEyes) -> None:
    thousandeyes_fake.add_test("281", "api-prod", "http-server")
    thousandeyes_fake.add_test("282", "dns-prod", "dns-server")  # no network/http layers
    thousandeyes_fake.add_test("283", "paused", "agent-to-server", enabled=False)
    rounds = _rounds(thousandeyes_fake, "281", 5, http=True)
    result = await run_collector("thousandeyes", thousandeyes_fake.url, {"lag_s": 0, "alerts": False}, TOKEN)
    network = sorted(p.time_ns for p in result.points if p.measurement == "thousandeyes_network")
    assert network == [r * 10**9 for r in rounds]
    http_points = [p for p in result.points if p.measurement == "thousandeyes_http"]
    assert len(http_points) == 5 and {p.fields["response_ms"] for p in http_points} == {100.0}
    assert {p.tags["test_name"] for p in result.points} == {"api-prod"}
    # 5 rounds at 2 per page: three pages per layer, following _links.next.
    pages = thousandeyes_fake.calls("/v7/test-results/281/network")
    assert len(pages) == 3 and "cursor" not in pages[0].params and pages[1].params["cursor"]
    assert pages[1].params["startDate"] == pages[0].params["startDate"]
    assert all(r.headers["authorization"] == "Bearer te-token" for r in thousandeyes_fake.requests)


async def test_windows_advance_and_selected_tests_only(thousandeyes_fake: FakeThousandEyes) -> None:
    thousandeyes_fake.add_test("1", "a", "agent-to-server")
    thousandeyes_fake.add_test("2", "b", "agent-to-server")
    _rounds(thousandeyes_fake, "1", 3)
    _rounds(thousandeyes_fake, "2", 3)
    config = {"test_ids": ["2"], "lag_s": 0, "alerts": False}
    first = await run_collector("thousandeyes", thousandeyes_fake.url, config, TOKEN)
    assert {p.tags["test_id"] for p in first.points} == {"2"} and len(first.points) == 3
    # A round at the end of the first window (exclusive) belongs to the next one.
    thousandeyes_fake.add_network_round("2", first.new_state["end"], ("12", "Frankfurt"))
    await asyncio.sleep(1.1)
    second = await run_collector("thousandeyes", thousandeyes_fake.url, config, TOKEN, first.new_state)
    assert [p.time_ns for p in second.points] == [first.new_state["end"] * 10**9]
    with pytest.raises(CollectError, match="no such test 9"):
        await run_collector("thousandeyes", thousandeyes_fake.url, {"test_ids": ["9"]}, TOKEN)


async def test_alerts_trigger_once_and_resolve_when_cleared(thousandeyes_fake: FakeThousandEyes) -> None:
    now = time.time()
    alert = thousandeyes_fake.add_alert("e9c3", state="trigger", start=now - 300, severity="critical")
    first = await run_collector("thousandeyes", thousandeyes_fake.url, {"lag_s": 0}, TOKEN)
    [signal] = first.alert_signals
    assert (signal.fingerprint, signal.severity, signal.resolved) == ("thousandeyes:e9c3", "critical", False)
    await asyncio.sleep(1.1)
    again = await run_collector("thousandeyes", thousandeyes_fake.url, {"lag_s": 0}, TOKEN, first.new_state)
    assert again.alert_signals == []  # still active: not raised twice
    alert.update(alertState="clear", endDate=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    await asyncio.sleep(1.1)
    cleared = await run_collector("thousandeyes", thousandeyes_fake.url, {"lag_s": 0}, TOKEN, again.new_state)
    assert [(s.fingerprint, s.resolved) for s in cleared.alert_signals] == [("thousandeyes:e9c3", True)]
    assert cleared.new_state["active_alerts"] == []


async def test_rate_limit_waits_until_the_reset_epoch(thousandeyes_fake: FakeThousandEyes) -> None:
    thousandeyes_fake.add_test("1", "a", "agent-to-server")
    _rounds(thousandeyes_fake, "1", 1)
    thousandeyes_fake.reset_in_s = 2.0
    thousandeyes_fake.limit_after(1, count=1)  # /tests passes, the first results page is refused
    began = time.monotonic()
    result = await run_collector("thousandeyes", thousandeyes_fake.url, {"lag_s": 0, "alerts": False}, TOKEN)
    assert len(result.points) == 1
    # No Retry-After on a ThousandEyes 429: the reset epoch (1-2 s away) was waited for.
    assert time.monotonic() - began >= 0.9
    assert len(thousandeyes_fake.calls("/v7/test-results/1/network")) == 2


async def test_long_rate_limit_ends_the_poll_with_the_wait(thousandeyes_fake: FakeThousandEyes) -> None:
    thousandeyes_fake.reset_in_s = 45.0
    thousandeyes_fake.limit_after(0, count=1)
    with pytest.raises(RateLimited) as caught:
        await run_collector("thousandeyes", thousandeyes_fake.url, {}, TOKEN)
    assert caught.value.retry_after_s is not None and 40 < caught.value.retry_after_s <= 45


async def test_invalid_token_is_a_clear_error(thousandeyes_fake: FakeThousandEyes) -> None:
    with pytest.raises(CollectError, match=r"401 .*Invalid access token"):
        await run_collector("thousandeyes", thousandeyes_fake.url, {}, {"token": "expired"})
