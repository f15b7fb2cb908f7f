"""Vigil observes itself: structured logs and Prometheus metrics.

An ops tool must be observable by ops tools, so every process exposes the same metric names;
``/metrics`` on the API adds bus backlog and lag, read live from the bus at scrape time.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUEST_SECONDS = Histogram(
    "vigil_http_request_duration_seconds",
    "HTTP request latency by method, route template and status class.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
STAGE_MESSAGES = Counter(
    "vigil_stage_messages_total",
    "Messages handled by each pipeline stage, by outcome (processed, failed, dead_lettered).",
    ["stage", "outcome"],
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "vigil_stage_batch_duration_seconds",
    "Time each pipeline stage spends on one batch of messages.",
    ["stage"],
    registry=REGISTRY,
)
STAGE_RESTARTS = Counter(
    "vigil_stage_restarts_total", "Pipeline stages restarted after a crash.", ["stage"], registry=REGISTRY
)
BUS_PENDING = Gauge(
    "vigil_bus_pending_messages",
    "Messages delivered to a consumer group and not yet acknowledged.",
    ["topic", "group"],
    registry=REGISTRY,
)
BUS_LAG = Gauge(
    "vigil_bus_lag_messages",
    "Messages published to a topic and not yet delivered to the consumer group.",
    ["topic", "group"],
    registry=REGISTRY,
)
BUS_DEAD_LETTERS = Gauge(
    "vigil_bus_dead_letters", "Messages waiting in the dead-letter topic.", registry=REGISTRY
)
INGESTED = Counter(
    "vigil_ingested_total",
    "Telemetry accepted by the API, by kind (points, logs, events, alerts) and source type.",
    ["kind", "source_type"],
    registry=REGISTRY,
)
INGEST_REJECTED = Counter(
    "vigil_ingest_rejected_total",
    "Webhook requests refused, by source type and HTTP status.",
    ["source_type", "status"],
    registry=REGISTRY,
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key.startswith("ctx_"):
                entry[key[4:]] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", json_logs: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty libraries stay at WARNING unless debugging.
    for noisy in ("httpx", "httpcore", "chromadb", "uvicorn.access", "asyncio", "pysnmp", "alembic"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
