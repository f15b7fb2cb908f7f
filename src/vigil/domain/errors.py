"""Application error events (Sentry and the like) on their way to grouping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class StackFrame:
    filename: str | None = None
    function: str | None = None
    module: str | None = None
    lineno: int | None = None
    in_app: bool | None = None
    context_line: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"filename": self.filename, "function": self.function, "module": self.module,
                "lineno": self.lineno, "in_app": self.in_app, "context_line": self.context_line}


@dataclass(slots=True)
class ErrorEvent:
    event_id: str
    time_ns: int
    project: str  # the Sentry project id or Vigil source name it arrived through
    level: str = "error"
    exception_type: str | None = None
    exception_value: str | None = None
    message: str | None = None
    frames: list[StackFrame] = field(default_factory=list)  # innermost last, as Sentry sends them
    fingerprint: list[str] | None = None  # the SDK's own grouping, when it sent one
    release: str | None = None
    environment: str | None = None
    platform: str | None = None
    host: str | None = None  # server_name
    service: str | None = None
    transaction: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] | None = None  # the original event, kept for the detail view

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "time_ns": self.time_ns, "project": self.project,
            "level": self.level, "exception_type": self.exception_type,
            "exception_value": self.exception_value, "message": self.message,
            "frames": [f.to_dict() for f in self.frames], "fingerprint": self.fingerprint,
            "release": self.release, "environment": self.environment, "platform": self.platform,
            "host": self.host, "service": self.service, "transaction": self.transaction,
            "tags": self.tags, "raw": self.raw,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ErrorEvent:
        return cls(
            event_id=d["event_id"], time_ns=int(d["time_ns"]), project=d["project"],
            level=d.get("level") or "error", exception_type=d.get("exception_type"),
            exception_value=d.get("exception_value"), message=d.get("message"),
            frames=[StackFrame(**f) for f in d.get("frames") or []], fingerprint=d.get("fingerprint"),
            release=d.get("release"), environment=d.get("environment"), platform=d.get("platform"),
            host=d.get("host"), service=d.get("service"), transaction=d.get("transaction"),
            tags=dict(d.get("tags") or {}), raw=d.get("raw"),
        )
