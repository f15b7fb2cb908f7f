"""Turning vendor answers into domain types, and validating source settings."""

from __future__ import annotations

import time

import httpx
import pytest
from pydantic import ValidationError

from vigil.collectors import datadog, http, redfish, splunk, thousandeyes
from vigil.collectors.base import pull_types, source_types


def test_registry_has_every_pull_and_push_type() -> None:
    assert pull_types() == ["datadog", "redfish", "snmp", "splunk", "thousandeyes"]
    push = sorted(name for name, t in source_types().items() if t.kind == "push")
    assert push == ["alertmanager", "logs", "sentry", "syslog", "telegraf"]


def test_retry_after_in_seconds_or_http_date() -> None:
    assert http.retry_after_header(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= (http.retry_after_header(httpx.Response(429, headers={"Retry-After": date})) or 0) <= 31
    assert http.retry_after_header(httpx.Response(429)) is None


# --- Datadog --------------------------------------------------------------------------------------


def test_datadog_series_become_points_in_nanoseconds_without_nulls() -> None:
    body = {
        "status": "ok",
        "series": [
            {
                "metric": "system.cpu.user",
                "tag_set": ["host:web1", "env:prod"],
                "pointlist": [[1700000000000.0, 12.5], [1700000020000.0, None], [1700000040000.0, 13]],
            }
        ],
    }
    points = datadog.series_points(body, None, "datadog.")
    assert [(p.measurement, p.tags, p.fields, p.time_ns) for p in points] == [
        ("datadog.system.cpu.user", {"host": "web1", "env": "prod"}, {"value": 12.5}, 1700000000 * 10**9),
        ("datadog.system.cpu.user", {"host": "web1", "env": "prod"}, {"value": 13.0}, 1700000040 * 10**9),
    ]
    assert datadog.series_points(body, "cpu_user", "x.")[0].measurement == "cpu_user"


def test_datadog_monitor_events_become_alert_signals_and_every_event_a_log() -> None:
    events = [
        {
            "id": 1,
            "title": "[Triggered on {host:web1}] CPU high",
            "text": "cpu > 90",
            "host": "web1",
            "alert_type": "error",
            "date_happened": 1700000000,
        },
        {
            "id": 2,
            "title": "[Recovered on {host:web1}] CPU high",
            "host": "web1",
            "alert_type": "success",
            "date_happened": 1700000300,
        },
        {"id": 3, "title": "Deployed v1.2", "alert_type": "info", "date_happened": 1700000400},
    ]
    logs, signals = datadog.event_records(events)
    assert [r.level for r in logs] == ["error", "info", "info"]
    assert logs[0].time_ns == 1700000000 * 10**9 and logs[0].message.startswith("[Triggered")
    assert [(s.title, s.resolved) for s in signals] == [("CPU high", False), ("CPU high", True)]
    assert signals[0].fingerprint == signals[1].fingerprint == "datadog:monitor:CPU high:web1"


def test_datadog_target_is_a_site_or_a_url_and_queries_are_checked() -> None:
    assert datadog.normalise_target("datadoghq.eu") == "https://api.datadoghq.eu"
    assert datadog.normalise_target("") == "https://api.datadoghq.com"
    assert datadog.normalise_target("http://127.0.0.1:9000/") == "http://127.0.0.1:9000"
    with pytest.raises(ValueError, match="unknown Datadog site"):
        datadog.normalise_target("datadog.example")
    config = datadog.DatadogConfig.model_validate({"queries": ["avg:system.load.1{*} by {host}"]})
    assert config.queries[0].query == "avg:system.load.1{*} by {host}"
    with pytest.raises(ValidationError, match=r"metric\.name"):
        datadog.DatadogConfig.model_validate({"queries": ["select * from cpu"]})


# --- Splunk ---------------------------------------------------------------------------------------


def test_splunk_time_parsing() -> None:
    assert splunk.parse_time("2024-05-01T10:00:00.000+00:00") == 1714557600 * 10**9
    assert splunk.parse_time("2024-05-01T12:00:00.500+02:00") == 1714557600 * 10**9 + 500_000_000
    assert splunk.parse_time("1714557600") == 1714557600 * 10**9
    assert splunk.parse_time("yesterday") is None


def test_splunk_stats_rows_become_points_with_string_fields_as_tags() -> None:
    search = splunk.SplunkSearch(
        name="errors_by_host", search="| stats count avg(ms) by host", output="metrics"
    )
    rows = [{"host": "web1", "count": "42", "avg(ms)": "12.5", "_time": "1714557600"}]
    [point] = splunk.to_points(rows, search, now_ns=1)
    assert point.measurement == "splunk_errors_by_host"
    assert point.tags == {"host": "web1"} and point.fields == {"count": 42.0, "avg(ms)": 12.5}
    assert point.time_ns == 1714557600 * 10**9
    tagged = search.model_copy(update={"tag_fields": ["host", "count"]})
    assert splunk.to_points(rows, tagged, now_ns=1)[0].tags == {"host": "web1", "count": "42"}


def test_splunk_events_become_logs() -> None:
    search = splunk.SplunkSearch(name="app", search="search index=main", level_field="log_level")
    rows = [
        {
            "_time": "2024-05-01T10:00:00.000+00:00",
            "_raw": "ERROR boom",
            "host": "web1",
            "sourcetype": "app",
            "log_level": "ERR",
            "user": "bob",
            "_cd": "1:2",
        },
        {"_time": "2024-05-01T10:00:01.000+00:00", "host": "web1"},  # no message: skipped
    ]
    [record] = splunk.to_logs(rows, search, now_ns=1)
    assert (record.message, record.host, record.service, record.level) == (
        "ERROR boom",
        "web1",
        "app",
        "error",
    )
    assert record.attributes == {"log_level": "ERR", "user": "bob", "splunk_search": "app"}


def test_splunk_searches_must_start_like_splunk_searches() -> None:
    with pytest.raises(ValidationError, match="must start with 'search '"):
        splunk.SplunkSearch(name="x", search="index=main error")
    assert splunk.normalise_target("splunk.example.com:8089") == "https://splunk.example.com:8089"


# --- ThousandEyes ---------------------------------------------------------------------------------


def test_thousandeyes_results_become_points_per_agent_and_round() -> None:
    test = {"testId": "281", "testName": "api-prod", "type": "http-server"}
    rows = [
        {
            "roundId": 1714557480,
            "agent": {"agentId": "12", "agentName": "Frankfurt"},
            "server": "api:443",
            "avgLatency": 21.3,
            "loss": 0.0,
            "jitter": 0.4,
        },
    ]
    [point] = thousandeyes.result_points("thousandeyes_network", thousandeyes.NETWORK_FIELDS, test, rows)
    assert point.time_ns == 1714557480 * 10**9
    assert point.tags == {
        "test_id": "281",
        "test_name": "api-prod",
        "agent_id": "12",
        "agent_name": "Frankfurt",
        "server": "api:443",
    }
    assert point.fields == {"avg_latency_ms": 21.3, "loss_pct": 0.0, "jitter_ms": 0.4}
    http_rows = [{"roundId": 1, "agent": {"agentId": "1"}, "responseCode": 503, "errorType": "HTTP"}]
    [http_point] = thousandeyes.result_points("thousandeyes_http", thousandeyes.HTTP_FIELDS, test, http_rows)
    assert http_point.fields == {"response_code": 503.0, "error": 1, "error_type": "HTTP"}


def test_thousandeyes_alerts_map_severity_and_resolution() -> None:
    alert = {
        "id": "e9c3",
        "alertType": "http-server",
        "alertSeverity": "critical",
        "alertRuleId": "7",
        "startDate": "2024-05-01T09:55:00Z",
        "endDate": "2024-05-01T10:05:00Z",
    }
    firing = thousandeyes.alert_signal(alert, resolved=False)
    assert (firing.severity, firing.fingerprint, firing.resolved) == ("critical", "thousandeyes:e9c3", False)
    assert firing.time_ns == 1714557300 * 10**9
    cleared = thousandeyes.alert_signal(alert, resolved=True)
    assert cleared.resolved and cleared.time_ns == 1714557900 * 10**9


def test_thousandeyes_target_defaults_and_gets_v7() -> None:
    assert thousandeyes.normalise_target("") == "https://api.thousandeyes.com/v7"
    assert thousandeyes.normalise_target("http://127.0.0.1:9/") == "http://127.0.0.1:9/v7"
    assert thousandeyes.iso(1714557600) == "2024-05-01T10:00:00Z"


# --- Redfish --------------------------------------------------------------------------------------


def test_redfish_health_changes_raise_and_resolve_signals() -> None:
    labels = {"/psu/0": "Power supply PSU1", "/sys/1": "System web1"}
    kwargs = {"host": "bmc1", "target": "https://bmc1", "now": 1}
    first = redfish.health_signals({}, {"/psu/0": "Critical", "/sys/1": "OK"}, labels, **kwargs)
    assert [(s.title, s.severity, s.resolved) for s in first] == [
        ("Power supply PSU1 on bmc1 is Critical", "critical", False)
    ]
    same = redfish.health_signals({"/psu/0": "Critical"}, {"/psu/0": "Critical"}, labels, **kwargs)
    assert same == []
    better = redfish.health_signals({"/psu/0": "Critical"}, {"/psu/0": "Warning"}, labels, **kwargs)
    assert [(s.severity, s.resolved) for s in better] == [("medium", False)]
    healed = redfish.health_signals({"/psu/0": "Warning"}, {"/psu/0": "OK"}, labels, **kwargs)
    assert [(s.resolved, s.fingerprint) for s in healed] == [(True, "redfish:https://bmc1:/psu/0")]


def test_redfish_target_normalisation() -> None:
    assert redfish.normalise_target("bmc1") == "https://bmc1"
    assert redfish.normalise_target("https://bmc1:8443/redfish/v1/") == "https://bmc1:8443"
    with pytest.raises(ValueError, match="target"):
        redfish.normalise_target("ftp://bmc1")
