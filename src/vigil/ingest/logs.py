"""Log bodies posted to ``/webhooks/logs``: NDJSON, JSON arrays, and plain text lines.

A JSON record's well-known keys are recognised under the spellings shippers use (``message`` /
``msg`` / ``log``, ``timestamp`` / ``time`` / ``@timestamp`` / ``ts``, ``level`` /
``severity``, ``host`` / ``hostname`` / ``host.name``, ``service`` / ``app`` / ``service.name``,
ECS-style nested objects too); every other key becomes an attribute. Timestamps are RFC 3339
text or epoch numbers in s, ms, us or ns. A bad line is reported with its number and reason
and the good lines are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from vigil.domain.logs import LogRecord, normalise_level
from vigil.ingest.line_protocol import LineError
from vigil.ingest.timestamps import to_ns

MAX_MESSAGE_CHARS = 64 * 1024

_TIME_KEYS = ("timestamp", "@timestamp", "time", "ts", "datetime", "date", "t")
_MESSAGE_KEYS = ("message", "msg", "log", "@message", "text", "body", "short_message")
_LEVEL_KEYS = ("level", "severity", "lvl", "loglevel", "log.level", "levelname", "severity_text", "log_level")
_HOST_KEYS = ("host", "hostname", "host.name", "host.hostname", "server", "node")
_SERVICE_KEYS = ("service", "service.name", "app", "application", "program", "appname", "app_name")
_OS_KEYS = ("os", "host.os", "os.name", "host.os.name", "platform")


class LogBodyError(ValueError):
    """The body as a whole cannot be read as logs."""


@dataclass(frozen=True, slots=True)
class LogDefaults:
    """Values for what a record does not say itself (query parameters, the token's source)."""

    host: str | None = None
    service: str | None = None
    level: str | None = None
    source: str | None = None
    os: str | None = None


def _lookup(record: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    """(key used, value) for the first key present, dotted keys also as nested objects."""
    for key in keys:
        if key in record:
            return key, record[key]
        if "." in key:
            head, _, tail = key.partition(".")
            inner = record.get(head)
            if isinstance(inner, dict) and tail in inner:
                return head, inner[tail]
    return None, None


def _name(value: Any) -> str | None:
    """A host/service/os given as text or as an ECS object with ``name``."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("name") or value.get("hostname")
        if value is None:
            return None
    text = str(value).strip()
    return text[:255] or None


def record_from_json(item: Any, defaults: LogDefaults, now_ns: int) -> LogRecord:
    """A LogRecord from one JSON object; ValueError names the field at fault."""
    if not isinstance(item, dict):
        raise ValueError("a log record must be a JSON object")
    used: set[str] = set()
    key, message = _lookup(item, _MESSAGE_KEYS)
    if key is None or message is None:
        raise ValueError("message: missing (also looked for msg, log, text)")
    used.add(key)
    if not isinstance(message, str):
        message = orjson.dumps(message).decode()
    attributes: dict[str, Any] = {}
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS]
        attributes["truncated"] = True

    key, stamp = _lookup(item, _TIME_KEYS)
    time_ns = now_ns
    if key is not None and stamp is not None:
        used.add(key)
        try:
            time_ns = to_ns(stamp)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None

    key, level_value = _lookup(item, _LEVEL_KEYS)
    level = defaults.level
    if key is not None and level_value is not None:
        used.add(key)
        level = normalise_level(level_value if isinstance(level_value, int | str) else str(level_value))
        if level is None:
            attributes["level"] = level_value

    parts = {}
    for field, keys in (("host", _HOST_KEYS), ("service", _SERVICE_KEYS), ("os", _OS_KEYS)):
        key, value = _lookup(item, keys)
        if key is not None:
            used.add(key)
            name = _name(value)
            if name is None and value is not None:
                attributes[key] = value
            parts[field] = name
    for key, value in item.items():
        if key not in used:
            attributes[key] = value
    return LogRecord(
        time_ns=time_ns,
        message=message,
        host=parts.get("host") or defaults.host,
        service=parts.get("service") or defaults.service,
        level=level,
        source=defaults.source,
        os=parts.get("os") or defaults.os,
        attributes=attributes,
    )


def parse_json_logs(
    body: bytes, defaults: LogDefaults, now_ns: int
) -> tuple[list[LogRecord], list[LineError]]:
    """A JSON array or object of records, or NDJSON (one object per line)."""
    stripped = body.strip()
    if not stripped:
        return [], []
    # One document (an array, or one possibly pretty-printed object) first; NDJSON fails that
    # quickly, right after its first line.
    try:
        document = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, list):
        return _records(enumerate(document, 1), defaults, now_ns)
    if isinstance(document, dict):
        return _records([(1, document)], defaults, now_ns)
    return _ndjson(body, defaults, now_ns)


def _ndjson(body: bytes, defaults: LogDefaults, now_ns: int) -> tuple[list[LogRecord], list[LineError]]:
    records: list[LogRecord] = []
    errors: list[LineError] = []
    for number, raw in enumerate(body.split(b"\n"), 1):
        line = raw.strip()
        if not line:
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            errors.append(LineError(number, _excerpt(line), f"not valid JSON ({exc})"))
            continue
        try:
            records.append(record_from_json(item, defaults, now_ns))
        except ValueError as exc:
            errors.append(LineError(number, _excerpt(line), str(exc)))
    return records, errors


def _records(items: Any, defaults: LogDefaults, now_ns: int) -> tuple[list[LogRecord], list[LineError]]:
    records: list[LogRecord] = []
    errors: list[LineError] = []
    for number, item in items:
        try:
            records.append(record_from_json(item, defaults, now_ns))
        except ValueError as exc:
            errors.append(LineError(number, _excerpt(orjson.dumps(item, default=str)), str(exc)))
    return records, errors


def parse_plain_logs(body: bytes, defaults: LogDefaults, now_ns: int) -> list[LogRecord]:
    """One record per non-empty line; lines get consecutive nanoseconds to keep their order."""
    text = body.decode("utf-8", "replace")
    records = []
    offset = 0
    for line in text.splitlines():
        message = line.rstrip("\r")
        if not message.strip():
            continue
        attributes: dict[str, Any] = {}
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS]
            attributes["truncated"] = True
        records.append(
            LogRecord(
                time_ns=now_ns + offset,
                message=message,
                host=defaults.host,
                service=defaults.service,
                level=defaults.level,
                source=defaults.source,
                os=defaults.os,
                attributes=attributes,
            )
        )
        offset += 1
    return records


def _excerpt(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= 200 else text[:200] + "…"
