"""Line protocol: InfluxDB's documented rules and its scanner's behaviour, both directions."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vigil.domain.metrics import Point
from vigil.ingest import line_protocol as lp
from vigil.ingest.line_protocol import (
    LineProtocolError,
    format_lines,
    format_point,
    parse,
    parse_series_key,
    precision_multiplier,
)


def one(line: str, **kwargs: object) -> Point:
    result = parse(line, **kwargs)  # type: ignore[arg-type]
    assert result.errors == [], result.errors
    assert len(result.points) == 1
    return result.points[0]


def error_of(line: str) -> str:
    result = parse(line)
    assert result.points == []
    assert len(result.errors) == 1
    return result.errors[0].message


# --- the documented examples and escapes -------------------------------------------------------


def test_reference_example_with_every_escape() -> None:
    line = (
        "disk\\ io,host=web\\,1,mount\\ point=/var\\ data,opt\\=x=on "
        'free=12.5,label="a \\"quoted\\" \\\\ value",ok=true,n=3i 1700000000000000000'
    )
    point = one(line)
    assert point.measurement == "disk io"
    assert point.tags == {"host": "web,1", "mount point": "/var data", "opt=x": "on"}
    assert point.fields == {"free": 12.5, "label": 'a "quoted" \\ value', "ok": True, "n": 3}
    assert type(point.fields["n"]) is int and type(point.fields["free"]) is float
    assert point.time_ns == 1_700_000_000_000_000_000
    assert format_point(point) == line


@pytest.mark.parametrize(
    ("line", "measurement", "tags", "fields"),
    [
        # measurement: comma and space are escaped; '=' needs no escape there
        ("cpu\\,x\\ y=z v=1", "cpu,x y=z", {}, {"v": 1.0}),
        # tag keys and values: comma, equals, space
        ("m,k\\ 1=v\\,\\=\\ 2 v=1", "m", {"k 1": "v,= 2"}, {"v": 1.0}),
        # field keys: comma, equals, space
        ("m f\\,\\=\\ k=1", "m", {}, {"f,= k": 1.0}),
        # a backslash before anything else is literal
        ("m\\x,t=a\\b f\\q=1", "m\\x", {"t": "a\\b"}, {"f\\q": 1.0}),
        # quotes in names are literal (the docs: "do not quote tag values or field keys")
        ('m,t="a" v=1', "m", {"t": '"a"'}, {"v": 1.0}),
        # a backslash before an escaped separator: InfluxDB looks only at the previous character
        ("m,t=a\\\\,u v=1", "m", {"t": "a\\,u"}, {"v": 1.0}),
        # '=' may start a tag value (InfluxDB's scanner only checks later characters)
        ("m,t==x v=1", "m", {"t": "=x"}, {"v": 1.0}),
    ],
)
def test_escapes_per_element(
    line: str, measurement: str, tags: dict[str, str], fields: dict[str, object]
) -> None:
    point = one(line)
    assert (point.measurement, point.tags, point.fields) == (measurement, tags, fields)


def test_string_fields_hold_spaces_commas_equals_and_newlines() -> None:
    body = 'log msg="a b, c=d\nsecond line \\"q\\" \\\\",n=1i 10\nnext v=2 20\n'
    result = parse(body)
    assert result.errors == []
    first, second = result.points
    assert first.fields == {"msg": 'a b, c=d\nsecond line "q" \\', "n": 1}
    assert first.time_ns == 10
    assert (second.measurement, second.time_ns) == ("next", 20)


def test_line_numbers_count_physical_lines_after_multiline_strings() -> None:
    body = 'a s="x\ny\nz" 1\nbad\nc v=1 2\nd v= 3'
    result = parse(body)
    assert [p.measurement for p in result.points] == ["a", "c"]
    assert [(e.line_no, e.line, e.message) for e in result.errors] == [
        (4, "bad", "missing fields"),
        (6, "d v= 3", "missing field value"),
    ]
    assert str(result.errors[0]) == "line 4: unable to parse 'bad': missing fields"


def test_empty_string_and_string_with_only_escapes() -> None:
    assert one('m a="",b="\\\\\\""').fields == {"a": "", "b": '\\"'}


def test_escaped_backslash_before_newline_joins_lines_like_influxdb() -> None:
    # InfluxDB's line scanner treats backslash + any character as a pair, newline included.
    result = parse("m,t=a\\\nb v=1 5")
    assert len(result.points) == 1 and result.errors == []
    assert result.points[0].tags == {"t": "a\\\nb"}


# --- field types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1.0), ("-1", -1.0), ("1.5", 1.5), ("-1.2e-3", -1.2e-3), ("1E5", 1e5), ("1e+5", 1e5),
        (".5", 0.5), ("5.", 5.0), ("-.5", -0.5), ("01", 1.0), ("1.e5", 1e5), ("-0", -0.0),
        ("42i", 42), ("-42i", -42), ("0i", 0), ("9223372036854775807i", 2**63 - 1),
        ("-9223372036854775808i", -(2**63)), ("42u", 42), ("18446744073709551615u", 2**64 - 1),
        ("t", True), ("T", True), ("true", True), ("True", True), ("TRUE", True),
        ("f", False), ("F", False), ("false", False), ("False", False), ("FALSE", False),
        ('"text"', "text"),
    ],
)  # fmt: skip
def test_field_value_types(text: str, value: object) -> None:
    parsed = one(f"m v={text}").fields["v"]
    assert parsed == value and type(parsed) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, parsed) == math.copysign(1, value)  # type: ignore[arg-type]


def test_integers_stay_integers_and_bare_numbers_are_floats() -> None:
    fields = one("m a=3i,b=3,c=3.0,d=-7i").fields
    assert [type(fields[k]) for k in "abcd"] == [int, float, float, int]


def test_duplicate_field_keys_keep_the_last_value() -> None:
    assert one("m v=1,v=2i").fields == {"v": 2}


# --- rejected lines: InfluxDB's reasons ----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("cpu", "missing fields"),
        ("cpu,host=a", "missing fields"),
        (",host=a v=1", "missing measurement"),
        ("cpu,=a v=1", "missing tag key"),
        ("cpu,host v=1", "missing tag value"),
        ("cpu,host= v=1", "missing tag value"),  # empty tag value
        ("cpu,host=a,host=b v=1", "duplicate tags"),
        ("cpu,host=a=b v=1", "invalid tag format"),
        ("cpu v=", "missing field value"),
        ("cpu v=,w=1", "missing field value"),
        ("cpu =1", "missing field key"),
        ("cpu v=1,=2", "missing field key"),
        ("cpu v=1,w", "invalid field format"),
        ("cpu v", "invalid field format"),
        ("cpu v=1x", "invalid number"),
        ("cpu v=1.2.3", "invalid number"),
        ("cpu v=--1", "invalid number"),
        ("cpu v=1_000", "invalid number"),
        ("cpu v=NaN", "invalid number"),
        ("cpu v=nan", "invalid number"),
        ("cpu v=-inf", "invalid number"),
        ("cpu v=inf", "invalid boolean"),
        ("cpu v=+1", "invalid boolean"),
        ("cpu v=1e", "invalid float"),
        ("cpu v=1e999", "invalid float"),
        ("cpu v=١٢", "invalid boolean"),
        ("cpu v=1١", "invalid number"),
        ("cpu v=1.5i", "invalid number"),
        ("cpu v=1e5i", "invalid number"),
        ("cpu v=9i10", "invalid number"),
        ("cpu v=-1u", "invalid number"),
        ("cpu v=yes", "invalid boolean"),
        ("cpu v=truei", "invalid boolean"),
        ("cpu v=tru", "invalid boolean"),
        (
            "cpu v=9223372036854775808i",
            'unable to parse integer 9223372036854775808: strconv.ParseInt: parsing "9223372036854775808": '
            "value out of range",
        ),
        ('cpu v="unterminated', "unbalanced quotes"),
        ('cpu v="a" 1 2', "point is invalid"),
        ("cpu v=1 12x", "bad timestamp"),
        ("cpu v=1 1.5", "bad timestamp"),
        ("cpu v=1 -", 'strconv.ParseInt: parsing "-": invalid syntax'),
        (
            "cpu v=1 99999999999999999999",
            'strconv.ParseInt: parsing "99999999999999999999": value out of range',
        ),
        ("cpu v=1 9223372036854775807", "time outside range -9223372036854775806 - 9223372036854775806"),
        ("cpu v=1 123\r", "bad timestamp"),  # CRLF bodies are not line protocol
    ],
)
def test_rejections_carry_influxdbs_reason(line: str, message: str) -> None:
    assert error_of(line) == message


def test_a_batch_keeps_its_good_lines() -> None:
    body = "a v=1 1\nb v=x 2\nc v=3i 3\nd,t= v=1 4\ne v=5 5"
    result = parse(body)
    assert [p.measurement for p in result.points] == ["a", "c", "e"]
    assert [(e.line_no, e.message) for e in result.errors] == [
        (2, "invalid boolean"),
        (4, "missing tag value"),
    ]


def test_influxdb_style_error_for_the_http_answer() -> None:
    assert parse("a v=1").influx_error() is None
    assert parse("bad\nworse v=").influx_error() == (
        "unable to parse 'bad': missing fields\nunable to parse 'worse v=': missing field value"
    )
    assert (
        parse("a v=1\nbad").influx_error() == "partial write: unable to parse 'bad': missing fields dropped=0"
    )


def test_comments_blank_lines_and_leading_whitespace_are_skipped() -> None:
    body = "# a comment\n\n   \n\t# indented comment\n  \tcpu v=1 5\n"
    result = parse(body)
    assert result.errors == []
    assert [(p.measurement, p.time_ns) for p in result.points] == [("cpu", 5)]


def test_runs_of_spaces_between_sections_and_after_the_timestamp() -> None:
    assert one("cpu   v=1    7   ").time_ns == 7


def test_invalid_utf8_rejects_only_its_line() -> None:
    body = b"a v=1 1\nb\xff v=2 2\nc v=3 3"
    result = parse(body)
    assert [p.measurement for p in result.points] == ["a", "c"]
    assert [(e.line_no, e.message) for e in result.errors] == [(2, "invalid UTF-8")]


def test_bytes_and_str_bodies_agree() -> None:
    body = 'm,h=é v=1,s="ü x" 5\nm v=2i 6'
    assert parse(body.encode()).points == parse(body).points


def test_max_key_length() -> None:
    assert error_of("m,t=" + "x" * 70_000 + " v=1").startswith("max key length exceeded: 70004 > 65535")


# --- timestamps and precision ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "factor"),
    [
        ("n", 1), ("ns", 1), ("u", 10**3), ("us", 10**3), ("µ", 10**3), ("ms", 10**6),
        ("s", 10**9), ("m", 60 * 10**9), ("h", 3600 * 10**9), ("second", 10**9), ("millisecond", 10**6),
    ],
)  # fmt: skip
def test_precision_converts_to_nanoseconds(precision: str, factor: int) -> None:
    assert precision_multiplier(precision) == factor
    assert one("m v=1 17", precision=precision).time_ns == 17 * factor
    assert one("m v=1 -3", precision=precision).time_ns == -3 * factor


def test_unknown_precision_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="unknown precision 'y'"):
        parse("m v=1", precision="y")


def test_missing_timestamp_uses_the_default_truncated_to_the_precision() -> None:
    assert one("m v=1").time_ns is None
    assert one("m v=1", default_time_ns=1_234_567_891).time_ns == 1_234_567_891
    assert one("m v=1", precision="s", default_time_ns=5_700_000_000).time_ns == 5_000_000_000


def test_timestamp_overflow_after_precision_scaling() -> None:
    result = parse("m v=1 9223372036", precision="s")
    assert result.points[0].time_ns == 9_223_372_036_000_000_000
    assert parse("m v=1 9223372037", precision="s").errors[0].message.startswith("time outside range")


# --- formatting --------------------------------------------------------------------------------


def test_format_drops_empty_tags_sorts_tags_and_replaces_newlines() -> None:
    point = Point("m\nx", {"f\nk": 1.5}, {"z": "1", "": "x", "e": "", "a": "multi\nline"}, 5)
    assert format_point(point) == "m\\ x,a=multi\\ line,z=1 f\\ k=1.5 5"


def test_format_value_types() -> None:
    point = Point("m", {"f": 1.0, "i": -3, "u": 2**63, "b": False, "s": 'q"\\\n', "e": 1e20})
    assert format_point(point) == 'm f=1.0,i=-3i,u=9223372036854775808u,b=false,s="q\\"\\\\\n",e=1e+20'


def test_format_precision_and_lines() -> None:
    points = [Point("a", {"v": 1}, time_ns=5_000_000_000), Point("b", {"v": 2})]
    assert format_lines(points, precision="s") == "a v=1i 5\nb v=2i"


@pytest.mark.parametrize(
    "point",
    [
        Point("", {"v": 1}),
        Point("m", {}),
        Point("#m", {"v": 1}),
        Point("\tm", {"v": 1}),
        Point("m\\", {"v": 1}),
        Point("m", {"v": 1}, {"t": "C:\\"}),
        Point("m", {"v": 1}, {"t\\": "x"}),
        Point("m", {"v\\": 1}),
        Point("m", {"a\\,b": 1}),
        Point("m", {"": 1}),
        Point("m", {"v": float("nan")}),
        Point("m", {"v": float("inf")}),
        Point("m", {"v": 2**64}),
        Point("m", {"v": -(2**63) - 1}),
        Point("m", {"v": [1]}),  # type: ignore[dict-item]
    ],
)
def test_format_refuses_what_influxdb_cannot_read_back(point: Point) -> None:
    with pytest.raises(LineProtocolError):
        format_point(point)


def test_parse_series_key() -> None:
    assert parse_series_key("disk\\ io,host=web\\,1,mount\\ point=/var") == (
        "disk io",
        {"host": "web,1", "mount point": "/var"},
    )
    assert parse_series_key("cpu") == ("cpu", {})


# --- properties ----------------------------------------------------------------------------------

SPECIAL = [*",= \"\\'#\t\n\x00{}[]:", "é", "日", "\U0001f600", "i", "e", "0", "-", "."]
any_char = st.sampled_from(SPECIAL) | st.characters(exclude_categories=["Cs"])  # no lone surrogates
names = st.text(alphabet=any_char, max_size=8)
field_values = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.booleans()
    | st.text(alphabet=any_char, max_size=12)
)
points = st.builds(
    Point,
    measurement=names,
    fields=st.dictionaries(names, field_values, max_size=4),
    tags=st.dictionaries(names, names, max_size=4),
    time_ns=st.none() | st.integers(min_value=lp._MIN_TIME_NS, max_value=lp._MAX_TIME_NS),
)


def unrepresentable(point: Point) -> bool:
    """What format_point documents as impossible in InfluxDB 1.x line protocol."""
    tags = [(k, v) for k, v in point.tags.items() if k and v]
    field_keys = list(point.fields)
    return (
        not point.measurement
        or point.measurement[0] in "#\t\x00"
        or point.measurement.endswith("\\")
        or any(k.endswith("\\") or v.endswith("\\") for k, v in tags)
        or len({k.replace("\n", " ") for k, _ in tags}) != len(tags)
        or not field_keys
        or any(not k or k.endswith("\\") or any(f"\\{c}" in k for c in ", =\n") for k in field_keys)
        or field_keys[0][0] in "\t\x00"
        or any(type(v) is int and not -(2**63) <= v < 2**64 for v in point.fields.values())
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(points, min_size=1, max_size=5))
@example([Point("m", {"k": "x"}, {"t": "a\\ b"}, 1)])
@example([Point("m \\", {"k": 1.5}, {"a": "x\\\n", "b": '"'}, None)])
@example([Point("m", {'a\\"': '"\n', "b": True}, {"a\\ b": "=\\,"}, -5)])
def test_format_then_parse_round_trips(batch: list[Point]) -> None:
    if any(unrepresentable(p) for p in batch):
        bad = next(p for p in batch if unrepresentable(p))
        with pytest.raises(LineProtocolError):
            format_point(bad)
        return
    result = parse(format_lines(batch))
    assert result.errors == []
    expected = [
        Point(
            p.measurement.replace("\n", " "),
            {k.replace("\n", " "): v for k, v in p.fields.items()},
            {k.replace("\n", " "): v.replace("\n", " ") for k, v in p.tags.items() if k and v},
            p.time_ns,
        )
        for p in batch
    ]
    assert result.points == expected
    for got, want in zip(result.points, expected, strict=True):
        assert [type(v) for v in got.fields.values()] == [type(v) for v in want.fields.values()]


# Lines built from the pieces that trip parsers up; every shortcut must agree with the reference
# port of InfluxDB's scanner, in what it accepts, the values, and the reason for a rejection.
TOKENS = [
    "m", "cpu", "a", "é", "k", "x", "\\", "\\ ", "\\,", "\\=", '\\"', "\\\\", ",", "=", " ", "  ", "\t",
    '"', '"s p"', '"a,b=c"', '""', "1", "-1", "1.5", ".5", "5.", "1e5", "1e", "-", "1i", "1.5i", "1u",
    "-1u", "t", "true", "TRUE", "truei", "nan", "inf", "1_0", "[]i", "9223372036854775808i", "01",
    "0x1", "#", "17", "-17", "1x",
]  # fmt: skip
line_strategy = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14).map("".join)
GOOD_VALUES = ["1", "-1.5", "2i", "-3i", "4u", "t", "FALSE", "1e5", ".5", "01", '"a b"', '"x\\"y"', '"\\\\"',
               '"a\nb"', '""', '"c,d=e"', '"tab\tq"']  # fmt: skip
BAD_VALUES = ["1x", "1.5i", "truei", "nan", "1_0", "-", "", '"x"y', '"open', "9223372036854775808i", "[]i"]
structured_lines = st.builds(
    lambda m, tags, fields, ts: m + "".join("," + t for t in tags) + " " + ",".join(fields) + ts,
    st.sampled_from(["m", "cpu\\ x", "a\\,b", "m=1", "é"] * 3 + ["m\\", ",m"]),
    st.lists(
        st.sampled_from(
            ["h=a", "h\\ k=v\\ w", "t==x", "t=a\\\\", "u=\\=", "g=é", "z=1"] * 3 + ["t=", "=x", "t=a=b"]
        ),
        max_size=3,
        unique=True,
    ),
    st.lists(
        st.builds(
            lambda k, v: k + "=" + v,
            st.sampled_from(["v", "w", "f\\ k", "f\\=k", 'f"k', "x\\\\y"] * 3 + ["", "a\\"]),
            st.sampled_from(GOOD_VALUES * 4 + BAD_VALUES),
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["", " 5", " -5", " 5 ", "  5"] * 3 + [" 5x", " 1.5", " 5 6", "\t5", " "]),
)


def reference(line: str) -> Point | str:
    stripped = line.lstrip(" \t\x00")
    try:
        return lp._parse_reference(stripped, 1, None)
    except lp._BadLine as exc:
        return str(exc)


def outcome(line: str) -> Point | str | None:
    result = parse(line)
    if result.points:
        return result.points[0]
    return result.errors[0].message if result.errors else None


@settings(max_examples=400, deadline=None)
@given(line_strategy | structured_lines | structured_lines)
def test_shortcuts_agree_with_the_reference_scanner(line: str) -> None:
    if not line.strip(" \t\x00") or line.lstrip(" \t\x00").startswith("#"):
        return
    if len(list(lp._logical_lines(line))) != 1:
        return  # InfluxDB's line splitter sees several lines here; covered below
    assert outcome(line) == reference(line)


def reference_line_ends(body: str) -> list[str]:
    """InfluxDB's scanLine, character by character."""
    lines = []
    pos = 0
    while pos < len(body):
        i, quoted, in_fields, equals, commas = pos, False, False, 0, 0
        while i < len(body):
            c = body[i]
            if c == "\\" and i + 2 < len(body):
                i += 2
                continue
            if c == " ":
                in_fields = True
            if in_fields:
                if not quoted and c == "=":
                    i, equals = i + 1, equals + 1
                    continue
                if not quoted and c == ",":
                    i, commas = i + 1, commas + 1
                    continue
                if c == '"' and equals > commas:
                    i, quoted = i + 1, not quoted
                    continue
            if c == "\n" and not quoted:
                break
            i += 1
        lines.append(body[pos:i])
        pos = i + 1
    return lines


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*TOKENS, "\n", '"\n', "\n\n", 'v="a\nb"']), max_size=20).map("".join))
def test_body_splits_where_influxdbs_line_scanner_does(body: str) -> None:
    assert [line for _, line in lp._logical_lines(body)] == reference_line_ends(body)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=6),
    st.sampled_from(["{!r}", "{:.17g}", "{:f}", "{:.3f}", "{:.0f}"]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
def test_numbers_decode_to_the_nearest_double_on_every_path(
    values: list[float], form: str, integer: int
) -> None:
    texts = [form.format(v) for v in values]
    fields = ",".join(f"f{i}={t}" for i, t in enumerate(texts)) + f",n={integer}i"
    for line in (f"m {fields} 1", f'm {fields},s="x y" 1', f"m\\ x {fields} 1"):  # plain, quoted, escaped
        parsed = one(line).fields
        assert [parsed[f"f{i}"] for i in range(len(texts))] == [float(t) for t in texts]
        assert parsed["n"] == integer and type(parsed["n"]) is int
