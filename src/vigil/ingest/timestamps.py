"""Timestamps as senders write them, to integer nanoseconds since the epoch (UTC).

Accepted: RFC 3339 / ISO 8601 strings with up to nanosecond fractions (Alertmanager sends nine
digits, which ``datetime`` would cut to six), and epoch numbers in seconds, milliseconds,
microseconds or nanoseconds. Without a declared unit the magnitude decides, as InfluxDB 3's
``precision=auto`` does: any time between 1973 and 5138 reads right in every unit.
"""

from __future__ import annotations

import calendar
import math
import re

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9})\d*)?"
    r"\s*(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "u": 1_000, "ns": 1, "n": 1}


def parse_rfc3339(text: str) -> int:
    """Nanoseconds of an RFC 3339 time; no offset means UTC. ValueError when malformed."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text[:64]!r} is not an RFC 3339 time (e.g. 2024-05-01T10:00:00Z)")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        raise ValueError(f"{text[:64]!r} is not a valid date and time")
    try:
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{text[:64]!r} is not a valid date and time") from exc
    fraction = match.group(7) or ""
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    if match.group(9):
        offset = int(match.group(10)) * 3600 + int(match.group(11)) * 60
        seconds -= offset if match.group(9) == "+" else -offset
    return seconds * 1_000_000_000 + nanos


def epoch_to_ns(value: float, unit: str | None = None) -> int:
    """Nanoseconds of an epoch number in ``unit`` (s, ms, us, ns), or guessed by magnitude."""
    if isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not an epoch time")
    if unit is not None:
        try:
            scale = _UNIT_NS[unit]
        except KeyError:
            raise ValueError(f"unknown time unit {unit!r}; expected s, ms, us or ns") from None
    else:
        magnitude = abs(value)
        if magnitude < 1e11:
            scale = 1_000_000_000
        elif magnitude < 1e14:
            scale = 1_000_000
        elif magnitude < 1e17:
            scale = 1_000
        else:
            scale = 1
    if isinstance(value, int):
        return value * scale
    # Whole and fractional parts apart: 1714557600.25 * 1e9 is not exact in a double.
    whole = int(value)
    return whole * scale + round((value - whole) * scale)


def to_ns(value: object, unit: str | None = None) -> int:
    """Any accepted timestamp (number, digit string or RFC 3339 string) in nanoseconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int | float):
        return epoch_to_ns(value, unit)
    if isinstance(value, str):
        text = value.strip()
        if text and (text.isdigit() or (text[0] == "-" and text[1:].isdigit())):
            return epoch_to_ns(int(text), unit)
        try:
            return epoch_to_ns(float(text), unit)
        except ValueError:
            pass
        return parse_rfc3339(text)
    raise ValueError(f"{type(value).__name__} is not a time; send RFC 3339 text or an epoch number")
