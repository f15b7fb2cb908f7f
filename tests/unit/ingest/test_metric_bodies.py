"""Metric bodies: the fast path forwards exactly what the reference parser accepts, the exact
path reports bad lines, and messages stay within their size limits."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.domain import codec
from vigil.domain.metrics import Point
from vigil.ingest import metric_bodies
from vigil.ingest.line_protocol import parse
from vigil.ingest.metric_bodies import is_fast_body, prepare_line_protocol, prepare_points

NOW = 1_700_000_000_123_456_789

TELEGRAF = (
    b"cpu,host=web1,cpu=cpu-total usage_idle=97.5,usage_user=1.2 1700000000000000000\n"
    b"mem,host=web1 used_percent=41.3,available=8123456i 1700000000000000000\n"
)


def test_telegraf_default_body_takes_the_fast_path_unchanged() -> None:
    prepared = prepare_line_protocol(TELEGRAF, "ns", NOW)
    assert prepared.accepted == 2
    assert prepared.errors == []
    assert prepared.points == []
    assert prepared.lp_chunks == [TELEGRAF.decode()]
    [message] = prepared.messages("web-fleet")
    source, points = codec.decode_points(message)
    assert source == "web-fleet"
    assert points == [
        Point(
            "cpu",
            {"usage_idle": 97.5, "usage_user": 1.2},
            {"host": "web1", "cpu": "cpu-total"},
            1_700_000_000_000_000_000,
        ),
        Point(
            "mem", {"used_percent": 41.3, "available": 8123456}, {"host": "web1"}, 1_700_000_000_000_000_000
        ),
    ]


def test_simple_strings_and_booleans_stay_on_the_fast_path() -> None:
    body = b'svc,host=a state="running ok, fine",up=true,n=3u,f=-1.5e3 1\nsvc up=F 2'
    assert is_fast_body(body.decode())
    prepared = prepare_line_protocol(body, "ns", NOW)
    assert prepared.lp_chunks and prepared.accepted == 2


def test_other_precisions_and_missing_timestamps_take_the_exact_path() -> None:
    seconds = prepare_line_protocol(b"cpu,host=a v=1 1700000000", "s", NOW)
    assert seconds.lp_chunks == []
    assert seconds.points[0].time_ns == 1_700_000_000 * 10**9
    no_time = prepare_line_protocol(b"cpu,host=a v=1", "ns", NOW)
    assert no_time.lp_chunks == []
    assert no_time.points[0].time_ns == NOW


def test_escapes_take_the_exact_path_with_the_reference_values() -> None:
    body = rb"disk\ io,host=web\,1 free=12.5,label=" + b'"a \\"q\\""' + b" 1"
    prepared = prepare_line_protocol(body, "ns", NOW)
    assert prepared.lp_chunks == []
    assert prepared.points == parse(body).points
    assert prepared.points[0].tags == {"host": "web,1"}


def test_bad_lines_are_reported_and_good_ones_kept() -> None:
    body = b"cpu v=1 1\ncpu v= 2\ncpu,a=1,a=2 v=3 3\nmem v=4 4\n"
    prepared = prepare_line_protocol(body, "ns", NOW)
    assert prepared.accepted == 2
    assert [(e.line_no, e.message) for e in prepared.errors] == [
        (2, "missing field value"),
        (3, "duplicate tags"),
    ]
    assert [p.measurement for p in prepared.points] == ["cpu", "mem"]


def test_duplicate_tags_never_take_the_fast_path() -> None:
    assert not is_fast_body("m,a=1,b=2,a=3 v=1 1")
    assert is_fast_body("m,a=1,ab=2 v=1 1\nm,ab=1,a=2 v=1 1")


def test_series_keys_checked_once_still_refuse_a_bad_key_later() -> None:
    good = "cpu,host=a,cpu=cpu0 usage=1 1700000000000000000\ncpu,host=b,cpu=cpu0 usage=2 1700000000000000000"
    assert is_fast_body(good) and is_fast_body(good)  # the second time from the checked keys
    assert "cpu,host=a,cpu=cpu0" in metric_bodies._checked_keys
    bad = good + "\ncpu,host=a,host=b usage=3 1700000000000000000"  # a repeated tag key
    assert not is_fast_body(bad)
    assert "cpu,host=a,host=b" not in metric_bodies._checked_keys


def test_invalid_utf8_is_rejected_per_line() -> None:
    prepared = prepare_line_protocol(b"cpu v=1 1\ncpu,h=\xff v=2 2\n", "ns", NOW)
    assert prepared.accepted == 1
    assert prepared.errors[0].line_no == 2


def test_unknown_precision_is_an_error() -> None:
    try:
        prepare_line_protocol(b"cpu v=1 1", "fortnight", NOW)
    except ValueError as exc:
        assert "precision" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_big_bodies_are_split_into_bounded_messages(monkeypatch: object) -> None:
    lines = [f"cpu,host=h{i % 7} v={i} {i}" for i in range(12_345)]
    prepared = prepare_line_protocol("\n".join(lines).encode(), "ns", NOW)
    assert [chunk.count("\n") + 1 for chunk in prepared.lp_chunks] == [5000, 5000, 2345]
    assert "\n".join(prepared.lp_chunks) == "\n".join(lines)
    points = prepare_points([Point("m", {"v": i}, {}, i) for i in range(7_001)])
    assert [len(codec.decode_points(m)[1]) for m in points.messages(None)] == [5000, 2001]


def test_chunks_respect_the_byte_limit() -> None:
    long_line = "cpu,host=" + "h" * 100 + " v=1 1"
    chunks = list(metric_bodies._chunks("\n".join([long_line] * 30_000), 30_000))
    assert all(len(chunk) <= metric_bodies.MAX_BYTES_PER_MESSAGE for chunk in chunks)
    assert sum(chunk.count("\n") + 1 for chunk in chunks) == 30_000


# --- the fast path never accepts what the reference parser rejects ----------------------------

_PIECES = [*list('ab_=, "\\#\t\n-.0123456789eEiuTtFf'), "é", "\x00", "\r"]
# (valid, invalid or odd) choices per element; random tokens now and then.
_MEASUREMENTS = (["cpu", "m", "é", "disk.io"], ["#c", "", "a b", "a,b", "x\\", "a\tb"])
_TAG_KEYS = (["host", "a", "b", "time"], ["", "h=", "a b", "x\x00"])
_TAG_VALUES = (["web1", "x", "=v"], ["", "a,b", 'q"', "a=b"])
_FIELD_KEYS = (["v", "value", "_f"], ["", "a b", "x=y", 'k"'])
_VALUES = (
    ["1", "1.5", "-2i", "3u", "1e5", "true", "T", '"s"', '"a b"', "9223372036854775807i", "1.", '""'],
    ["1e400", "-3u", "nan", '"q\\"', "99999999999999999999i", ".", "-", "+1", "0x1", "1_0", "1e", "tru"],
)
_STAMPS = ([" 1", " -5", " 1700000000000000000", " 01"], ["", " 9223372036854775807", " 1.5", "  1", " 1 "])


def _token(rng: random.Random) -> str:
    return "".join(rng.choice(_PIECES) for _ in range(rng.randrange(0, 6)))


def _pick(rng: random.Random, choices: tuple[list[str], list[str]]) -> str:
    roll = rng.random()
    if roll < 0.85:
        return rng.choice(choices[0])
    return rng.choice(choices[1]) if roll < 0.97 else _token(rng)


def _line(rng: random.Random) -> str:
    """A line that looks like line protocol: often valid, often subtly not."""
    head = _pick(rng, _MEASUREMENTS) + "".join(
        f",{_pick(rng, _TAG_KEYS)}={_pick(rng, _TAG_VALUES)}" for _ in range(rng.randrange(0, 4))
    )
    fields = ",".join(f"{_pick(rng, _FIELD_KEYS)}={_pick(rng, _VALUES)}" for _ in range(rng.randrange(0, 4)))
    return f"{head} {fields}{_pick(rng, _STAMPS)}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32))
def test_fast_path_accepts_only_what_the_parser_accepts_fully(seed: int) -> None:
    rng = random.Random(seed)
    fast = 0
    for _ in range(400):
        lines = [_line(rng) for _ in range(rng.randrange(1, 4))]
        text = "\n".join(lines) + ("\n" if rng.random() < 0.5 else "")
        if not is_fast_body(text):
            continue
        fast += 1
        result = parse(text)
        assert result.errors == [], (text, result.errors)
        assert len(result.points) == len([line for line in text.split("\n") if line])
        assert all(point.time_ns is not None for point in result.points)
    assert fast > 0  # the generator does reach the fast path
