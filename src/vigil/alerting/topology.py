"""Which hosts run which services, and which services call which, for correlation.

Sources, each optional: the ingestion inventory (services whose labels name their ``host``/
``hosts`` and ``depends_on``), and recent alerts that carry both a host and a service. Loaded
in its own short transaction and cached, since it changes slowly.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text

from vigil.alerting.ops import TopologyData
from vigil.store.db import Database
from vigil.store.models import Alert
from vigil.store.types import utcnow

log = logging.getLogger(__name__)

RECENT = timedelta(days=2)
MAX_PAIRS = 5000


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return []


class TopologySource:
    def __init__(self, db: Database, ttl_s: float = 60.0) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self._data: TopologyData | None = None
        self._loaded_at = 0.0

    async def get(self) -> TopologyData:
        if self._data is None or time.monotonic() - self._loaded_at >= self.ttl_s:
            self._data = await self.load()
            self._loaded_at = time.monotonic()
        # A copy: a transaction adds the pairs it learns without touching the cache.
        return TopologyData(list(self._data.pairs), list(self._data.dependencies))

    async def load(self) -> TopologyData:
        data = TopologyData()
        async with self.db.session() as session:
            rows = await session.execute(
                select(Alert.host, Alert.service)
                .where(
                    Alert.last_seen >= utcnow() - RECENT, Alert.host.is_not(None), Alert.service.is_not(None)
                )
                .distinct()
                .limit(MAX_PAIRS)
            )
            data.pairs = [(str(h), str(s)) for h, s in rows.all()]
        try:
            async with self.db.session() as session:
                rows = await session.execute(
                    text("SELECT name, labels FROM inventory WHERE kind = 'service'")
                )
                for name, raw in rows.all():
                    labels = json.loads(raw) if isinstance(raw, str) else raw  # SQLite: JSON text
                    if not isinstance(labels, dict):
                        continue
                    for host in _names(labels.get("hosts")) + _names(labels.get("host")):
                        data.pairs.append((host, str(name)))
                    for callee in _names(labels.get("depends_on")):
                        data.dependencies.append((str(name), callee))
        except Exception as exc:  # no inventory (yet): correlate without it
            log.debug("no service inventory for correlation: %s", exc)
        return data
