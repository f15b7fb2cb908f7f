"""The Splunk collector against the local Splunk REST API (tests/fakes/splunk.py)."""

from __future__ import annotations

import time

import pytest

from tests.fakes.splunk import FakeSplunk
from tests.integration.collectors.helpers import run_collector
from vigil.collectors.base import CollectError

TOKEN = {"token": "splunk-token"}


def _events(splunk: FakeSplunk, count: int, age_s: float = 300) -> None:
    now = time.time()
    for i in range(count):
        splunk.add_event(now - age_s + i, f"ERROR payment {i} failed", host=f"web{i % 2}", log_level="error")


async def test_search_job_is_polled_until_done_paged_and_deleted(splunk_fake: FakeSplunk) -> None:
    _events(splunk_fake, 5)
    splunk_fake.polls_until_done = 3
    config = {
        "searches": [{"name": "errors", "search": "search index=main ERROR", "level_field": "log_level"}],
        "page_size": 2,
        "job_poll_s": 0.05,
    }
    result = await run_collector("splunk", splunk_fake.url, config, TOKEN)
    assert sorted(r.message for r in result.logs) == [f"ERROR payment {i} failed" for i in range(5)]
    assert {r.level for r in result.logs} == {"error"} and {r.service for r in result.logs} == {"app"}
    [job] = splunk_fake.jobs.values()
    assert job.status_reads == ["QUEUED", "PARSING", "DONE"]
    offsets = [c.params["offset"] for c in splunk_fake.calls(f"/services/search/jobs/{job.sid}/results")]
    assert offsets == ["0", "2", "4"]
    assert job.deleted
    [create] = splunk_fake.calls("/services/search/jobs", "POST")
    assert create.headers["authorization"] == "Bearer splunk-token"


async def test_windows_follow_on_without_overlap(splunk_fake: FakeSplunk) -> None:
    _events(splunk_fake, 3, age_s=200)
    config = {"searches": [{"name": "errors", "search": "search ERROR"}], "lag_s": 30, "job_poll_s": 0.05}
    first = await run_collector("splunk", splunk_fake.url, config, TOKEN)
    assert len(first.logs) == 3
    latest = first.new_state["latest"]["errors"]
    assert abs(latest - (time.time() - 30)) < 5
    splunk_fake.add_event(latest + 1, "ERROR later", host="web1")  # indexed after the first window
    second = await run_collector("splunk", splunk_fake.url, {**config, "lag_s": 0}, TOKEN, first.new_state)
    assert [r.message for r in second.logs] == ["ERROR later"]


async def test_export_streams_final_rows_as_metrics_with_basic_auth(splunk_fake: FakeSplunk) -> None:
    splunk_fake.add_canned(
        "| stats count avg(duration) by host",
        [
            {"host": "web1", "count": 42, "avg(duration)": 12.5},
            {"host": "web2", "count": 7, "avg(duration)": 30},
        ],
    )
    config = {
        "searches": [
            {
                "name": "by_host",
                "search": "| stats count avg(duration) by host",
                "mode": "export",
                "output": "metrics",
                "measurement": "app_requests",
            }
        ]
    }
    result = await run_collector(
        "splunk", splunk_fake.url, config, {"username": "admin", "password": "changeme"}
    )
    # The interim preview row (count 0) is dropped.
    assert sorted(
        (p.measurement, p.tags["host"], p.fields["count"], p.fields["avg(duration)"]) for p in result.points
    ) == [
        ("app_requests", "web1", 42.0, 12.5),
        ("app_requests", "web2", 7.0, 30.0),
    ]
    assert splunk_fake.jobs == {}  # the export endpoint creates no job


async def test_failed_job_and_bad_search_and_bad_auth_are_clear_errors(splunk_fake: FakeSplunk) -> None:
    config = {"searches": [{"name": "x", "search": "search FAILME"}], "job_poll_s": 0.05}
    with pytest.raises(CollectError, match="search 'x' failed"):
        await run_collector("splunk", splunk_fake.url, config, TOKEN)
    assert all(job.deleted for job in splunk_fake.jobs.values())
    with pytest.raises(CollectError, match=r"401 .*call not properly authenticated"):
        await run_collector("splunk", splunk_fake.url, config, {"token": "wrong"})
    with pytest.raises(CollectError, match="Unknown search command"):
        await run_collector(
            "splunk",
            splunk_fake.url,
            {"searches": [{"name": "x", "search": "| nope", "mode": "export"}]},
            TOKEN,
        )


async def test_whole_search_timeout(splunk_fake: FakeSplunk) -> None:
    splunk_fake.polls_until_done = 10_000  # never finishes
    config = {"searches": [{"name": "slow", "search": "search *"}], "timeout_s": 0.5, "job_poll_s": 0.05}
    with pytest.raises(CollectError, match="did not finish within"):
        await run_collector("splunk", splunk_fake.url, config, TOKEN)
