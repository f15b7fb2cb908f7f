"""Metric request bodies → bus messages: validate, normalise to nanoseconds, split.

Every line-protocol body must be checked before it is acknowledged (a bad line is answered
with its number and reason, and never reaches the bus). Parsing a body into Points costs about
18 µs a line, and formatting Points back into line protocol for InfluxDB as much again, which
would make Vigil far slower than writing to InfluxDB directly. So there are two paths:

* the fast path, for what Telegraf sends by default: nanosecond precision, a timestamp on every
  line, no escapes and no quotes other than simple string values. One regular expression checks
  the whole body against a strict subset of the line-protocol grammar, and the text is
  forwarded as it came (``codec.encode_line_protocol``);
* the exact path, for everything else: the reference parser (``line_protocol.parse``) gives the
  points and one error per bad line; the good points travel as ``codec.encode_points``.

The fast path's grammar is deliberately narrower than InfluxDB's (bounded lengths, no escapes,
no odd whitespace, no duplicate tag keys, numbers that cannot overflow), so every body it
accepts is one the reference parser accepts with a timestamp on every line; a unit test checks
that on generated bodies. Anything it does not accept simply takes the exact path. It costs
about a third of a full parse (Python's regular expressions, no Point objects).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from vigil.domain import codec
from vigil.domain.metrics import Point
from vigil.ingest.line_protocol import LineError, parse, precision_multiplier

# A bus message stays below both (see topology's contract: sensible message sizes).
MAX_POINTS_PER_MESSAGE = 5_000
MAX_BYTES_PER_MESSAGE = 1 << 20

_NANOSECONDS = 1

# Characters that never appear unescaped in a fast-path name: separators, quotes, backslash,
# whitespace and control characters (InfluxDB's scanner treats NUL as whitespace).
_NAME_CHAR = r'[^\s,="\\\x00-\x1f\x7f]'
# The body pattern checks each line's shape and its field values; a line's series key
# (measurement and tags, up to the first space) is only required to be free of whitespace,
# quotes and backslashes there, and each *distinct* series key is then checked in detail once
# (a batch repeats a few hundred keys thousands of times).
_LOOSE_KEY = r'(?!#)[^\s"\\\x00-\x1f\x7f]++'
_NAME = rf"{_NAME_CHAR}{{1,128}}"
_SERIES_KEY = re.compile(rf"(?!#){_NAME}(?:,{_NAME}={_NAME}){{0,32}}")
_FIELD_KEY = rf"{_NAME_CHAR}++"
# Numbers that cannot overflow: at most 18 integer digits (int64 and uint64 hold them; longer
# ones take the exact path), two exponent digits. No sign on unsigned integers.
_EXPONENT = r"(?:[eE][-+]?+\d{1,2}+)"
_VALUE = (
    rf"(?:\d{{1,18}}+(?:[iu]|\.\d*+{_EXPONENT}?+|{_EXPONENT})?+"
    rf"|-\d{{1,18}}+(?:i|\.\d*+{_EXPONENT}?+|{_EXPONENT})?+"
    rf"|-?+\.\d++{_EXPONENT}?+"
    r"|[tT](?:rue)?+|TRUE|[fF](?:alse)?+|FALSE"
    r'|"[^"\\\n]{0,4096}+")'
)
_FIELD = rf"{_FIELD_KEY}={_VALUE}"
# Timestamps with at most 18 digits, or 19 starting with 1-8, lie inside InfluxDB's range.
_TIMESTAMP = r"-?+\d{1,18}+|[1-8]\d{18}+"
_LINE = rf"{_LOOSE_KEY} {_FIELD}(?:,{_FIELD})*+ (?:{_TIMESTAMP})"
_FAST_BODY = re.compile(rf"(?:{_LINE}(?:\n|\Z))*+")
# The series key of every line but the first (searching for the newline first is far quicker
# than a MULTILINE ``^``).
_SERIES_KEYS = re.compile(r"\n([^ \n]+)")
_MAX_SERIES_KEY_BYTES = 65535


@dataclass(slots=True)
class PreparedMetrics:
    """What a body holds, ready for the bus: validated line-protocol chunks (fast path) or
    points (exact path), and one error per rejected line."""

    lp_chunks: list[str] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    accepted: int = 0

    def messages(self, source: str | None) -> list[bytes]:
        """Bus payloads, each within MAX_POINTS_PER_MESSAGE and about MAX_BYTES_PER_MESSAGE."""
        out = [codec.encode_line_protocol(chunk, source) for chunk in self.lp_chunks]
        for start in range(0, len(self.points), MAX_POINTS_PER_MESSAGE):
            out.append(codec.encode_points(self.points[start : start + MAX_POINTS_PER_MESSAGE], source))
        return out


# Series keys that passed the detailed check. Agents send the same series every interval, so
# after the first batch only new keys cost a check (bounded: cleared when full).
_checked_keys: set[str] = set()
_CHECKED_KEYS_LIMIT = 100_000


def is_fast_body(text: str) -> bool:
    """True when the fast path's grammar accepts the whole text (see the module docstring)."""
    if _FAST_BODY.fullmatch(text) is None:
        return False
    keys = set(_SERIES_KEYS.findall(text))
    keys.add(text[: text.find(" ")])
    new = keys - _checked_keys
    if not all(_good_series_key(key) for key in new):
        return False
    if len(_checked_keys) + len(new) > _CHECKED_KEYS_LIMIT:
        _checked_keys.clear()
    _checked_keys.update(new)
    return True


def _good_series_key(key: str) -> bool:
    if not key:
        return True  # an empty body
    if _SERIES_KEY.fullmatch(key) is None or len(key.encode()) > _MAX_SERIES_KEY_BYTES:
        return False
    if key.count(",") > 1:
        tags = key.split(",")
        del tags[0]
        return len({tag[: tag.index("=")] for tag in tags}) == len(tags)  # no repeated tag key
    return True


def prepare_line_protocol(body: bytes, precision: str, now_ns: int) -> PreparedMetrics:
    """Validate a line-protocol body. Lines without a timestamp get ``now_ns`` (truncated to the
    precision, as InfluxDB does). Raises ValueError for an unknown precision."""
    multiplier = precision_multiplier(precision)
    if multiplier == _NANOSECONDS:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and is_fast_body(text):
            lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
            return PreparedMetrics(lp_chunks=list(_chunks(text, lines)), accepted=lines)
    result = parse(body, precision, default_time_ns=now_ns)
    return PreparedMetrics(points=result.points, errors=result.errors, accepted=len(result.points))


def prepare_points(points: list[Point], errors: list[LineError] | None = None) -> PreparedMetrics:
    return PreparedMetrics(points=points, errors=errors or [], accepted=len(points))


def _chunks(text: str, lines: int) -> Iterator[str]:
    if not text:
        return
    if lines <= MAX_POINTS_PER_MESSAGE and len(text) <= MAX_BYTES_PER_MESSAGE:
        yield text
        return
    chunk: list[str] = []
    size = 0
    for line in text.split("\n"):
        if not line:
            continue
        if chunk and (len(chunk) >= MAX_POINTS_PER_MESSAGE or size + len(line) > MAX_BYTES_PER_MESSAGE):
            yield "\n".join(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        yield "\n".join(chunk)
