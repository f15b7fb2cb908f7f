"""Relational models. Importing this package registers every table on ``Base.metadata``."""

from vigil.store.models.alerting import (
    EscalationPolicy,
    FingerprintRule,
    GroupingRule,
    NotificationChannel,
    NotificationDelivery,
    NotificationRoute,
    Silence,
    TimelineEntry,
)
from vigil.store.models.alerts import Alert, Incident
from vigil.store.models.audit import AuditEntry
from vigil.store.models.auth import ApiToken, User, UserSession
from vigil.store.models.base import Base
from vigil.store.models.findings import FindingRecord, MetricDetectorState, PredictionRule
from vigil.store.models.ingest import ErrorEventRecord, ErrorGroup, InventoryEntity
from vigil.store.models.llm import IncidentMemory, LLMUsage, RCAResult
from vigil.store.models.logs import LogLine, LogMinerState, LogProcessedMessage, LogTemplate
from vigil.store.models.sources import Source

__all__ = [
    "Alert",
    "ApiToken",
    "AuditEntry",
    "Base",
    "ErrorEventRecord",
    "ErrorGroup",
    "EscalationPolicy",
    "FindingRecord",
    "FingerprintRule",
    "GroupingRule",
    "Incident",
    "IncidentMemory",
    "InventoryEntity",
    "LLMUsage",
    "LogLine",
    "LogMinerState",
    "LogProcessedMessage",
    "LogTemplate",
    "MetricDetectorState",
    "NotificationChannel",
    "NotificationDelivery",
    "NotificationRoute",
    "PredictionRule",
    "RCAResult",
    "Silence",
    "Source",
    "TimelineEntry",
    "User",
    "UserSession",
]
