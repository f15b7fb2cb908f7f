"""Log records as they travel from the webhooks and syslog listener to the log stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class LogRecord:
    time_ns: int
    message: str
    host: str | None = None
    service: str | None = None
    level: str | None = None  # normalised: debug, info, notice, warning, error, critical
    source: str | None = None  # the Vigil source (name) it arrived through
    os: str | None = None  # operating system / platform of the host, when known
    facility: str | None = None  # syslog facility, when it came over syslog
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "time_ns": self.time_ns,
            "message": self.message,
            "host": self.host,
            "service": self.service,
            "level": self.level,
            "source": self.source,
            "os": self.os,
            "facility": self.facility,
            "attributes": self.attributes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogRecord:
        return cls(
            time_ns=int(data["time_ns"]),
            message=str(data["message"]),
            host=data.get("host"),
            service=data.get("service"),
            level=data.get("level"),
            source=data.get("source"),
            os=data.get("os"),
            facility=data.get("facility"),
            attributes=dict(data.get("attributes") or {}),
        )


LEVELS = ("debug", "info", "notice", "warning", "error", "critical")
_LEVEL_ALIASES = {
    "trace": "debug", "dbg": "debug", "debug": "debug", "verbose": "debug",
    "info": "info", "information": "info", "informational": "info", "inf": "info",
    "notice": "notice",
    "warn": "warning", "warning": "warning", "wrn": "warning",
    "err": "error", "error": "error", "eror": "error", "severe": "error", "fail": "error",
    "crit": "critical", "critical": "critical", "fatal": "critical", "alert": "critical",
    "emerg": "critical", "emergency": "critical", "panic": "critical",
}


def normalise_level(level: str | int | None) -> str | None:
    """Map the many spellings of a log level (and syslog severities 0-7) to one of LEVELS."""
    if level is None:
        return None
    if isinstance(level, int) or (isinstance(level, str) and level.isdigit()):
        severity = int(level)
        return ("critical", "critical", "critical", "error", "warning", "notice", "info", "debug")[
            min(max(severity, 0), 7)
        ]
    return _LEVEL_ALIASES.get(level.strip().lower())
