"""Series keys and partitions: keys read like Vigil's series names, never collide, parse back;
a line's partition from its key text equals the partition of the parsed point."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from vigil.domain.metrics import Point
from vigil.ingest.line_protocol import format_point
from vigil.metrics.partitions import _plain_identity
from vigil.metrics.series import (
    clean_tags,
    host_of,
    identity,
    parse_series_key,
    partition_of,
    series_key,
    service_of,
)

names = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
tag_sets = st.dictionaries(names, names, max_size=4)


def test_ordinary_keys_read_like_series_names() -> None:
    tags = {"host": "web-03", "cpu": "cpu-total"}
    assert series_key("cpu", "usage_user", tags) == "cpu.usage_user{cpu=cpu-total,host=web-03}"
    assert series_key("mem", "used_percent", {}) == "mem.used_percent"
    assert (
        series_key("mem", "used_percent", {"host": "", "": "x"}) == "mem.used_percent"
    )  # dropped, as stored


def test_ambiguous_names_are_escaped_so_keys_never_collide() -> None:
    assert series_key("a.b", "c", {}) != series_key("a", "b.c", {})
    assert series_key("m", "f", {"k": "a,b=c"}) != series_key("m", "f", {"k": "a", "b": "c"})
    assert parse_series_key(series_key("a.b", "c{d", {"k,=}": "v}\\"})) == ("a.b", "c{d", {"k,=}": "v}\\"})


@given(names, names, tag_sets)
def test_keys_parse_back(measurement: str, field: str, tags: dict[str, str]) -> None:
    key = series_key(measurement, field, tags)
    assert parse_series_key(key) == (measurement, field, clean_tags(tags))


def test_bad_keys_are_refused_with_a_reason() -> None:
    for key in ("cpu", ".f", "m.f{host", "m.f{host=a", "m.f{host=a}x"):
        try:
            parse_series_key(key)
        except ValueError as exc:
            assert key in str(exc)
        else:
            raise AssertionError(f"{key!r} accepted")


@given(
    st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True),
        st.from_regex(r"[A-Za-z0-9_./-]{1,8}", fullmatch=True),
        max_size=4,
    ),
    st.randoms(use_true_random=False),
)
def test_partition_from_line_text_matches_the_parsed_point(
    measurement: str, tags: dict[str, str], rnd: random.Random
) -> None:
    items = list(tags.items())
    rnd.shuffle(items)  # senders need not sort tags
    text = ",".join([measurement, *(f"{k}={v}" for k, v in items)])
    assert _plain_identity(text) == identity(measurement, tags)
    assert partition_of(_plain_identity(text) or "", 8) == partition_of(identity(measurement, tags), 8)


def test_escaped_keys_go_the_exact_way() -> None:
    line = format_point(Point("my meas", {"v": 1.0}, {"host": "a b"}, 1))
    key_text = line[: line.index(" ", line.index("a\\ b") + 4)]
    assert _plain_identity(key_text) is None
    assert identity("my meas", {"host": "a b"}) == "my\\ meas,host=a\\ b"


def test_partitions_are_stable_and_spread() -> None:
    idents = [identity("cpu", {"host": f"web-{i}"}) for i in range(400)]
    parts = [partition_of(i, 8) for i in idents]
    assert parts == [partition_of(i, 8) for i in idents]
    assert min(parts.count(p) for p in range(8)) > 25


def test_host_and_service_from_common_tags() -> None:
    assert host_of({"agent_host": "sw-1"}) == "sw-1"
    assert host_of({"host": "a", "hostname": "b"}) == "a"
    assert host_of({"path": "/"}) is None
    assert service_of({"service": "checkout"}) == "checkout"
    assert service_of({"app": "orders"}) == "orders"
