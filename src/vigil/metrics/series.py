"""Series identity: keys, partitions, and what a series is about (host, service).

A *series* is one field of one measurement with one tag set. Its key reads like the rest of
Vigil's series names (``cpu.usage_user{cpu=cpu-total,host=web-03}``, tags sorted); characters
that would make a key ambiguous (``.`` in a measurement, ``{`` in a field, ``,`` ``=`` ``}`` in
tags, and ``\\`` itself) are escaped with a backslash, so two different series never share a
key. Ordinary names need no escaping and look exactly as above.

A series' *partition* is a stable hash (CRC-32) of its measurement and tag set, written as
InfluxDB writes a series key (``cpu,cpu=cpu-total,host=web-03``): every field of a line lands
in the same partition, and the hash can be taken from the text of a line-protocol line without
parsing its fields.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

# InfluxDB's escaping of measurement names and tag keys/values in a series key.
_LP_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\ "})
_LP_TAG = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\=", "\n": "\\ "})

_KEY_MEASUREMENT = str.maketrans({"\\": "\\\\", ".": "\\.", "{": "\\{"})
_KEY_FIELD = str.maketrans({"\\": "\\\\", "{": "\\{"})
_KEY_TAG = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", "}": "\\}"})

HOST_TAGS = ("host", "hostname", "agent_host", "source_host")
SERVICE_TAGS = ("service", "service_name", "app")


def clean_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Tags as stored: empty keys and values dropped (InfluxDB cannot store them)."""
    return {k: v for k, v in tags.items() if k and v}


def identity(measurement: str, tags: Mapping[str, str]) -> str:
    """The measurement and tag set as InfluxDB's series key (tags sorted, escaped)."""
    parts = [measurement.translate(_LP_MEASUREMENT)]
    for name in sorted(tags):
        value = tags[name]
        if name and value:
            parts.append(f"{name.translate(_LP_TAG)}={value.translate(_LP_TAG)}")
    return ",".join(parts)


def partition_of(ident: str, partitions: int) -> int:
    """Stable across processes and restarts (unlike ``hash``)."""
    return zlib.crc32(ident.encode()) % partitions


def series_key(measurement: str, field: str, tags: Mapping[str, str]) -> str:
    """``measurement.field{tag=value,...}`` with tags sorted and ambiguous characters escaped."""
    key = f"{measurement.translate(_KEY_MEASUREMENT)}.{field.translate(_KEY_FIELD)}"
    pairs = [
        f"{name.translate(_KEY_TAG)}={tags[name].translate(_KEY_TAG)}"
        for name in sorted(tags)
        if name and tags[name]
    ]
    return f"{key}{{{','.join(pairs)}}}" if pairs else key


def parse_series_key(key: str) -> tuple[str, str, dict[str, str]]:
    """The inverse of :func:`series_key`; ValueError naming the problem."""
    measurement, i = _read(key, 0, ".")
    if i >= len(key):
        raise ValueError(f"{key!r}: expected measurement.field")
    field, i = _read(key, i + 1, "{")
    if not measurement or not field:
        raise ValueError(f"{key!r}: measurement and field must not be empty")
    tags: dict[str, str] = {}
    if i < len(key):
        i += 1
        while True:
            name, i = _read(key, i, "=")
            if i >= len(key):
                raise ValueError(f"{key!r}: tags are name=value pairs")
            value, i = _read(key, i + 1, ",}")
            if i >= len(key):
                raise ValueError(f"{key!r}: missing closing brace")
            tags[name] = value
            if key[i] == "}":
                if i != len(key) - 1:
                    raise ValueError(f"{key!r}: text after the closing brace")
                break
            i += 1
    return measurement, field, tags


def _read(text: str, start: int, stops: str) -> tuple[str, int]:
    """Unescape from ``start`` up to the first unescaped character in ``stops``."""
    out: list[str] = []
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if c in stops:
            break
        out.append(c)
        i += 1
    return "".join(out), i


def host_of(tags: Mapping[str, str]) -> str | None:
    for name in HOST_TAGS:
        value = tags.get(name)
        if value:
            return value
    return None


def service_of(tags: Mapping[str, str]) -> str | None:
    for name in SERVICE_TAGS:
        value = tags.get(name)
        if value:
            return value
    return None
