"""Log bodies: NDJSON with the usual key spellings, JSON arrays, plain lines."""

from __future__ import annotations

import orjson

from vigil.ingest.logs import LogDefaults, parse_json_logs, parse_plain_logs

NOW = 1_800_000_000 * 10**9
DEFAULTS = LogDefaults(host="default-host", service="default-svc", source="src")


def test_ndjson_records_with_aliases_and_attributes() -> None:
    body = b"\n".join(
        orjson.dumps(r)
        for r in [
            {
                "timestamp": "2024-05-01T10:00:00Z",
                "host": "web1",
                "service": "api",
                "level": "ERROR",
                "message": "boom",
                "request_id": "r1",
                "status": 500,
            },
            {
                "@timestamp": 1714557600123,
                "host": {"name": "web2", "os": {"name": "linux"}},
                "msg": "ok",
                "severity": "warn",
                "service": {"name": "billing"},
            },
            {"ts": 1714557600, "log": "third", "lvl": 3, "os": "windows"},
        ]
    )
    records, errors = parse_json_logs(body, DEFAULTS, NOW)
    assert errors == []
    first, second, third = records
    assert (first.time_ns, first.host, first.service, first.level) == (
        1_714_557_600 * 10**9,
        "web1",
        "api",
        "error",
    )
    assert first.attributes == {"request_id": "r1", "status": 500}
    assert first.source == "src"
    assert (second.time_ns, second.host, second.service, second.level) == (
        1_714_557_600_123_000_000,
        "web2",
        "billing",
        "warning",
    )
    assert second.message == "ok"
    assert (third.message, third.level, third.os, third.host, third.service) == (
        "third",
        "error",
        "windows",
        "default-host",
        "default-svc",
    )


def test_bad_lines_are_reported_and_the_rest_kept() -> None:
    body = (
        b'{"message": "a"}\n{oops\n\n{"no_message": 1}\n[1]\n'
        b'{"message": "b", "time": "noon"}\n{"message": "c"}\n'
    )
    records, errors = parse_json_logs(body, DEFAULTS, NOW)
    assert [r.message for r in records] == ["a", "c"]
    assert [(e.line_no, e.message.split(" ")[0]) for e in errors] == [
        (2, "not"),
        (4, "message:"),
        (5, "a"),
        (6, "time:"),
    ]
    assert records[1].time_ns == NOW


def test_json_arrays_and_pretty_printed_objects() -> None:
    records, errors = parse_json_logs(b'[{"message": "a"}, {"message": "b"}, 3]', DEFAULTS, NOW)
    assert [r.message for r in records] == ["a", "b"] and errors[0].line_no == 3
    records, errors = parse_json_logs(b'{\n  "message": "pretty",\n  "level": "info"\n}\n', DEFAULTS, NOW)
    assert errors == [] and records[0].message == "pretty" and records[0].level == "info"


def test_unknown_levels_are_kept_as_attributes_and_messages_can_be_objects() -> None:
    records, _ = parse_json_logs(b'{"message": {"k": 1}, "level": "chatty"}', DEFAULTS, NOW)
    assert records[0].message == '{"k":1}'
    assert records[0].level is None and records[0].attributes["level"] == "chatty"


def test_plain_lines_keep_their_order() -> None:
    records = parse_plain_logs(b"first\r\n\n  \nsecond line\nthird", DEFAULTS, NOW)
    assert [r.message for r in records] == ["first", "second line", "third"]
    assert [r.time_ns for r in records] == [NOW, NOW + 1, NOW + 2]
    assert all(r.host == "default-host" and r.service == "default-svc" for r in records)
