"""Splitting metric messages by series partition, parsing only what a worker needs.

Every detect partition reads every metric message (see ``vigil.pipeline.stages.detect``), so
the cost that matters is what a worker spends on the series it does *not* own. For
line-protocol messages a line's partition comes from the text before its first space (the
measurement and tags), without parsing fields or timestamps; only the lines of wanted
partitions are then parsed, in one ``line_protocol.parse`` call per partition. A line whose
key has escapes, or tags in an order other than sorted, takes the exact route (parse, then
hash the parsed key); both routes give the same partition.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection

import orjson

from vigil.domain import codec
from vigil.domain.metrics import Point
from vigil.ingest.line_protocol import parse as parse_line_protocol
from vigil.metrics.series import clean_tags, identity, partition_of

SeriesPoints = list[tuple[str, Point]]  # (series identity, point), in message order


class UnreadableBatch(Exception):
    """The message is not a metric batch (it can never be processed)."""


_CACHE_LIMIT = 200_000


class PartitionSplitter:
    """Splits messages into ``{partition: [(identity, point), ...]}`` for wanted partitions."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        # line key text -> (identity, partition), or None when the key needs the exact route
        self._keys: dict[str, tuple[str, int] | None] = {}

    def split(self, payload: bytes, wanted: Collection[int]) -> dict[int, SeriesPoints]:
        try:
            batch = codec.decode_metric_batch(payload)
            if batch.line_protocol is not None:
                if not isinstance(batch.line_protocol, str):
                    raise TypeError("lp must be a string")
                return self._split_lines(batch.line_protocol, wanted)
            return self._split_points(batch.points(), wanted)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UnreadableBatch(f"not a metric batch: {type(exc).__name__}: {exc}") from exc

    def _split_points(self, points: list[Point], wanted: Collection[int]) -> dict[int, SeriesPoints]:
        out: dict[int, SeriesPoints] = {}
        for point in points:
            if not isinstance(point.fields, dict):
                raise TypeError("fields must be an object")
            tags = clean_tags(point.tags or {})
            ident = identity(point.measurement, tags)
            partition = partition_of(ident, self.partitions)
            if partition in wanted:
                point.tags = tags
                out.setdefault(partition, []).append((ident, point))
        return out

    def _key(self, text: str) -> tuple[str, int] | None:
        entry = self._keys.get(text, False)
        if entry is False:
            ident = _plain_identity(text)
            entry = None if ident is None else (ident, partition_of(ident, self.partitions))
            if len(self._keys) >= _CACHE_LIMIT:
                self._keys.clear()
            self._keys[text] = entry
        return entry  # type: ignore[return-value]

    def _split_lines(self, text: str, wanted: Collection[int]) -> dict[int, SeriesPoints]:
        lines: dict[int, list[str]] = {}
        idents: dict[int, list[str]] = {}
        exact: list[str] = []
        for line in text.split("\n"):
            if not line or line[0] == "#":
                continue
            space = line.find(" ")
            if space <= 0:
                continue  # not a valid line; the ingest stage reports those
            entry = self._key(line[:space])
            if entry is None:
                exact.append(line)
                continue
            ident, partition = entry
            if partition in wanted:
                lines.setdefault(partition, []).append(line)
                idents.setdefault(partition, []).append(ident)
        out: dict[int, SeriesPoints] = {}
        for partition, group in lines.items():
            result = parse_line_protocol("\n".join(group))
            if not result.errors and len(result.points) == len(group):
                out[partition] = list(zip(idents[partition], result.points, strict=True))
            else:
                exact.extend(group)
        if exact:
            for point in parse_line_protocol("\n".join(exact)).points:
                ident = identity(point.measurement, point.tags)
                partition = partition_of(ident, self.partitions)
                if partition in wanted:
                    out.setdefault(partition, []).append((ident, point))
        return out


def _plain_identity(key: str) -> str | None:
    """The series identity of a line's key text, when it can be read without unescaping:
    no backslashes, every tag exactly ``name=value``, no repeated names. Tags are sorted as
    InfluxDB sorts them. None means "parse the line to know"."""
    if "\\" in key:
        return None
    parts = key.split(",")
    if not parts[0]:
        return None
    if len(parts) == 1:
        return key
    names: list[str] = []
    for part in parts[1:]:
        name, eq, value = part.partition("=")
        if not eq or not name or not value or "=" in value:
            return None
        names.append(name)
    if len(set(names)) != len(names):
        return None
    if all(a < b for a, b in itertools.pairwise(names)):
        return key
    ordered = sorted(zip(names, parts[1:], strict=True))
    return ",".join([parts[0], *(part for _, part in ordered)])
