"""JSON columns go through orjson, with the standard library for what orjson refuses: the
stored values must read back as ``json`` would have read them."""

from __future__ import annotations

import json
import math

from vigil.store.db import json_dumps, json_loads


def test_values_round_trip_as_with_the_standard_library() -> None:
    value = {"labels": {"host": "web-1", "zone": "é"}, "counts": [1, 2.5, None, True], "nested": {"a": []}}
    assert json_loads(json_dumps(value)) == json.loads(json.dumps(value)) == value


def test_integer_keys_become_strings_like_json_does() -> None:
    assert json_loads(json_dumps({1: "a", "b": 2})) == json.loads(json.dumps({1: "a", "b": 2}))


def test_what_orjson_cannot_write_or_read_falls_back_to_json() -> None:
    huge = 2**70  # beyond 64 bits: orjson refuses to write it
    assert json_loads(json_dumps({"n": huge})) == {"n": huge}
    assert math.isnan(json_loads('{"x": NaN}')["x"])  # rows written by ``json`` before
    assert json_loads(b'{"x": 1}') == {"x": 1}
