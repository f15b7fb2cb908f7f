"""InfluxDB line protocol: parse request bodies into Points, format Points into lines.

The parser follows InfluxDB 1.x's own scanner (``models/points.go``) rule for rule, including
its quirks, so that a body InfluxDB accepts is accepted here with the same values, and a line
InfluxDB rejects is rejected here with InfluxDB's reason. Like InfluxDB, a batch keeps its good
lines: the result carries the points *and* one error per bad line.

Speed matters (Telegraf sends batches of thousands of lines), so a line takes the quickest of
these paths that applies; every path must agree with the last one (the unit tests check that on
generated lines, and the integration tests check the parser against a real InfluxDB 1.6):

* plain lines (no quotes, no backslashes): ``str.split`` on spaces, commas and the first equals
  sign, and the field set decoded by orjson after a rewrite into JSON (see ``_fields_via_json``);
* lines whose quotes are just string field values: the strings are cut out, the rest is plain;
* lines with escapes only in the measurement and tags: a regex finds the unescaped separators;
* everything else: ``_parse_reference``, a character-by-character port of InfluxDB's parsePoint.

Differences from InfluxDB 1.x, on purpose: unsigned integers (``42u``) are accepted as in 2.x/3.x
(stock 1.x rejects them); the v2/v3 precision spellings are accepted; a precision InfluxDB does
not know raises ValueError instead of silently meaning nanoseconds. Rules InfluxDB applies when
storing rather than parsing (a field named ``time`` is dropped, a field's type is fixed) are the
stores' business.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import orjson

from vigil.domain.metrics import FieldValue, Point

__all__ = [
    "LineError",
    "LineProtocolError",
    "ParseResult",
    "format_lines",
    "format_point",
    "parse",
    "parse_series_key",
    "precision_multiplier",
]

_NS_PER = {
    "": 1,
    "n": 1,
    "ns": 1,
    "nanosecond": 1,
    "u": 1_000,
    "us": 1_000,
    "µ": 1_000,  # MICRO SIGN, as InfluxDB's epoch parameter spells it
    "μ": 1_000,  # GREEK SMALL LETTER MU, the same thing typed differently
    "microsecond": 1_000,
    "ms": 1_000_000,
    "millisecond": 1_000_000,
    "s": 1_000_000_000,
    "second": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1
# InfluxDB reserves the two extreme int64 values (models.MinNanoTime / MaxNanoTime).
_MIN_TIME_NS = _INT64_MIN + 2
_MAX_TIME_NS = _INT64_MAX - 1
_TIME_RANGE_MESSAGE = f"time outside range {_MIN_TIME_NS} - {_MAX_TIME_NS}"
_MAX_KEY_BYTES = 65535

_BOOLEANS: dict[str, bool] = {
    "t": True, "T": True, "true": True, "True": True, "TRUE": True,
    "f": False, "F": False, "false": False, "False": False, "FALSE": False,
}  # fmt: skip
_NUMBER_START = "0123456789.-"
_FLOAT_END = "0123456789."
_WHITESPACE = " \t\x00"  # what InfluxDB's skipWhitespace skips

_MEASUREMENT_UNESCAPE = re.compile(r"\\([, ])")
_TAG_UNESCAPE = re.compile(r"\\([, =])")
_FIELD_KEY_UNESCAPE = re.compile(r'\\([, ="])')
_STRING_UNESCAPE = re.compile(r'\\(["\\])')
_SURROGATE = re.compile("[\udc80-\udcff]")
_json_loads = orjson.loads
_NAN = float("nan")


def precision_multiplier(precision: str) -> int:
    """Nanoseconds per unit of a write precision (v1 ``n/ns/u/µ/ms/s/m/h``, v2 ``us``, v3 names)."""
    try:
        return _NS_PER[precision]
    except KeyError:
        known = ", ".join(repr(p) for p in _NS_PER if p)
        raise ValueError(f"unknown precision {precision!r}; expected one of {known}") from None


@dataclass(slots=True, frozen=True)
class LineError:
    """Why one line of a body was rejected. ``line_no`` is 1-based and counts physical lines,
    so it points at the line's first row even when a quoted string spans several."""

    line_no: int
    line: str
    message: str

    def __str__(self) -> str:
        line = self.line if len(self.line) <= 200 else self.line[:200] + "…"
        return f"line {self.line_no}: unable to parse '{line}': {self.message}"


@dataclass(slots=True)
class ParseResult:
    points: list[Point] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)

    def influx_error(self) -> str | None:
        """The ``error`` InfluxDB 1.x's /write answers (with HTTP 400) for this body, or None
        when every line parsed. When some lines parsed, InfluxDB writes them and says so."""
        if not self.errors:
            return None
        reasons = "\n".join(f"unable to parse '{e.line}': {e.message}" for e in self.errors)
        return f"partial write: {reasons} dropped=0" if self.points else reasons


class LineProtocolError(ValueError):
    """A point cannot be written as line protocol (see ``format_point``)."""


class _BadLine(Exception):
    """Internal: the reason a line is rejected (InfluxDB's wording)."""


# --- parsing -----------------------------------------------------------------------------------


def parse(body: str | bytes, precision: str = "ns", default_time_ns: int | None = None) -> ParseResult:
    """Parse a line-protocol body. Lines without a timestamp get ``default_time_ns`` truncated
    to the precision (as InfluxDB does with its clock), or ``time_ns=None`` when it is None."""
    mult = precision_multiplier(precision)
    default_time = None if default_time_ns is None else default_time_ns - default_time_ns % mult
    utf8_errors = False
    if isinstance(body, str):
        text = body
    else:
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            # Keep going: only the lines holding the bad bytes are rejected.
            text = bytes(body).decode("utf-8", "surrogateescape")
            utf8_errors = True

    result = ParseResult()
    points, errors = result.points, result.errors
    if '"' not in text and "\\\n" not in text:
        # Without quoted strings or escaped newlines, every newline ends a line.
        numbered: Iterable[tuple[int, str]] = enumerate(text.split("\n"), 1)
    else:
        numbered = _logical_lines(text)

    for line_no, raw in numbered:
        if not raw:
            continue
        line = raw
        if line[0] in _WHITESPACE:
            line = line.lstrip(_WHITESPACE)
            if not line:
                continue
        if line[0] == "#":
            continue
        try:
            if utf8_errors and _SURROGATE.search(line):
                raise _BadLine("invalid UTF-8")
            if '"' in line or "\\" in line or len(line) > 16_000:
                points.append(_parse_line(line, mult, default_time))
            else:
                try:
                    points.append(_plain_line(line, None, mult, default_time))
                except _NotPlain:
                    points.append(_parse_reference(line, mult, default_time))
        except _BadLine as exc:
            errors.append(LineError(line_no, line, str(exc)))
    return result


class _NotPlain(Exception):
    """Internal: a shortcut does not apply to this line; the reference scanner must decide."""


def _parse_line(line: str, mult: int, default_time: int | None) -> Point:
    """Any line: the quickest path that applies, the reference scanner otherwise."""
    if "\\" not in line and len(line) <= 16_000:
        if '"' not in line:
            try:
                return _plain_line(line, None, mult, default_time)
            except _NotPlain:
                return _parse_reference(line, mult, default_time)
        segments = _string_segments(line, line.find(" "))
        if segments is not None:
            try:
                return _plain_line('"'.join(segments[0::2]), segments[1::2], mult, default_time)
            except (_NotPlain, _BadLine):
                pass  # the reference scanner words the error
        return _parse_reference(line, mult, default_time)
    # Escapes: usually in the measurement or tags (Telegraf escapes spaces there).
    measurement, tags, key_end = _scan_key(line)
    tail = line[key_end + 1 :]
    if tail and "\\" not in tail and tail[0] not in _WHITESPACE and len(line) <= 16_000:
        strings: list[str] | None = None
        if '"' in tail:
            segments = _string_segments(tail, 0)
            if segments is not None:
                tail, strings = '"'.join(segments[0::2]), segments[1::2]
        if strings is not None or '"' not in tail:
            try:
                fields, time_ns = _plain_tail(tail.split(" "), strings, mult, default_time)
                return Point(measurement, fields, tags, time_ns)
            except (_NotPlain, _BadLine):
                pass
    return _parse_reference(line, mult, default_time)


def _string_segments(text: str, fields_start: int) -> list[str] | None:
    """``text.split('"')`` when every quote opens or closes a string field value, i.e. sits
    where InfluxDB's scanner toggles its in-string state (the field block starts at
    ``fields_start``); None when the quoting is anything less simple."""
    segments = text.split('"')
    last = len(segments) - 1
    if last % 2 or fields_start < 0 or len(segments[0]) < fields_start:
        return None
    head = segments[0]
    equals = head.count("=", fields_start)
    commas = head.count(",", fields_start)
    for k in range(1, last, 2):
        before, after = segments[k - 1], segments[k + 1]
        if not before.endswith("=") or equals <= commas:
            return None
        if after:
            if after[0] not in ", ":
                return None
        elif k + 1 != last:
            return None
        equals += after.count("=")
        commas += after.count(",")
    return segments


def _plain_line(line: str, strings: list[str] | None, mult: int, default_time: int | None) -> Point:
    """A line with no quotes and no backslashes (the usual Telegraf line). With ``strings``,
    the line had simple quoted string values, each replaced by a lone ``"`` (their contents
    are in ``strings``, in order)."""
    parts = line.split(" ")
    key = parts[0]
    tags: dict[str, str] = {}
    if "," in key:
        key_parts = key.split(",")
        measurement = key_parts[0]
        if not measurement:
            raise _BadLine("missing measurement")
        for pair in key_parts[1:]:
            tag_key, equals, tag_value = pair.partition("=")
            if not tag_key:
                raise _BadLine("missing tag key")
            if not equals or not tag_value:
                raise _BadLine("missing tag value")
            # InfluxDB allows '=' as the first character of a tag value, nowhere else.
            if tag_value.find("=", 1) >= 0:
                raise _BadLine("invalid tag format")
            tags[tag_key] = tag_value
        if len(tags) != len(key_parts) - 1:
            raise _BadLine("duplicate tags")
    else:
        measurement = key
    del parts[0]
    fields, time_ns = _plain_tail(parts, strings, mult, default_time)
    return Point(measurement, fields, tags, time_ns)


def _plain_tail(
    parts: list[str], strings: list[str] | None, mult: int, default_time: int | None
) -> tuple[dict[str, FieldValue], int | None]:
    """Field set and timestamp of a plain line, already split on spaces."""
    count = len(parts)
    if count == 1:
        fields_text = parts[0]
        stamp = None
    elif count == 2:
        fields_text, stamp = parts
        if not stamp or stamp[0] in _WHITESPACE:
            raise _NotPlain
    else:  # no fields, or runs of whitespace
        raise _NotPlain
    if not fields_text or fields_text[0] in _WHITESPACE:
        raise _NotPlain

    fields = None if strings is not None else _fields_via_json(fields_text)
    if fields is None:
        fields = _plain_fields(fields_text, strings)

    if stamp is None:
        return fields, default_time
    if stamp.isdigit() and stamp.isascii():
        time_ns = int(stamp) * mult
        if time_ns <= _MAX_TIME_NS:
            return fields, time_ns
    return fields, _timestamp(stamp, mult)


def _fields_via_json(text: str) -> dict[str, FieldValue] | None:
    """The field set of a plain line, decoded by orjson after a rewrite into a JSON object;
    None when this shortcut does not apply (the caller then checks field by field).

    ``a=1,b=2i`` becomes ``{"a":1e0,"b":2}``: every value gets an ``e0`` exponent so that bare
    numbers stay floats as in line protocol, and the ``i`` suffix is dropped so integers decode
    as integers. A number JSON accepts in that form is one InfluxDB accepts with the same value;
    anything else (booleans, ``1.``, ``.5``, exponents, unsigned, bad input) fails to decode
    here and goes the slower way. The text has no quotes or backslashes (plain line), so keys
    cannot break out of their JSON strings.
    """
    doc = '{"' + text.replace(",", 'e0,"').replace("=", '":') + "e0}"
    suffixed = text.count("i,")
    if text[-1] == "i":
        suffixed += 1
        doc = doc[:-4] + "}"
    if suffixed:
        doc = doc.replace("ie0,", ",")
    try:
        fields: dict[str, FieldValue] = _json_loads(doc)
    except ValueError:
        return None
    if "" in fields:
        return None
    if suffixed:
        # Each suffixed value must have decoded as an in-range integer (not 1.5 from "1.5i",
        # not true from "truei", not [] from "[]i"; below int64 decodes as a float).
        values = fields.values()
        if list(map(type, values)).count(int) != suffixed:
            return None
        if max(values) > _INT64_MAX:  # type: ignore[operator]
            return None
    return fields


def _plain_fields(text: str, strings: list[str] | None) -> dict[str, FieldValue]:
    """The field set of a plain line, checked field by field."""
    fields: dict[str, FieldValue] = {}
    malformed = False
    string_values = iter(strings or ())
    for pair in text.split(","):
        name, equals, value = pair.partition("=")
        if not equals:
            malformed = True  # InfluxDB reports this after checking every value
            continue
        if not name:
            raise _BadLine("missing field key")
        if not value:
            raise _BadLine("missing field value")
        if value == '"' and strings is not None:
            fields[name] = next(string_values)
        else:
            fields[name] = _number_or_boolean(value)
    if malformed:
        raise _BadLine("invalid field format")
    return fields


def _number_or_boolean(value: str) -> FieldValue:
    """An unquoted field value, validated as InfluxDB's scanNumber/scanBoolean do."""
    first = value[0]
    if first in _NUMBER_START:
        last = value[-1]
        if last == "i" or last == "u":
            return _integer(value, first, last)
        # Python's float() also takes "1_0", " 1", "+1", "inf", non-ASCII digits: rule them out.
        if last in _FLOAT_END and value.isascii() and "_" not in value:
            try:
                number = float(value)
            except ValueError:
                number = _NAN
            if number - number == 0.0:  # not inf or nan, i.e. within float64 range
                return number
        raise _BadLine(_number_error(value))
    boolean = _BOOLEANS.get(value)
    if boolean is None:
        raise _BadLine("invalid number" if first in "Nn" else "invalid boolean")
    return boolean


def _number_error(text: str) -> str:
    """InfluxDB's reason for rejecting a numeric value (scanNumber's checks, in its order)."""
    n = len(text)
    negative = text[0] == "-"
    if negative and n == 1:
        return "invalid number"
    is_int = is_unsigned = decimal = False
    for i in range(1 if negative else 0, n):
        c = text[i]
        if (c == "i" or c == "u") and i > 0 and not (is_int or is_unsigned):
            is_int, is_unsigned = c == "i", c == "u"
            continue
        if c == ".":
            if decimal:
                return "invalid number"
            decimal = True
        if i > 0 and (c == "e" or c == "E"):
            continue
        if (c == "+" or c == "-") and text[i - 1] in "eE":
            continue
        if not ("0" <= c <= "9" or c == "."):
            return "invalid number"
    if is_int or is_unsigned:  # a suffix that is not last (9i10); _integer handles the rest
        return "invalid number"
    if n - decimal - negative == 0:
        return "invalid number"
    return "invalid float"


def _integer(text: str, first: str, last: str) -> int:
    """``-12i`` / ``12u``: digits only, within int64 / uint64."""
    digits = text[:-1]
    unsigned_digits = digits[1:] if first == "-" else digits
    if not (unsigned_digits.isdigit() and unsigned_digits.isascii()):
        raise _BadLine("invalid number")
    value = int(digits)
    if last == "i":
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise _BadLine(
                f'unable to parse integer {digits}: strconv.ParseInt: parsing "{digits}": value out of range'
            )
    elif first == "-":
        raise _BadLine("invalid number")
    elif value > _UINT64_MAX:
        raise _BadLine(
            f'unable to parse unsigned {digits}: strconv.ParseUint: parsing "{digits}": value out of range'
        )
    return value


def _timestamp(text: str, mult: int) -> int:
    digits = text[1:] if text[0] == "-" else text
    if not (digits.isdigit() and digits.isascii()):
        if not digits:
            raise _BadLine(f'strconv.ParseInt: parsing "{text}": invalid syntax')
        raise _BadLine("bad timestamp")
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise _BadLine(f'strconv.ParseInt: parsing "{text}": value out of range')
    value *= mult
    if not _MIN_TIME_NS <= value <= _MAX_TIME_NS:
        raise _BadLine(_TIME_RANGE_MESSAGE)
    return value


_LINE_EVENT = re.compile(r'[\\ =,"\n]')
_KEY_EVENT = re.compile(r"(?<!\\)[, =]")


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Split a body where InfluxDB does: at newlines outside quoted string values."""
    end_of_text = len(text)
    pos = 0
    line_no = 1
    while pos < end_of_text:
        newline = text.find("\n", pos)
        if newline < 0:
            newline = end_of_text
        if text.find("\\", pos, newline) >= 0:
            end = _scan_line_end(text, pos)
        elif text.find('"', pos, newline) < 0:
            end = newline
        elif _string_segments(text[pos:newline], text.find(" ", pos, newline) - pos) is not None:
            end = newline  # balanced string values: the newline is outside them
        else:
            end = _scan_line_end(text, pos)
        yield line_no, text[pos:end]
        line_no += text.count("\n", pos, end) + 1
        pos = end + 1


def _scan_line_end(buf: str, i: int) -> int:
    """InfluxDB's scanLine: a quote opens a string only where a field value starts. Only the
    characters that can change its state are visited."""
    n = len(buf)
    quoted = in_fields = False
    equals = commas = 0
    skip_to = -1
    for event in _LINE_EVENT.finditer(buf, i):
        j = event.start()
        if j < skip_to:
            continue  # the second character of an escape pair
        c = buf[j]
        if c == "\\":
            if j + 2 < n:
                skip_to = j + 2
            continue
        if c == " ":
            in_fields = True
        elif in_fields and not quoted and c == "=":
            equals += 1
        elif in_fields and not quoted and c == ",":
            commas += 1
        elif in_fields and c == '"' and equals > commas:
            quoted = not quoted
        elif c == "\n" and not quoted:
            return j
    return n


def _scan_key(line: str) -> tuple[str, dict[str, str], int]:
    """Measurement and tags, unescaped, and the index of the space that ends them.

    InfluxDB treats a character as escaped when the one before it is a backslash (so ``\\\\,``
    is an escaped comma after a literal backslash); only the escape codes of each element are
    unescaped, other backslashes stay literal. Only unescaped separators are visited."""
    n = len(line)
    if n == 0 or line[0] == ",":
        raise _BadLine("missing measurement")
    events = _KEY_EVENT.finditer(line, 1)
    for event in events:
        c = event.group()
        if c != "=":  # '=' is an ordinary character in a measurement
            break
    else:
        raise _BadLine("missing fields")
    j = event.start()
    measurement = line[:j]
    raw_tags: list[tuple[str, str]] = []
    while c == ",":
        key_start = j + 1
        if key_start >= n or line[key_start] in " ,=":
            raise _BadLine("missing tag key")
        found = next(events, None)
        if found is None or found.group() != "=":
            raise _BadLine("missing tag value")
        j = found.start()
        value_start = j + 1
        if value_start >= n or line[value_start] in ", ":
            raise _BadLine("missing tag value")
        found = next(events, None)
        if found is not None and found.start() == value_start:
            found = next(events, None)  # '=' may start a tag value
        if found is None:
            raise _BadLine("missing fields")
        c = found.group()
        if c == "=":
            raise _BadLine("invalid tag format")
        raw_tags.append((line[key_start:j], line[value_start : found.start()]))
        j = found.start()
    return _key_result(line, measurement, raw_tags, j)


def _key_result(
    line: str, measurement: str, raw_tags: list[tuple[str, str]], end: int
) -> tuple[str, dict[str, str], int]:
    if len({key for key, _ in raw_tags}) != len(raw_tags):
        raise _BadLine("duplicate tags")
    if end > _MAX_KEY_BYTES // 4:
        size = len(line[:end].encode("utf-8", "surrogateescape"))
        if size > _MAX_KEY_BYTES:
            raise _BadLine(f"max key length exceeded: {size} > {_MAX_KEY_BYTES}")
    if "\\" in measurement:
        measurement = _MEASUREMENT_UNESCAPE.sub(r"\1", measurement)
    tags = {
        (_TAG_UNESCAPE.sub(r"\1", k) if "\\" in k else k): (_TAG_UNESCAPE.sub(r"\1", v) if "\\" in v else v)
        for k, v in raw_tags
    }
    return measurement, tags, end


# --- the reference scanner: InfluxDB's parsePoint, character by character ------------------


def _reference_key(line: str) -> tuple[str, dict[str, str], int]:
    """scanKey (scanMeasurement, scanTagsKey, scanTagsValue)."""
    n = len(line)
    if n == 0 or line[0] == ",":
        raise _BadLine("missing measurement")
    i = 0
    while True:
        i += 1
        if i >= n:
            raise _BadLine("missing fields")
        if line[i - 1] == "\\":
            continue
        c = line[i]
        if c == "," or c == " ":
            break
    measurement = line[:i]
    raw_tags: list[tuple[str, str]] = []
    while c == ",":
        i += 1
        key_start = i
        if i >= n or line[i] in " ,=":
            raise _BadLine("missing tag key")
        while True:
            i += 1
            if i >= n:
                raise _BadLine("missing tag value")
            if line[i - 1] == "\\":
                continue
            c = line[i]
            if c == " " or c == ",":
                raise _BadLine("missing tag value")
            if c == "=":
                break
        key = line[key_start:i]
        i += 1
        value_start = i
        if i >= n or line[i] in ", ":
            raise _BadLine("missing tag value")
        while True:
            i += 1
            if i >= n:
                raise _BadLine("missing fields")
            if line[i - 1] == "\\":
                continue
            c = line[i]
            if c == "=":
                raise _BadLine("invalid tag format")
            if c == "," or c == " ":
                break
        raw_tags.append((key, line[value_start:i]))
    return _key_result(line, measurement, raw_tags, i)


def _skip_whitespace(line: str, i: int) -> int:
    n = len(line)
    while i < n and line[i] in _WHITESPACE:
        i += 1
    return i


def _parse_reference(line: str, mult: int, default_time: int | None) -> Point:
    """A port of InfluxDB's parsePoint; the other paths are shortcuts that must agree with it."""
    measurement, tags, key_end = _reference_key(line)
    n = len(line)

    # scanFields: validate the field block and find where it ends.
    start = i = _skip_whitespace(line, key_end)
    quoted = False
    equals = commas = 0
    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n:
            i += 2
            continue
        if c == '"' and equals > commas:
            quoted = not quoted
            i += 1
            continue
        if c == "=" and not quoted:
            equals += 1
            before = line[i - 1]
            if i == start or (before in " ," and line[i - 2] != "\\"):
                raise _BadLine("missing field key")
            if i + 1 >= n or line[i + 1] in ", ":
                raise _BadLine("missing field value")
            if line[i + 1] != '"':
                # scanNumber / scanBoolean: the value runs to the next comma or space.
                value_end = i + 1
                while value_end < n and line[value_end] not in ", ":
                    value_end += 1
                _number_or_boolean(line[i + 1 : value_end])
                i = value_end
                continue
        if not quoted:
            if c == ",":
                commas += 1
            elif c == " ":
                break
        i += 1
    if quoted:
        raise _BadLine("unbalanced quotes")
    if equals == 0 or commas != equals - 1:
        raise _BadLine("invalid field format")
    fields = _field_values(line[start:i])

    # scanTime: an optional integer, then nothing but spaces.
    i = _skip_whitespace(line, i)
    stamp_start = i
    while i < n:
        c = line[i]
        if c == " " or c == "\n":
            break
        if not ("0" <= c <= "9" or (c == "-" and i == stamp_start)):
            raise _BadLine("bad timestamp")
        i += 1
    if i == stamp_start:
        return Point(measurement, fields, tags, default_time)
    time_ns = _timestamp(line[stamp_start:i], mult)
    if line[i:].strip(" "):
        raise _BadLine("point is invalid")
    return Point(measurement, fields, tags, time_ns)


def _field_values(block: str) -> dict[str, FieldValue]:
    """Walk a validated field block as InfluxDB's field iterator does and convert the values."""
    fields: dict[str, FieldValue] = {}
    n = len(block)
    i = 0
    while i < n:
        # The key ends at an '=' not preceded by a backslash (scanTo).
        key_start = i
        while i < n and not (block[i] == "=" and (i == 0 or block[i - 1] != "\\")):
            i += 1
        key = block[key_start:i]
        i += 1
        # The value ends at a comma outside quotes (scanFieldValue).
        value_start = i
        quoted = False
        while i < n:
            c = block[i]
            if c == "\\" and i + 1 < n and block[i + 1] in '"\\':
                i += 2
                continue
            if c == '"':
                quoted = not quoted
            elif c == "," and not quoted:
                break
            i += 1
        text = block[value_start:i]
        i += 1
        if "\\" in key:
            key = _FIELD_KEY_UNESCAPE.sub(r"\1", key)
        if text[:1] == '"':
            inner = text[1:-1]
            fields[key] = _STRING_UNESCAPE.sub(r"\1", inner) if "\\" in inner else inner
        elif text:
            fields[key] = _number_or_boolean(text)
        else:
            raise _BadLine("invalid field format")
    return fields


def parse_series_key(key: str) -> tuple[str, dict[str, str]]:
    """Split an escaped series key (``cpu,host=a\\ b``, as SHOW SERIES returns) into
    measurement and tags."""
    try:
        measurement, tags, _ = _scan_key(key + " ")
    except _BadLine as exc:
        raise ValueError(f"invalid series key {key!r}: {exc}") from None
    return measurement, tags


# --- formatting --------------------------------------------------------------------------------

# Newlines cannot appear in names (they end the line), so they become (escaped) spaces.
_MEASUREMENT_ESCAPE = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\ "})
_TAG_ESCAPE = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\=", "\n": "\\ "})
_FIELD_KEY_ESCAPE = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\=", '"': '\\"', "\n": "\\ "})
_STRING_ESCAPE = str.maketrans({"\\": "\\\\", '"': '\\"'})
_FIELD_KEY_BAD_BACKSLASH = re.compile(r"\\[, =\n]")


def format_point(point: Point, precision: str = "ns") -> str:
    """One point as a line of line protocol (no trailing newline).

    Empty tag keys and values are dropped (InfluxDB cannot store them) and newlines in names
    become spaces. Raises LineProtocolError for what InfluxDB 1.x's parser cannot read back:
    no fields, an empty name, NaN or infinite floats, integers beyond 64 bits, a name ending in
    a backslash (the backslash would escape the separator after it), a measurement starting with
    ``#`` (a comment) or whitespace, a field key with a backslash before ``,``, ``=`` or space.
    """
    measurement = point.measurement
    if not measurement:
        raise LineProtocolError("empty measurement name")
    if measurement[0] in "#\t\x00" or measurement[-1] == "\\":
        raise LineProtocolError(f"measurement {measurement!r} cannot be written as line protocol")
    parts = [measurement.translate(_MEASUREMENT_ESCAPE)]
    if point.tags:
        seen: set[str] = set()
        for key, value in sorted(point.tags.items()):
            if not key or not value:
                continue
            if key[-1] == "\\" or value[-1] == "\\":
                raise LineProtocolError(f"tag {key!r}={value!r} ends in a backslash")
            escaped_key = key.translate(_TAG_ESCAPE)
            if escaped_key in seen:
                raise LineProtocolError(f"tag key {key!r} collides with another once newlines are replaced")
            seen.add(escaped_key)
            parts.append(f",{escaped_key}={value.translate(_TAG_ESCAPE)}")
    if not point.fields:
        raise LineProtocolError(f"point of {measurement!r} has no fields")
    separator = " "
    for name, field_value in point.fields.items():
        if not name or name[-1] == "\\" or ("\\" in name and _FIELD_KEY_BAD_BACKSLASH.search(name)):
            raise LineProtocolError(f"field key {name!r} cannot be written as line protocol")
        if separator == " " and name[0] in "\t\x00":
            raise LineProtocolError(f"field key {name!r} cannot start a field set")
        parts.append(separator)
        parts.append(name.translate(_FIELD_KEY_ESCAPE))
        parts.append("=")
        parts.append(_format_value(name, field_value))
        separator = ","
    if point.time_ns is not None:
        mult = precision_multiplier(precision)
        parts.append(f" {point.time_ns // mult}")
    return "".join(parts)


def _format_value(name: str, value: object) -> str:
    kind = type(value)
    if kind is float:
        if value - value != 0.0:  # type: ignore[operator]
            raise LineProtocolError(f"field {name!r}: {value!r} is not a finite number")
        return repr(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        number: int = value  # type: ignore[assignment]
        if _INT64_MIN <= number <= _INT64_MAX:
            return f"{number}i"
        if 0 <= number <= _UINT64_MAX:
            return f"{number}u"
        raise LineProtocolError(f"field {name!r}: {number} does not fit in 64 bits")
    if kind is str:
        return '"' + value.translate(_STRING_ESCAPE) + '"'  # type: ignore[attr-defined]
    # Subclasses and numpy scalars.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _format_value(name, int(value))
    if isinstance(value, float):
        return _format_value(name, float(value))
    if isinstance(value, str):
        return _format_value(name, str(value))
    try:
        return _format_value(name, operator.index(value))  # type: ignore[arg-type]
    except TypeError:
        pass
    if hasattr(value, "__float__"):
        return _format_value(name, float(value))
    raise LineProtocolError(f"field {name!r}: unsupported value type {kind.__name__}")


def format_lines(points: Iterable[Point], precision: str = "ns") -> str:
    """Points as a line-protocol body, one line each. Raises LineProtocolError on the first
    point that cannot be written (see ``format_point``)."""
    return "\n".join(format_point(point, precision) for point in points)
