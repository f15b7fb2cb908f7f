"""What every pull collector is, and the registry of source types.

A collector is stateless: the scheduler hands it the target, its validated config and
credentials, and the state its previous poll left (previous counters, last time window...).
It answers with normalised data and the state for the next poll. Keeping state out of the
collector is what lets any worker continue a source another worker polled before.

Push source types (Telegraf, Sentry, logs, Alertmanager, syslog) are registered too, without a
collector, so the source registry validates them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from vigil.domain.alerts import AlertSignal
from vigil.domain.logs import LogRecord
from vigil.domain.metrics import Point

SourceKind = Literal["pull", "push"]


class CollectError(Exception):
    """A poll failed for a reason worth showing the operator (unreachable, refused, bad answer).

    ``retry_after_s`` is set when the peer said when to come back (rate limits)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(CollectError):
    """The peer asked us to slow down (429 and its vendor-specific headers)."""


@dataclass(slots=True)
class CollectResult:
    points: list[Point] = field(default_factory=list)
    alert_signals: list[AlertSignal] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    new_state: dict[str, Any] = field(default_factory=dict)
    # Parts the peer does not offer (e.g. a BMC without a Power resource): not errors.
    unsupported: list[str] = field(default_factory=list)


class StrictModel(BaseModel):
    """Config and credential models reject unknown keys, so typos are caught at creation."""

    model_config = ConfigDict(extra="forbid")


class NoCredentials(StrictModel):
    pass


class Collector(Protocol):
    name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    credentials_model: ClassVar[type[BaseModel]]

    def check(self, target: str | None, config: Any, credentials: Any) -> str:
        """Validate the combination (raise ValueError naming the field); returns the
        normalised target."""

    async def collect(
        self, target: str, config: Any, credentials: Any, state: dict[str, Any]
    ) -> CollectResult: ...


@dataclass(frozen=True, slots=True)
class SourceType:
    name: str
    kind: SourceKind
    description: str
    config_model: type[BaseModel]
    credentials_model: type[BaseModel]
    collector: Collector | None = None  # pull types only


class PushConfig(BaseModel):
    """Push sources carry free-form settings for their receiver (e.g. default host/service)."""

    model_config = ConfigDict(extra="allow")


class SentryCredentials(StrictModel):
    # Verifies `Sentry-Hook-Signature` on Sentry's integration webhooks.
    client_secret: str | None = None


_PUSH_TYPES: dict[str, tuple[str, type[BaseModel]]] = {
    "telegraf": ("Telegraf outputs.http / InfluxDB write API (line protocol or JSON)", NoCredentials),
    "sentry": ("Sentry SDK DSN and Sentry integration webhooks", SentryCredentials),
    "logs": ("Log lines over HTTP (NDJSON or plain text)", NoCredentials),
    "alertmanager": ("Prometheus Alertmanager webhook receiver", NoCredentials),
    "syslog": ("Syslog (RFC 5424 / RFC 3164) over UDP or TCP", NoCredentials),
}

_REGISTRY: dict[str, SourceType] = {
    name: SourceType(name, "push", description, PushConfig, credentials)
    for name, (description, credentials) in _PUSH_TYPES.items()
}


def register(collector: Collector, description: str) -> Collector:
    _REGISTRY[collector.name] = SourceType(
        collector.name, "pull", description, collector.config_model, collector.credentials_model, collector
    )
    return collector


def _load_builtin() -> None:
    # Importing a collector module registers it.
    from vigil.collectors import datadog, redfish, snmp, splunk, thousandeyes  # noqa: F401


def source_types() -> dict[str, SourceType]:
    if not any(t.kind == "pull" for t in _REGISTRY.values()):
        _load_builtin()
    return dict(_REGISTRY)


def source_type(name: str) -> SourceType | None:
    return source_types().get(name)


def pull_types() -> list[str]:
    return sorted(n for n, t in source_types().items() if t.kind == "pull")
